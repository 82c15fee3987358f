#!/usr/bin/env python3
# tests/e2e/nfs-guest/snapshot-bench-table.py — prints the snapshot benchmark's table (markdown) from
# the raw lines snapshot-bench-guest.sh writes ("row <server> <rep> <method> <snap_s> <restore_s>
# <archive_bytes> key=value..."): medians over the repetitions, each method's end-to-end time
# against the tar.gz path on the same server, archive sizes, the space a step added (nfsd only),
# the NFS operations of the first repetition (all, and per entry of the tree: snapshot + restore
# together) and how the copy engine moved the data; then each method's op types, most first.
# Usage: snapshot-bench-table.py RESULTS_FILE
import statistics
import sys
from collections import defaultdict

rows = defaultdict(list)
notes = []
entries = {}
optypes = []
for line in open(sys.argv[1]):
    f = line.split()
    if not f:
        continue
    if f[0] == "row":
        kv = dict(x.split("=", 1) for x in f[7:] if "=" in x)
        rows[(f[1], f[3])].append((float(f[4]), float(f[5]), f[6], kv))
    elif f[0] in ("env", "tree", "probe"):
        notes.append(" ".join(f))
        if f[0] == "tree":
            entries[f[1]] = int(dict(x.split("=", 1) for x in f[2:] if "=" in x).get("entries", 0))
    elif f[0] == "ops":
        optypes.append(f"{f[1]} {f[2]}: " + " ".join(f[3:13]))

print("| server | method | snapshot s | restore s | end to end s | tar.gz ÷ this | archive MiB "
      "| added KiB (snap/restore) | NFS ops, 1st run: READ/WRITE/COPY/CLONE (all) | ops per entry "
      "| engine (snapshot) |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |")
servers = list(dict.fromkeys(s for s, _ in rows))
for srv in servers:
    gz = rows.get((srv, "tar.gz"))
    gz_total = statistics.median(a + b for a, b, _, _ in gz) if gz else None
    for m in ("copy", "tar.zst", "tar.gz"):
        rs = rows.get((srv, m))
        if not rs:
            continue
        snap = statistics.median(r[0] for r in rs)
        rest = statistics.median(r[1] for r in rs)
        total = statistics.median(r[0] + r[1] for r in rs)
        ratio = f"{gz_total / total:.1f}×" if gz_total and m != "tar.gz" else "1"
        size = rs[0][2]
        mib = f"{int(size) / 2**20:.1f}" if m != "copy" and size.isdigit() else "–"
        kv = rs[0][3]
        added = f"{kv.get('snap_added_kib', '?')}/{kv.get('restore_added_kib', '?')}" if srv.startswith("nfsd") else "–"
        ops = f"{kv.get('read')}/{kv.get('write')}/{kv.get('copy')}/{kv.get('clone')} ({kv.get('ops')})"
        per = f"{int(kv['ops']) / entries[srv]:.1f}" if entries.get(srv) and kv.get("ops", "").isdigit() else "–"
        print(f"| {srv} | {m} | {snap:.2f} | {rest:.2f} | {total:.2f} | {ratio} | {mib} | {added} "
              f"| {ops} | {per} | {kv.get('engine', '–')} |")
print()
print("NFS op types, 1st run, snapshot + restore (top 10):")
for line in optypes:
    print(f"- {line}")
print()
print(f"medians of {max((len(v) for v in rows.values()), default=0)} repetitions; " + "; ".join(notes))
