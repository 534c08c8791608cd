#!/usr/bin/env bash
# Inkast test infrastructure: a single-node Ceph (1 mon, 1 bluestore OSD on a sparse file, no mgr)
# with a RADOS Gateway serving S3 on http://127.0.0.1:7480. Everything lives under $BASE.
#
#   scripts/ceph-rgw-start.sh           start (bootstrap on first use), wait for S3, write $BASE/s3.env
#   scripts/ceph-rgw-stop.sh [--wipe]   stop our daemons by PID (see that script)
#
# Idempotent: installs the Debian packages when missing, bootstraps the cluster when it was never
# bootstrapped (or a bootstrap did not finish), starts only the daemons that are not running, waits
# until S3 answers, then (re)writes the env file that lib/testing/targets.ts reads.
#
# Environment:
#   CEPH_DIR            base directory (default ${TMPDIR:-/tmp}/inkast-ceph, where the tests look)
#   RGW_PORT            S3 port (default 7480)
#   S3_ACCESS_KEY / S3_SECRET_KEY   the test user's keys, fixed at bootstrap (stop --wipe to change)
#   CEPH_STARTED_LIST   if set, a file to which the name of every daemon this run starts is appended
#                       (mon.a, osd.0, client.rgw.a), so a caller can stop only what it started.
#
# Without a mgr, mon-only commands (ceph -s, osd stat, auth, pool ls) work but mgr commands
# (ceph df, ceph osd df, ceph pg ...) hang forever: every ceph CLI call here runs under `timeout`.
set -euo pipefail

BASE=${CEPH_DIR:-${TMPDIR:-/tmp}/inkast-ceph}
CONF=$BASE/ceph.conf
DATA=$BASE/data
FSID=6a0b6a30-5a1e-4c0b-9a3e-1d3c2b4a5f60
RGW_ADDR=127.0.0.1
RGW_PORT=${RGW_PORT:-7480}
S3_USER=${S3_USER:-inkast-test}
S3_ACCESS_KEY=${S3_ACCESS_KEY:-INKASTTESTACCESSKEY1}
S3_SECRET_KEY=${S3_SECRET_KEY:-inkasttestsecretkey000000000000000000001}
OSD_BLOCK_BYTES=${OSD_BLOCK_BYTES:-$((20 * 1024 * 1024 * 1024))} # sparse file
OSD_MEMORY_TARGET=${OSD_MEMORY_TARGET:-$((1024 * 1024 * 1024))}
PKGS=(ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl util-linux)

T_START=$(date +%s.%N)
log() { printf '[ceph-rgw-start %s] %s\n' "$(date +%T)" "$*"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
ceph_() { timeout 30 ceph -c "$CONF" --connect-timeout 10 "$@"; }
die() { log "ERROR: $1"; [[ -n ${2:-} && -f ${2:-} ]] && tail -n 40 "$2" >&2; exit 1; }

# ------------------------------------------------------------------------------------ packages
missing=()
for p in "${PKGS[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $st == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || die "packages missing (${missing[*]}) and not root: apt-get install ${missing[*]}"
  t=$(date +%s.%N)
  log "installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get -o DPkg::Lock::Timeout=300 update -qq
  # Package scripts must not start system-wide ceph daemons; we run our own under $BASE.
  timeout 900 apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  log "TIMING apt_install_s=$(elapsed "$t")"
fi

# ------------------------------------------------------------------------------------ one at a time
mkdir -p "$BASE"
exec 9>"$BASE/.lock"
flock -w 600 9 || die "another ceph-rgw-start/stop holds $BASE/.lock"

# ------------------------------------------------------------------------------------ helpers
# pid_of NAME BINARY: prints the pid from our pidfile if that process is alive AND is ours
# (its command line names the binary and our ceph.conf). A stale or recycled pid never matches.
pid_of() {
  local pf=$BASE/run/$1.pid pid cmd
  [[ -s $pf ]] || return 1
  pid=$(<"$pf")
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  [[ $cmd == *"$2"* && $cmd == *"$CONF"* ]] || return 1
  echo "$pid"
}
wait_for() { # timeout_s command...
  local to=$1 t0=$SECONDS
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS - t0 < to)) || return 1
    sleep 0.5
  done
}
started() { # record a daemon this run started
  log "started $1"
  [[ -n ${CEPH_STARTED_LIST:-} ]] && echo "$1" >>"$CEPH_STARTED_LIST"
  return 0
}
# Daemons fork into the background: give them no terminal, no pipes of ours and not our lock fd,
# or a caller's pipeline (or the next start/stop) would wait for them forever.
launch() { # logfile command...
  local out=$1
  shift
  timeout 120 "$@" </dev/null >>"$out" 2>&1 9>&-
}

