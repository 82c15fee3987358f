# shellcheck shell=bash
# tests/e2e/lib.sh — the one shell library of the end-to-end suites (tests/e2e/<suite>/run.sh):
# the result format every suite prints, its summary line, and the one cache directory.
# Source it:  . "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
#
# Result lines (stdout, at the start of a line; every counter in tests/ reads exactly these):
#   PASS <name>            optionally followed by " (<note>)", e.g. a time
#   FAIL <name>: <why>
#   SKIP <name>: <why>     a check that did not run, with its reason
# and one closing line per suite:  <suite>: N passed, N failed   (skips, if any, on the line before).
# Under CI=true a check skipped because a tool is missing (`missing_tool`) is a FAIL: CI must run
# everything it claims to run.
#
# Cache: NSC_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/nfs-subdir-csi) holds what the suites
# build or download once: Go builds (Kubernetes, csi-sanity, Helm, kustomize), the kubernetes-validate
# venv, the guest's uncompressed kernel. Removing it only costs time.

NSC_CACHE=${NSC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nfs-subdir-csi}
export NSC_CACHE

E2E_PASSED=0 E2E_FAILED=0 E2E_SKIPPED=0

# pass NAME [NOTE]
pass() {
  E2E_PASSED=$((E2E_PASSED + 1))
  echo "PASS $1${2:+ ($2)}"
}

# fail NAME [WHY]
fail() {
  E2E_FAILED=$((E2E_FAILED + 1))
  echo "FAIL $1: ${2:-failed}"
}

# skip NAME WHY: a check that does not apply here (not for a missing tool: see missing_tool).
skip() {
  E2E_SKIPPED=$((E2E_SKIPPED + 1))
  echo "SKIP $1: $2"
}

# missing_tool NAME WHY: a check that cannot run because a tool is missing. A SKIP on a developer's
# machine; under CI=true a FAIL.
missing_tool() {
  if [[ ${CI:-} == true ]]; then
    fail "$1" "$2 (CI=true: a missing tool is a failure)"
  else
    skip "$1" "$2"
  fi
}

# e2e_ms: milliseconds of wall clock (for notes and timing logs).
e2e_ms() {
  local t=${EPOCHREALTIME/./}
  echo $((10#$t / 1000))
}

# check NAME CMD...: run CMD; PASS NAME (with its time) if it succeeds, else FAIL NAME with the exit
# status and the command. Returns CMD's status, so `check ... || exit 1` stops a script whose later
# steps need this one (the suites do not run under `set -e`: a failed check is counted and the
# script goes on).
check() {
  local name=$1 rc=0 t d
  shift
  t=$(e2e_ms)
  "$@" || rc=$?
  d=$(($(e2e_ms) - t))
  if ((rc == 0)); then
    pass "$name" "$((d / 1000)).$(printf '%03d' $((d % 1000)))s"
  else
    fail "$name" "exit $rc after $((d / 1000)).$(printf '%03d' $((d % 1000)))s: $*"
  fi
  return "$rc"
}

# tally: add the result lines read from stdin to this shell's counters (for checks that ran in
# another process, e.g. inside the QEMU guest).
tally() {
  local l
  while IFS= read -r l; do
    case $l in
      'PASS '*) E2E_PASSED=$((E2E_PASSED + 1)) ;;
      'FAIL '*) E2E_FAILED=$((E2E_FAILED + 1)) ;;
      'SKIP '*) E2E_SKIPPED=$((E2E_SKIPPED + 1)) ;;
    esac
  done
}

# summary SUITE: print the closing line; non-zero if anything failed (or nothing ran at all).
summary() {
  ((E2E_SKIPPED == 0)) || echo "$1: $E2E_SKIPPED skipped"
  echo "$1: $E2E_PASSED passed, $E2E_FAILED failed"
  ((E2E_FAILED == 0 && E2E_PASSED + E2E_SKIPPED > 0))
}

# cache_lock NAME FD: hold $NSC_CACHE/.lock-NAME on file descriptor FD until it is closed (exec FD>&-)
# or the shell exits. Every builder of a cached tool takes its lock first, so the background prefetch
# of a cold run (tests/e2e/prefetch.sh) and the stage that needs the tool never build it twice: the
# stage waits for the build in progress and then finds the tool cached.
cache_lock() {
  mkdir -p "$NSC_CACHE"
  eval "exec $2>\"\$NSC_CACHE/.lock-$1\""
  flock -n "$2" || { echo "waiting for the build of $1 in progress (lock $NSC_CACHE/.lock-$1)" >&2; flock "$2"; }
}
