#!/usr/bin/env bash
# Inkast test infrastructure: a real clamd (Debian clamav-daemon) on 127.0.0.1:$CLAMD_PORT and a
# unix socket, everything under $BASE, for the malware-scanning tests (lib/scan).
#
#   scripts/clamd-start.sh     start (install clamav-daemon when missing), wait for PONG, write $BASE/clamd.env
#   scripts/clamd-stop.sh      stop it by PID (see that script)
#
# Offline, freshclam cannot download ClamAV's signature database, so this clamd loads only a
# database made here: the EICAR test file's MD5 (.hdb) and its bytes anywhere in a file (.ndb).
# It is still a real clamd doing a real scan. Where the official database is installed
# (/var/lib/clamav/*.cvd|*.cld) and CLAMD_OFFICIAL_DB=1, those are loaded too.
#
# Idempotent: a clamd already running from $BASE (pidfile + /proc cmdline) is reused.
#
# Environment:
#   CLAMD_DIR           base directory (default ${TMPDIR:-/tmp}/inkast-clamd, where the tests look)
#   CLAMD_PORT          TCP port on 127.0.0.1 (default 3319; not 3310, a system clamd's)
#   CLAMD_STARTED_FILE  if set, "clamd" is appended to it when this run started the daemon
set -euo pipefail

BASE=${CLAMD_DIR:-${TMPDIR:-/tmp}/inkast-clamd}
PORT=${CLAMD_PORT:-3319}
CONF=$BASE/clamd.conf
SOCK=$BASE/clamd.sock
PIDFILE=$BASE/clamd.pid
LOG=$BASE/clamd.log
log() { printf '[clamd-start %s] %s\n' "$(date +%T)" "$*"; }
die() { log "ERROR: $1"; [[ -f $LOG ]] && tail -n 30 "$LOG" >&2; exit 1; }

if ! command -v clamd >/dev/null && [[ ! -x /usr/sbin/clamd ]]; then
  [[ $(id -u) == 0 ]] || die "clamd is missing and not root: apt-get install clamav-daemon"
  log "installing clamav-daemon (apt)"
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get -o DPkg::Lock::Timeout=300 update -qq
  timeout 900 apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends clamav-daemon >/dev/null
fi
CLAMD=$(command -v clamd || echo /usr/sbin/clamd)

mkdir -p "$BASE/db" "$BASE/tmp"
exec 9>"$BASE/.lock"
flock -w 120 9 || die "another clamd-start/stop holds $BASE/.lock"

ours() { # prints the PID of our running clamd
  local pid cmd
  [[ -s $PIDFILE ]] || return 1
  pid=$(<"$PIDFILE")
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  [[ $cmd == *clamd* && $cmd == *"$CONF"* ]] || return 1
  echo "$pid"
}

ping_clamd() { # PONG over TCP
  local reply=''
  { exec 8<>"/dev/tcp/127.0.0.1/$PORT"; } 2>/dev/null || return 1
  printf 'zPING\0' >&8
  IFS= read -r -d '' -t 2 reply <&8 || true
  exec 8<&- 8>&-
  [[ $reply == PONG ]]
}

write_env() {
  cat >"$BASE/clamd.env.tmp" <<EOF
CLAMAV_HOST=127.0.0.1
CLAMAV_PORT=$PORT
CLAMAV_SOCKET=$SOCK
EOF
  mv "$BASE/clamd.env.tmp" "$BASE/clamd.env"
}

if pid=$(ours) && ping_clamd; then
  write_env
  log "clamd already running (pid $pid) on 127.0.0.1:$PORT and $SOCK"
  exit 0
fi

# The test signatures. EICAR's 68 bytes, as the anti-malware industry publishes them.
EICAR='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
md5=$(printf '%s' "$EICAR" | md5sum | cut -d' ' -f1)
hex=$(printf '%s' "$EICAR" | od -An -tx1 -v | tr -d ' \n')
printf '%s:%s:Eicar-Test-Signature\n' "$md5" "${#EICAR}" >"$BASE/db/inkast-test.hdb"
printf 'Eicar-Test-Signature.Body:0:*:%s\n' "$hex" >"$BASE/db/inkast-test.ndb"
if [[ ${CLAMD_OFFICIAL_DB:-0} == 1 ]]; then
  for f in /var/lib/clamav/*.cvd /var/lib/clamav/*.cld; do [[ -f $f ]] && ln -sf "$f" "$BASE/db/"; done
fi

cat >"$CONF" <<EOF
# Written by scripts/clamd-start.sh: a test clamd for Inkast, not the system's.
Foreground yes
TCPSocket $PORT
TCPAddr 127.0.0.1
LocalSocket $SOCK
LocalSocketMode 600
FixStaleSocket yes
DatabaseDirectory $BASE/db
TemporaryDirectory $BASE/tmp
PidFile $PIDFILE
LogFile $LOG
LogTime yes
LogClean no
# Inkast streams at most CLAMAV_MAX_BYTES (default 100 MiB) of each file: keep this at least that.
StreamMaxLength 100M
MaxThreads 4
SelfCheck 3600
EOF
# Run as whoever runs this (root in CI): no User directive, so no chown of $BASE needed.

rm -f "$PIDFILE" "$SOCK"
# fd 9 (the lock) must not live on in the daemon.
setsid "$CLAMD" -c "$CONF" </dev/null >>"$BASE/clamd.out" 2>&1 9>&- &
pid=$!
echo "$pid" >"$PIDFILE"
for _ in $(seq 100); do
  ping_clamd && break
  kill -0 "$pid" 2>/dev/null || die "clamd exited at start"
  sleep 0.2
done
ping_clamd || { kill "$pid" 2>/dev/null || true; die "clamd did not answer PING within 20 s"; }
write_env
[[ -n ${CLAMD_STARTED_FILE:-} ]] && echo clamd >>"$CLAMD_STARTED_FILE"
log "clamd started (pid $pid) on 127.0.0.1:$PORT and $SOCK; env in $BASE/clamd.env"
