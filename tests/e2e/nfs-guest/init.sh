#!/bin/busybox sh
# tests/e2e/nfs-guest/init.sh — /init of the guest's initramfs (boot.sh copies it there, with a static
# busybox and the kernel modules listed in /modules.load). Loads the modules, brings eth0 up at
# 10.0.2.15 (QEMU user networking; 10.0.2.2 is the host namespace's loopback), mounts the host root
# read-only over 9p plus the writable results share, puts tmpfs over /tmp /run /var/tmp /dev/shm,
# binds back the host paths boot.sh asked to keep ($KEEP in /results/.harness/guest.conf), chroots
# into the host root to run launch.sh, and powers the guest off when it returns.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
say() { echo "nfs-guest-init: $*"; }
bail() { say "FATAL: $*"; poweroff -f; }
say "init at uptime $(cut -d' ' -f1 /proc/uptime)s"
for m in $(cat /modules.load); do insmod /lib/modules/$m || say "insmod failed: $m"; done
hostname nfs-guest
ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
o=trans=virtio,version=9p2000.L,msize=262144
R=/newroot
mount -t 9p -o $o,ro,cache=loose hostroot $R || bail "cannot mount the host root (9p)"
mount -t 9p -o $o results /results || bail "cannot mount the results share (9p)"
. /results/.harness/guest.conf
i=0; for p in $KEEP; do mkdir -p /keep/$i; mount --bind $R$p /keep/$i; i=$((i + 1)); done
mount -t proc proc $R/proc; mount -t sysfs sys $R/sys; mount -t devtmpfs dev $R/dev
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null
mkdir -p $R/dev/pts $R/dev/shm
ln -sf /proc/self/fd $R/dev/fd; ln -sf fd/0 $R/dev/stdin; ln -sf fd/1 $R/dev/stdout; ln -sf fd/2 $R/dev/stderr
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts; mount -t tmpfs -o mode=1777 shm $R/dev/shm
mount -t tmpfs -o mode=1777 tmp $R/tmp; mount -t tmpfs -o mode=755 run $R/run
mount -t tmpfs -o mode=1777 vartmp $R/var/tmp
i=0; for p in $KEEP; do mkdir -p $R$p; mount --move /keep/$i $R$p; i=$((i + 1)); done
mkdir -p $R/run/nfs-guest; mount --move /results $R/run/nfs-guest
say "root ready at uptime $(cut -d' ' -f1 /proc/uptime)s"
chroot $R /bin/bash /run/nfs-guest/.harness/launch.sh
sync
poweroff -f
