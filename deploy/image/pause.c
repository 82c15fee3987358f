/* pause.c — the sandbox ("pause") process for the test cluster's pod sandboxes: it holds the
 * pod's namespaces open and does nothing until SIGINT/SIGTERM. Built static by
 * deploy/image/build.sh (target `pause`) so its image needs no libc. */
#include <signal.h>
#include <unistd.h>

static void leave(int sig) {
    (void)sig;
    _exit(0);
}

int main(void) {
    signal(SIGINT, leave);
    signal(SIGTERM, leave);
    for (;;)
        pause();
}
