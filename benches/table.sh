#!/bin/bash
# benches/table.sh — the whole benchmark table in one command (not CI): the local-share bench
# (`cargo bench --bench local`) and the NFS bench in the QEMU guest (tests/e2e/nfs-guest/bench.sh:
# ganesha NFSv4.1, big-tree removal, node publish, the guest's kernel nfsd), then every `ROW name |
# figure | target` line they printed as one Markdown table, with the machine's load average before
# and after. Nothing is asserted: the figures are for README "Benchmarks".
# Usage (as root):  bash benches/table.sh
# Knobs: the two benches' own (see their headers; NSC_BENCH_PROFILE=dev builds both without
# optimisation, for call counts when a release build is too slow); NSC_TABLE_OUT (directory for
# the logs, default a new one under /tmp). Exit status: non-zero if either bench failed (the rows printed are kept).
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO" || exit 2
export PATH=$PATH:$HOME/.cargo/bin
OUT=${NSC_TABLE_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/nsc-table.XXXXXX")}
mkdir -p "$OUT"
load() { cut -d' ' -f1-3 /proc/loadavg; }
started=$(date -u +%FT%TZ) load0=$(load)
rc=0
echo "table: cargo bench --bench local (log: $OUT/local.log)"
profile=()
[[ -n ${NSC_BENCH_PROFILE:-} ]] && profile=(--profile "$NSC_BENCH_PROFILE")
cargo bench "${profile[@]}" --bench local >"$OUT/local.log" 2>&1 || { rc=1; echo "table: local bench failed"; tail -20 "$OUT/local.log"; }
load1=$(load)
echo "table: tests/e2e/nfs-guest/bench.sh (log: $OUT/nfs.log)"
NFS_GUEST_WORK=${NFS_GUEST_WORK:-$OUT/guest} bash tests/e2e/nfs-guest/bench.sh >"$OUT/nfs.log" 2>&1 ||
  { rc=1; echo "table: NFS bench failed"; tail -20 "$OUT/nfs.log"; }
load2=$(load)
{
  echo "Run $started; load average (1/5/15 min): $load0 at start, $load1 after the local bench, $load2 at the end"
  echo
  echo "| Row | Figure | Target |"
  echo "|---|---|---|"
  # the guest's console prefixes its lines ("[ 12.345] "); ROW lines of both logs, in order, once each
  cat "$OUT/local.log" "$OUT/nfs.log" | sed -n 's/^\(\[[^]]*\] \)*ROW //p' | awk '!seen[$0]++' |
    awk -F' [|] ' '{ printf "| %s | %s | %s |\n", $1, $2, $3 }'
} | tee "$OUT/table.md"
echo "table: $OUT/table.md"
exit "$rc"
