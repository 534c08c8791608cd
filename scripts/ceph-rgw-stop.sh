#!/usr/bin/env bash
# Stops the Ceph daemons started by scripts/ceph-rgw-start.sh (radosgw, then ceph-osd, then
# ceph-mon), by PID from their pidfiles, and only when /proc/PID/cmdline shows it is our daemon
# (binary name + our ceph.conf path). Never by name: other clusters or test runs may be alive.
#
#   scripts/ceph-rgw-stop.sh                     stop all three, keep the data (next start ~10 s)
#   scripts/ceph-rgw-stop.sh client.rgw.a osd.0  stop only the named daemons (.ci/run stops what it started)
#   scripts/ceph-rgw-stop.sh --wipe              stop all and delete the cluster (next start bootstraps)
set -uo pipefail

BASE=${CEPH_DIR:-${TMPDIR:-/tmp}/inkast-ceph}
CONF=$BASE/ceph.conf
log() { printf '[ceph-rgw-stop %s] %s\n' "$(date +%T)" "$*"; }

wipe=false
only=()
for a in "$@"; do
  case $a in
    --wipe) wipe=true ;;
    mon.a | osd.0 | client.rgw.a) only+=("$a") ;;
    *) log "unknown argument '$a' (expected --wipe, mon.a, osd.0, client.rgw.a)"; exit 2 ;;
  esac
done
if $wipe && ((${#only[@]})); then log "--wipe stops every daemon: do not name daemons with it"; exit 2; fi

[[ -d $BASE ]] || { log "nothing under $BASE"; exit 0; }
exec 9>"$BASE/.lock"
flock -w 300 9 || { log "another ceph-rgw-start/stop holds $BASE/.lock"; exit 1; }

pid_of() { # NAME BINARY
  local pf=$BASE/run/$1.pid pid cmd
  [[ -s $pf ]] || return 1
  pid=$(<"$pf")
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  [[ $cmd == *"$2"* && $cmd == *"$CONF"* ]] || return 1
  echo "$pid"
}

wanted() { # NAME
  ((${#only[@]} == 0)) && return 0
  local n
  for n in "${only[@]}"; do [[ $n == "$1" ]] && return 0; done
  return 1
}

status=0
stop_one() { # NAME BINARY
  local pid i
  wanted "$1" || return 0
  pid=$(pid_of "$1" "$2") || { log "$1 not running"; return 0; }
  log "stopping $1 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do # up to 30 s
    [[ -e /proc/$pid ]] || break
    sleep 0.1
  done
  if [[ -e /proc/$pid ]]; then
    log "$1 (pid $pid) still alive after 30 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
    [[ -e /proc/$pid ]] && { log "$1 (pid $pid) survived SIGKILL"; status=1; return 0; }
  fi
  rm -f "$BASE/run/$1.pid"
}

stop_one client.rgw.a radosgw
stop_one osd.0 ceph-osd
stop_one mon.a ceph-mon

if $wipe && ((status == 0)); then
  log "wiping the cluster under $BASE"
  rm -rf "$BASE/data" "$BASE/log" "$BASE/run" "$BASE/crash" "$BASE"/*.keyring "$BASE/ceph.conf" \
    "$BASE/s3.env" "$BASE/s3-user.keys" "$BASE/.bootstrapped" "$BASE"/.bootstrap.*
fi
exit $status