write_conf() {
  mkdir -p "$DATA" "$BASE/log" "$BASE/run" "$BASE/crash"
  cat >"$CONF.tmp" <<EOF
[global]
fsid = $FSID
mon_host = [v2:127.0.0.1:3300,v1:127.0.0.1:6789]
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
run_dir = $BASE/run
pid_file = $BASE/run/\$name.pid
admin_socket = $BASE/run/\$cluster-\$name.asok
log_file = $BASE/log/\$cluster-\$name.log
crash_dir = $BASE/crash
mon_cluster_log_file = default=$BASE/log/\$cluster.\$channel.log cluster=$BASE/log/\$cluster.log
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_max_pg_per_osd = 500
mon_warn_on_pool_no_redundancy = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
mon_data_avail_warn = 10

[mon]
mon_data = $DATA/mon/\$cluster-\$id
keyring = \$mon_data/keyring

[osd]
osd_data = $DATA/osd/\$cluster-\$id
keyring = \$osd_data/keyring
osd_objectstore = bluestore
bluestore_block_create = true
bluestore_block_size = $OSD_BLOCK_BYTES
osd_memory_target = $OSD_MEMORY_TARGET

[client.admin]
keyring = $BASE/ceph.client.admin.keyring

[client.rgw.a]
keyring = $DATA/rgw/keyring
rgw_data = $DATA/rgw
rgw_frontends = beast endpoint=$RGW_ADDR:$RGW_PORT
rgw_gc_obj_min_wait = 60
rgw_gc_processor_period = 60
EOF
  mv "$CONF.tmp" "$CONF"
}

