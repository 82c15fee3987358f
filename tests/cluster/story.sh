# shellcheck shell=bash
# tests/cluster/story.sh — deploy/ applied as users apply it, then the seed's Redis story on it
# (sourced by tests/cluster/run.sh inside its namespace; uses lib.sh).
run_story() {
  if ! "$REPO/target/release/nfs-subdir-csi" serve --help 2>/dev/null | grep -q -- --kubelet-registration-path; then
    skip deploy-and-story "the driver has no --kubelet-registration-path yet (issue 8): kubelet cannot register the node plugin"
    return 0
  fi
}
