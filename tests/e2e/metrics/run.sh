#!/usr/bin/env bash
# tests/e2e/metrics/run.sh — proves the driver's Prometheus metrics with a real Prometheus server
# (Debian's `prometheus` package, run here by hand, never as the packaged service): serve and
# provisioner serve /metrics on
# --http-address, Prometheus scrapes it every second while csi-sanity exercises the whole CSI
# surface, then check.py (next to this file) asks Prometheus's HTTP API (PromQL) for the per-method
# counts and codes, compares them with what the driver logged and csi-sanity reported, runs
# `promtool check metrics` on the raw text and evaluates every query of the Grafana dashboard.
# Prints PASS/FAIL lines and `metrics: N passed, N failed` (tests/e2e/lib.sh); non-zero on failure.
#
#   bash tests/e2e/metrics/run.sh [path/to/nfs-subdir-csi]   (root: csi-sanity makes bind mounts)
# KEEP=1 keeps the work dir (driver, Prometheus and csi-sanity logs; kept anyway on failure).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$here/../lib.sh"
driver=${1:-$repo/target/debug/nfs-subdir-csi}
work= dpid= ppid_= vpid=
cleanup() {
  local p
  for p in "$dpid" "$vpid" "$ppid_"; do [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  [ -n "$work" ] || return 0
  grep -F " $work/" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  if [ "$E2E_FAILED" != 0 ] || [ -n "${KEEP:-}" ]; then echo "metrics: logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
finish() { cleanup; trap - EXIT; summary metrics; exit $?; }

[ "$(id -u)" = 0 ] || { fail "run as root" "csi-sanity's NodePublishVolume makes bind mounts"; finish; }
[ -x "$driver" ] || { fail "driver binary" "$driver is missing (cargo build first)"; finish; }

# ---- tools: Prometheus + promtool (Debian), csi-sanity (the version tests/e2e/csi-sanity pins) ----
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  echo "metrics: installing Debian's prometheus package (the service is not started)"
  # Keep the package's init script from starting its own server where no policy says so.
  guard=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && guard=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 ||
    { apt-get -o DPkg::Lock::Timeout=900 update -qq >/dev/null && apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends prometheus >/dev/null; }
  [ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d
fi
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  pass "Prometheus installed: $(prometheus --version 2>&1 | head -n1)"
else
  fail "Prometheus installed" "apt-get install prometheus failed"; finish
fi
if sanity=$(bash "$here/../csi-sanity/install.sh" | tail -n1) && [ -x "$sanity" ]; then
  pass "csi-sanity installed: $("$sanity" -version 2>&1 | head -n1)"
else
  fail "csi-sanity installed" "tests/e2e/csi-sanity/install.sh failed"; finish
fi

# ---- the driver and Prometheus, on free loopback ports ----
work=$(mktemp -d /tmp/nsc-metrics.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# first_scrape WHO PORT OUT LOG: wait up to 10 s for /metrics on PORT, keep the text in OUT.
first_scrape() {
  local who=$1 port=$2 out=$3 log=$4
  for _ in $(seq 100); do curl -fsS -o "$out" "http://127.0.0.1:$port/metrics" 2>/dev/null && break; sleep 0.1; done
  if [ -s "$out" ]; then
    pass "$who serves /metrics on 127.0.0.1:$port"
  else
    fail "$who serves /metrics on 127.0.0.1:$port" "no answer in 10 s: $(tail -n3 "$log")"; finish
  fi
}

dport=$(free_port)
"$driver" serve --endpoint "unix://$work/csi.sock" --default-share "$work/share" \
  --working-mount-dir "$work/work" --nodeid metrics-node --http-address "127.0.0.1:$dport" \
  >"$work/driver.log" 2>&1 &
dpid=$!
first_scrape driver "$dport" "$work/metrics-start.txt" "$work/driver.log"

# The provisioner's own families (claims, leader, reconcile errors): `provisioner` with an API
# server address nothing listens on keeps retrying, its /metrics up; a second scrape job.
vport=$(free_port)
mkdir -p "$work/prov-share"
cat >"$work/kubeconfig" <<'EOF'
apiVersion: v1
kind: Config
clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: nowhere, context: {cluster: nowhere, user: nowhere}}]
users: [{name: nowhere, user: {token: none}}]
current-context: nowhere
EOF
KUBECONFIG="$work/kubeconfig" "$driver" provisioner --default-share "$work/prov-share" \
  --http-address "127.0.0.1:$vport" >"$work/provisioner.log" 2>&1 &
vpid=$!
first_scrape provisioner "$vport" "$work/prov-metrics-start.txt" "$work/provisioner.log"

pport=$(free_port)
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: nfs-subdir-csi
    static_configs:
      - targets: ["127.0.0.1:$dport"]
  - job_name: nfs-subdir-csi-provisioner
    static_configs:
      - targets: ["127.0.0.1:$vport"]
EOF
promtool check config "$work/prometheus.yml" >/dev/null || { fail "prometheus.yml" "promtool check config failed"; finish; }
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$pport" --log.level=warn >"$work/prometheus.log" 2>&1 &
ppid_=$!
for _ in $(seq 300); do curl -fsS "http://127.0.0.1:$pport/-/ready" >/dev/null 2>&1 && break; sleep 0.1; done
if curl -fsS "http://127.0.0.1:$pport/-/ready" >/dev/null 2>&1; then
  pass "Prometheus ready on 127.0.0.1:$pport (scrape_interval 1s)"
else
  fail "Prometheus ready" "$(tail -n3 "$work/prometheus.log")"; finish
fi

# ---- csi-sanity while Prometheus scrapes ----
"$sanity" --csi.endpoint "$work/csi.sock" --csi.mountdir "$work/mnt" --csi.stagingdir "$work/stage" \
  --csi.testvolumesize 1073741824 --csi.testvolumeexpandsize 2147483648 \
  --ginkgo.junit-report "$work/junit.xml" --ginkgo.no-color >"$work/sanity.log" 2>&1
rc=$?
ended=$(date +%s.%N)
if [ $rc = 0 ] && [ -s "$work/junit.xml" ]; then
  pass "csi-sanity ran: $(grep -E '^Ran ' "$work/sanity.log" | head -n1)"
else
  fail "csi-sanity ran" "exit $rc: $(grep -E '^(Ran |FAIL)' "$work/sanity.log" | head -n3)"
fi

python3 "$here/check.py" --prometheus "http://127.0.0.1:$pport" --driver "http://127.0.0.1:$dport" \
  --provisioner "http://127.0.0.1:$vport" \
  --after "$ended" --work "$work" --repo "$repo" >"$work/check.out" 2>&1
rc=$?
cat "$work/check.out"
tally <"$work/check.out"
if [ $rc != 0 ] && ! grep -q '^FAIL ' "$work/check.out"; then fail "check.py" "exit $rc without a FAIL line"; fi
finish