# ------------------------------------------------------------------------------------ daemons
start_mon() {
  pid_of mon.a ceph-mon >/dev/null && return 0
  log "starting ceph-mon"
  launch "$BASE/log/mon.a.out" ceph-mon -c "$CONF" -i a || die "ceph-mon failed to start" "$BASE/log/ceph-mon.a.log"
  started mon.a
  wait_for 60 ceph_ mon stat || die "ceph-mon did not answer within 60 s" "$BASE/log/ceph-mon.a.log"
}
osd_up() { [[ $(ceph_ osd stat -f json) == *'"num_up_osds":1'* ]]; }
start_osd() {
  if ! pid_of osd.0 ceph-osd >/dev/null; then
    log "starting ceph-osd"
    launch "$BASE/log/osd.0.out" ceph-osd -c "$CONF" -i 0 || die "ceph-osd failed to start" "$BASE/log/ceph-osd.0.log"
    started osd.0
  fi
  wait_for 120 osd_up || die "osd.0 did not come up within 120 s" "$BASE/log/ceph-osd.0.log"
}
s3_answers() { [[ $(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://$RGW_ADDR:$RGW_PORT/") == 200 ]]; }
port_taken() { (exec 3<>"/dev/tcp/$RGW_ADDR/$RGW_PORT") 2>/dev/null; }
start_rgw() {
  if ! pid_of client.rgw.a radosgw >/dev/null; then
    # Something else on our port would answer our health check and hide a failed radosgw.
    port_taken && die "$RGW_ADDR:$RGW_PORT is in use by a process that is not our radosgw (set RGW_PORT)"
    log "starting radosgw"
    launch "$BASE/log/rgw.a.out" radosgw -c "$CONF" -n client.rgw.a ||
      die "radosgw failed to start" "$BASE/log/ceph-client.rgw.a.log"
    started client.rgw.a
  fi
  wait_for 180 s3_answers || die "S3 did not answer on $RGW_ADDR:$RGW_PORT within 180 s" "$BASE/log/ceph-client.rgw.a.log"
}

stop_our_daemons() { # before re-bootstrapping a half-made cluster (same PID checks as the stop script)
  local nb pid i
  for nb in client.rgw.a:radosgw osd.0:ceph-osd mon.a:ceph-mon; do
    pid=$(pid_of "${nb%%:*}" "${nb##*:}") || continue
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
    [[ -e /proc/$pid ]] && kill -KILL "$pid" 2>/dev/null || true
  done
}

# ------------------------------------------------------------------------------------ bootstrap (once)
bootstrap() {
  local t tmp uuid secret osd_id
  t=$(date +%s.%N)
  log "bootstrapping a new cluster in $DATA"
  stop_our_daemons
  rm -rf "$DATA" "$BASE/log" "$BASE/run" "$BASE/crash" "$BASE"/*.keyring "$BASE"/.bootstrap.* "$BASE/s3.env" \
    "$BASE/s3-user.keys"
  write_conf
  mkdir -p "$DATA/mon/ceph-a" "$DATA/osd/ceph-0" "$DATA/rgw"
  tmp=$(mktemp -d "$BASE/.bootstrap.XXXXXX")

  # keys, monmap, mon
  ceph-authtool --create-keyring "$tmp/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$BASE/ceph.client.admin.keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
  ceph-authtool "$tmp/mon.keyring" --import-keyring "$BASE/ceph.client.admin.keyring" >/dev/null
  monmaptool --create --fsid "$FSID" --addv a '[v2:127.0.0.1:3300,v1:127.0.0.1:6789]' "$tmp/monmap" >/dev/null
  timeout 120 ceph-mon -c "$CONF" --mkfs -i a --monmap "$tmp/monmap" --keyring "$tmp/mon.keyring" \
    >"$BASE/log/mon-mkfs.out" 2>&1 || die "ceph-mon --mkfs failed" "$BASE/log/mon-mkfs.out"
  start_mon

  # OSD 0: bluestore on a sparse file ($osd_data/block, created by --mkfs)
  uuid=$(uuidgen)
  secret=$(ceph-authtool --gen-print-key)
  printf '{"cephx_secret": "%s"}' "$secret" >"$tmp/osd.json"
  osd_id=$(ceph_ osd new "$uuid" -i "$tmp/osd.json")
  [[ $osd_id == 0 ]] || die "expected osd id 0, got '$osd_id'"
  timeout 300 ceph-osd -c "$CONF" -i 0 --mkfs --key "$secret" --osd-uuid "$uuid" \
    >"$BASE/log/osd-mkfs.out" 2>&1 || die "ceph-osd --mkfs failed" "$BASE/log/osd-mkfs.out"
  printf '[osd.0]\n\tkey = %s\n' "$secret" >"$DATA/osd/ceph-0/keyring"
  start_osd

  # radosgw: its key, the daemon (it creates its pools on first start), then the S3 user
  ceph_ auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' mgr 'allow rw' -o "$DATA/rgw/keyring"
  start_rgw
  timeout 120 radosgw-admin -c "$CONF" user create --uid="$S3_USER" --display-name="Inkast tests" \
    --access-key="$S3_ACCESS_KEY" --secret-key="$S3_SECRET_KEY" >"$BASE/log/user-create.json" 2>&1 ||
    die "radosgw-admin user create failed" "$BASE/log/user-create.json"
  printf 'S3_ACCESS_KEY=%q\nS3_SECRET_KEY=%q\n' "$S3_ACCESS_KEY" "$S3_SECRET_KEY" >"$BASE/s3-user.keys"
  rm -rf "$tmp"
  touch "$BASE/.bootstrapped"
  log "TIMING bootstrap_s=$(elapsed "$t")"
}

# ------------------------------------------------------------------------------------ main
if [[ ! -f $BASE/.bootstrapped ]]; then
  bootstrap
else
  # The user's keys were fixed at bootstrap; the env file must name those, not today's defaults.
  [[ -f $BASE/s3-user.keys ]] && source "$BASE/s3-user.keys"
  t=$(date +%s.%N)
  write_conf
  start_mon
  start_osd
  start_rgw
  log "TIMING daemon_start_s=$(elapsed "$t")"
fi

# Both spellings: AWS_* for the SDK and aws CLI, S3_* for Inkast's own configuration (lib/config).
# S3_BUCKET is deliberately absent: each test creates its own bucket.
cat >"$BASE/s3.env.tmp" <<EOF
S3_ENDPOINT=http://$RGW_ADDR:$RGW_PORT
S3_REGION=us-east-1
S3_ACCESS_KEY_ID=$S3_ACCESS_KEY
S3_SECRET_ACCESS_KEY=$S3_SECRET_KEY
S3_FORCE_PATH_STYLE=true
# Ceph 16 RGW rejects aws-chunked trailing checksums (AWS SDK >= 3.729 default for stream bodies).
S3_CHECKSUM=WHEN_REQUIRED
AWS_ENDPOINT_URL=http://$RGW_ADDR:$RGW_PORT
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY
AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
AWS_REQUEST_CHECKSUM_CALCULATION=WHEN_REQUIRED
AWS_RESPONSE_CHECKSUM_VALIDATION=WHEN_REQUIRED
EOF
mv "$BASE/s3.env.tmp" "$BASE/s3.env"
log "S3 ready at http://$RGW_ADDR:$RGW_PORT (access key $S3_ACCESS_KEY); env in $BASE/s3.env"
log "TIMING total_s=$(elapsed "$T_START")"
