#!/usr/bin/env bash
# Stops the clamd started by scripts/clamd-start.sh, by the PID in its pidfile and only when
# /proc/PID/cmdline shows it is that clamd (its clamd.conf path). Never by name.
#
#   scripts/clamd-stop.sh          stop it, keep $BASE
#   scripts/clamd-stop.sh --wipe   stop it and delete $BASE
set -uo pipefail

BASE=${CLAMD_DIR:-${TMPDIR:-/tmp}/inkast-clamd}
CONF=$BASE/clamd.conf
PIDFILE=$BASE/clamd.pid
log() { printf '[clamd-stop %s] %s\n' "$(date +%T)" "$*"; }

[[ -d $BASE ]] || { log "nothing under $BASE"; exit 0; }
exec 9>"$BASE/.lock"
flock -w 120 9 || { log "another clamd-start/stop holds $BASE/.lock"; exit 1; }

pid=''
if [[ -s $PIDFILE ]]; then
  p=$(<"$PIDFILE")
  if [[ $p =~ ^[0-9]+$ && -r /proc/$p/cmdline ]]; then
    cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null || true)
    [[ $cmd == *clamd* && $cmd == *"$CONF"* ]] && pid=$p
  fi
fi
if [[ -n $pid ]]; then
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then log "clamd (pid $pid) ignored SIGTERM: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
  log "stopped clamd (pid $pid)"
else
  log "no clamd of ours running"
fi
rm -f "$PIDFILE" "$BASE/clamd.env"
if [[ ${1:-} == --wipe ]]; then
  exec 9>&-
  rm -rf "$BASE"
  log "wiped $BASE"
fi
