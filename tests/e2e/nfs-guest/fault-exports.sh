# shellcheck shell=bash
# tests/e2e/nfs-guest/fault-exports.sh — the extra ganesha exports the export-fault scenarios use
# (tests/e2e/nfs-guest/scenarios/faults.rs), next to boot.sh's main /export. Sourced by boot.sh
# (directories + EXPORT blocks) and netns.sh (the small filesystem + the control op).
#
# Exports (pseudo path == mount path; directories under $WORK/fault on the host):
#   /export-full    Export_Id 11  a tmpfs of 16 MiB and 128 inodes, mounted inside the private
#                                 namespace by netns.sh (it vanishes with the namespace): "disk full"
#   /export-ro      Export_Id 12  Access_Type = RO; holds a volume made beforehand: pvc-ro-kept/data
#   /export-squash  Export_Id 13  Squash = Root_Squash; root 0777 (what admins do so that a squashed
#                                 root can make directories), its subdirectory locked/ 0755 root
#   /export-anon    Export_Id 14  Squash = All_Squash, Anonymous_Uid = Anonymous_Gid = 999, root
#                                 owned by 999 (every client user, root included, acts as uid 999)
# Control op (boot.sh's protocol: the guest creates $RESULTS/ganesha-<op>, the host acks):
#   squash-off   Export 13 becomes No_Root_Squash (the fix an admin applies) and ganesha restarts
# The guest's helper is the same as for stop/start: nfs_server squash-off (harness.rs: nfs_server).

# fault_exports_prepare DIR: fresh export directories under DIR (the tmpfs mount point included).
fault_exports_prepare() {
  local d=$1
  rm -rf "$d"
  mkdir -p "$d/full" "$d/ro/pvc-ro-kept" "$d/squash/locked" "$d/anon"
  echo kept >"$d/ro/pvc-ro-kept/data"
  chmod 0777 "$d/squash"
  chmod 0755 "$d/squash/locked"
  chown 999:999 "$d/anon"
  chmod 0755 "$d/anon"
}

# fault_exports_conf DIR: the EXPORT blocks (appended to ganesha.conf by boot.sh).
fault_exports_conf() {
  local d=$1 id name path access squash extra
  while read -r id name access squash extra; do
    path=$d/$name
    cat <<EOF
EXPORT {
    Export_Id = $id;
    Path = $path;
    Pseudo = /export-$name;
    Access_Type = $access;
    Squash = $squash;${extra:+
    $extra}
    SecType = sys;
    Protocols = 3, 4;
    Transports = TCP;
    FSAL { Name = VFS; }
}
EOF
  done <<'EOF'
11 full RW No_Root_Squash
12 ro RO No_Root_Squash
13 squash RW Root_Squash
14 anon RW All_Squash Anonymous_Uid = 999; Anonymous_Gid = 999;
EOF
}

# fault_exports_mount DIR: the small filesystem behind /export-full (netns.sh, before ganesha starts).
fault_exports_mount() {
  mount -t tmpfs -o size=16m,nr_inodes=128,mode=0777 nfs-guest-full "$1/full"
}

# fault_control_loop: serves squash-off (netns.sh starts it in the background; it uses netns.sh's
# ganesha_stop / ganesha_start, G and R).
fault_control_loop() {
  local req st t0 d l
  while :; do
    req=$R/ganesha-squash-off
    if [[ -e $req ]]; then
      rm -f "$req"; t0=$(now)
      sed -i 's/Squash = Root_Squash;/Squash = No_Root_Squash;/' "$G/ganesha.conf"
      st=$(ganesha_stop TERM 2>&1 && ganesha_start 2>&1) && st=ok || st="error: ${st//$'\n'/; }"
      echo "$st" >"$req.ack.tmp" && mv -f "$req.ack.tmp" "$req.ack"
      d=$((t0 - $(cat "$NG_WORK/qemu.start" 2>/dev/null || echo "$t0")))
      printf -v l '[%4d.%03d] [host] ganesha-squash-off: %s (%ss)' $((d / 1000)) $((d % 1000)) "$st" "$(el "$t0")"
      echo "$l" >>"$NG_WORK/serial.log"
      [[ ${NFS_GUEST_QUIET:-} == 1 ]] || echo "$l"
    fi
    sleep 0.2
  done
}
