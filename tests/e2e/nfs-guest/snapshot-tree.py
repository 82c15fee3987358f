#!/usr/bin/env python3
# tests/e2e/nfs-guest/snapshot-tree.py — writes the snapshot benchmark's mixed tree (deterministic:
# the same arguments give the same tree, byte for byte) into an existing empty directory.
# Usage: snapshot-tree.py DIR SMALL_FILES BIG_MIB
#   SMALL_FILES text files of 200 B to 8 KiB, 50 to a directory, two levels deep;
#   big/text.log      BIG_MIB MiB of log-like text (gzip and zstd shrink it ~4-8x);
#   big/random.bin    BIG_MIB MiB of pseudo-random bytes (incompressible);
#   sparse.img        64 MiB apparent size, 1 MiB of data at offsets 0, 32 MiB and the end;
#   hard links        every 100th small file linked again under links/, big/text.log as text.hardlink;
#   symlinks          10 relative links under links/ (to small files) and one absolute (/etc/passwd).
import os
import random
import sys

MIB = 1 << 20


def text(rnd, n):
    """n bytes of log-like lines."""
    paths = ["/api/v1/items", "/api/v1/users", "/healthz", "/metrics", "/static/app.js"]
    lvls = ["info", "info", "info", "debug", "warn"]
    out, size = [], 0
    while size < n:
        line = "2026-12-01T%02d:%02d:%02d.%06dZ level=%s msg=\"request served\" path=%s/%d status=%d bytes=%d\n" % (
            rnd.randrange(24), rnd.randrange(60), rnd.randrange(60), rnd.randrange(10**6),
            rnd.choice(lvls), rnd.choice(paths), rnd.randrange(5000), rnd.choice((200, 200, 200, 304, 404)),
            rnd.randrange(100000))
        out.append(line)
        size += len(line)
    return "".join(out).encode()[:n]


def main():
    root, small, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rnd = random.Random(11)
    os.makedirs(os.path.join(root, "big"))
    os.makedirs(os.path.join(root, "links"))
    corpus = text(rnd, 4 * MIB)
    names = []
    for i in range(small):
        d = os.path.join(root, "d%02d" % (i // 500), "s%03d" % (i // 50))
        if i % 50 == 0:
            os.makedirs(d, exist_ok=True)
        p = os.path.join(d, "f%05d.txt" % i)
        n = rnd.randrange(200, 8192)
        at = rnd.randrange(len(corpus) - n)
        with open(p, "wb") as f:
            f.write(corpus[at:at + n])
        os.chmod(p, 0o640 if i % 7 == 0 else 0o644)
        names.append(p)
    with open(os.path.join(root, "big/text.log"), "wb") as f:
        for _ in range(big):
            f.write(text(rnd, MIB))
    with open(os.path.join(root, "big/random.bin"), "wb") as f:
        for _ in range(big):
            f.write(rnd.randbytes(MIB))
    with open(os.path.join(root, "sparse.img"), "wb") as f:
        for off in (0, 32 * MIB, 64 * MIB - MIB // 4):
            f.seek(off)
            f.write(rnd.randbytes(MIB // 4 if off else MIB // 2))
        f.truncate(64 * MIB)
    for i, p in enumerate(names[::100]):
        os.link(p, os.path.join(root, "links", "hard-%03d" % i))
    os.link(os.path.join(root, "big/text.log"), os.path.join(root, "big/text.hardlink"))
    for i, p in enumerate(names[5::200][:10]):
        os.symlink(os.path.relpath(p, os.path.join(root, "links")), os.path.join(root, "links", "sym-%02d" % i))
    os.symlink("/etc/passwd", os.path.join(root, "links", "abs-passwd"))


if __name__ == "__main__":
    main()
