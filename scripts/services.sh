#!/usr/bin/env bash
# services.sh up|down|status — the services the test suite needs that this project starts itself.
#
# Today that is one: an S3 endpoint with Object Lock, served by Ceph radosgw as a one-node
# cluster on loopback (1 monitor, 1 OSD, radosgw). The archive's guarantees (no delete, no
# overwrite, no shortened retention) are enforced by the storage, so the tests need a real S3
# implementation that enforces them: moto lets a COMPLIANCE date be shortened, radosgw does not.
#
#   up      start what is not running (quick no-op when healthy: S3 answers and takes a write;
#           a cluster that no longer takes writes is rebuilt), write the env file, exit 0
#   down    stop radosgw, then the OSD, then the monitor (stopping them together can hang radosgw)
#   status  print what runs; exit 0 when S3 answers an authenticated request and takes a write, else 1
#
# Installs nothing: scripts/setup.sh installs radosgw ceph-mon ceph-osd uuid-runtime curl.
# Tests read the endpoint and credentials from $HSDT_CEPH_DIR/s3.env (see tests/test_s3_store.py).
# The OSD keeps its data in RAM (memstore) by default: a test cluster is rebuilt from nothing on
# every `up` after a `down`, so no stale state can make it fail to start. STORE=bluestore puts
# it on a sparse 10 GB file instead (about 4 s slower to start; also wiped by the next `up`).
#
# Environment: HSDT_CEPH_DIR (/var/tmp/hsdt-ceph), HSDT_S3_PORT (7480), HSDT_CEPH_MON_PORT
# (3300), HSDT_S3_ACCESS_KEY, HSDT_S3_SECRET_KEY, STORE (memstore|bluestore),
# HSDT_S3_WRITE_PROBE_SECONDS (10: how long a healthy cluster may take to store a small object).
set -euo pipefail

DIR=${HSDT_CEPH_DIR:-/var/tmp/hsdt-ceph}
RGW_PORT=${HSDT_S3_PORT:-7480}
MON_PORT=${HSDT_CEPH_MON_PORT:-3300}   # Ceph's own msgr2 port: outside the ephemeral range
S3_KEY=${HSDT_S3_ACCESS_KEY:-hsdt-test}
S3_SECRET=${HSDT_S3_SECRET_KEY:-hsdt-test-secret-not-for-production}
STORE=${STORE:-memstore}
ENDPOINT="http://127.0.0.1:$RGW_PORT"
REGION=default                         # radosgw's default zonegroup
CONF=$DIR/ceph.conf
ENV_FILE=$DIR/s3.env
MARKER=$DIR/.hsdt-ceph                 # only a directory carrying this is ever wiped
LOCK=${DIR%/}.lock                     # beside DIR, so that wiping DIR keeps the lock

T0=${EPOCHREALTIME/[.,]/}
elapsed() { local t=${EPOCHREALTIME/[.,]/}; printf '%d.%d s' $(((t - T0) / 1000000)) $(((t - T0) / 100000 % 10)); }
say() { printf '» [services %6s] %s\n' "$(elapsed)" "$*"; }
die() { printf '✗ [services] %s\n' "$*" >&2; exit 1; }

need_tools() {
  local missing=() t
  for t in ceph ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph-authtool uuidgen curl flock; do
    command -v "$t" >/dev/null || missing+=("$t")
  done
  ((${#missing[@]} == 0)) ||
    die "Thiếu công cụ: ${missing[*]} — chạy \`scripts/setup.sh test\` (cài radosgw ceph-mon ceph-osd uuid-runtime curl)."
}

c() { ceph -c "$CONF" --connect-timeout 10 "$@"; }

# The daemons write their own pid files (pid file = run/$name.pid in ceph.conf).
pid_file() { case $1 in mon) echo "$DIR/run/mon.a.pid" ;; osd) echo "$DIR/run/osd.0.pid" ;;
  rgw) echo "$DIR/run/client.rgw.pid" ;; esac; }

pid_of() {  # the pid from a daemon's pid file, if that process is alive and still that daemon
  local f p want
  f=$(pid_file "$1")
  case $1 in mon) want=ceph-mon ;; osd) want=ceph-osd ;; rgw) want=radosgw ;; esac
  [[ -f $f ]] || return 1
  p=$(cat "$f" 2>/dev/null) || return 1
  [[ -n $p && $(cat "/proc/$p/comm" 2>/dev/null) == "$want" ]] || return 1
  # a killed daemon stays a zombie until its parent (init) reaps it: that is not running
  [[ $(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) != Z ]] && echo "$p"
}

# curl signs S3 requests itself (SigV4); radosgw also wants the payload hash header, else it
# answers SignatureDoesNotMatch.
SIGN=(--aws-sigv4 "aws:amz:$REGION:s3" --user "$S3_KEY:$S3_SECRET" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")

s3_ok() {  # an authenticated ListBuckets answered 200: radosgw, its pools and our user all work
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${SIGN[@]}" "$ENDPOINT/" 2>/dev/null) || true
  [[ $code == 200 ]]
}

# A cluster can answer reads and still take no writes: the memstore OSD keeps every object in
# its fixed RAM budget, and once that is ~97 % full it drops writes ("full status failsafe")
# and radosgw waits on them forever. A small PUT that must answer within the probe time tells.
WRITE_PROBE_SECONDS=${HSDT_S3_WRITE_PROBE_SECONDS:-10}
s3_writes() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time "$WRITE_PROBE_SECONDS" "${SIGN[@]}" \
    -X PUT --data-binary probe "$ENDPOINT/hsdt-warmup/write-probe" 2>/dev/null) || true
  [[ $code == 200 ]]
}

write_conf() {
  mkdir -p "$DIR"/{mon.a,osd.0,run,log,rgw}
  touch "$MARKER"
  [[ -f $DIR/fsid ]] || uuidgen > "$DIR/fsid"
  cat > "$CONF" <<EOF
# Written by scripts/services.sh — a throw-away one-node cluster for tests, not for data.
[global]
fsid = $(cat "$DIR/fsid")
mon host = v2:127.0.0.1:$MON_PORT
public addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr1 = false
# No cephx on loopback; radosgw then needs "crc secure" or fails with
# "get_initial_auth_request returned -13".
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
keyring = $DIR/keyring
debug ms = 0
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
mon max pg per osd = 1000
osd crush chooseleaf type = 0
mon data avail warn = 1
mon data avail crit = 0
[mon]
mon data = $DIR/mon.\$id
mon cluster log file = $DIR/log/cluster.log
# One monitor, no quorum to batch for: commit each change at once instead of once a second
# (radosgw creates its pools one command at a time; this takes "up" from 18 s to 3 s).
paxos propose interval = 0.05
paxos min wait = 0.01
[osd]
osd data = $DIR/osd.\$id
osd objectstore = $STORE
memstore device bytes = 2147483648
bluestore block path = $DIR/osd.\$id/block.file
bluestore block create = true
bluestore block size = 10737418240
bluestore fsck on mount = false
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 134217728
osd op num shards = 1
osd op num threads per shard = 2
[client.rgw]
# tcp_nodelay: without it every response body waits ~40 ms for a delayed ACK (Nagle).
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw data = $DIR/rgw
rgw thread pool size = 64
# Virtual-host addressing: bucket.localhost:$RGW_PORT names the bucket in the Host header.
rgw dns name = localhost
debug rgw = 1
EOF
}

wait_for() {  # wait_for SECONDS WHAT CMD...: poll CMD every 0.2 s
  local limit=$1 what=$2 i
  shift 2
  for ((i = 0; i < limit * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "$what không sẵn sàng sau ${limit} s ($what did not come up) — xem $DIR/log/."
}

osd_up() { c osd stat 2>/dev/null | grep -q '1 up.*1 in'; }
rgw_listening() { [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$ENDPOINT/") != 000 ]]; }

write_env() {
  local tmp=$ENV_FILE.tmp
  cat > "$tmp" <<EOF
# S3 endpoint of the test radosgw, written by scripts/services.sh up. Read by the tests.
HSDT_S3_ENDPOINT=$ENDPOINT
HSDT_S3_REGION=$REGION
HSDT_S3_ACCESS_KEY=$S3_KEY
HSDT_S3_SECRET_KEY=$S3_SECRET
HSDT_S3_ADDRESSING_STYLE=path
EOF
  mv "$tmp" "$ENV_FILE"
}

start_fresh() {
  if [[ -e $DIR && ! -f $MARKER && -n $(ls -A "$DIR" 2>/dev/null) ]]; then
    die "$DIR tồn tại nhưng không do services.sh tạo: không xoá ($DIR exists and is not ours)."
  fi
  if rgw_listening; then
    die "Cổng $RGW_PORT đã có tiến trình khác nghe (port $RGW_PORT is taken by something that is not our radosgw)."
  fi
  rm -rf "$DIR"
  write_conf

  say "monitor: tạo và khởi động (127.0.0.1:$MON_PORT)"
  ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --clobber --fsid "$(cat "$DIR/fsid")" --addv a "[v2:127.0.0.1:$MON_PORT]" \
    "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" -i a --mkfs --monmap "$DIR/monmap" --keyring "$DIR/keyring" \
    >>"$DIR/log/mkfs.log" 2>&1 || die "ceph-mon --mkfs thất bại — xem $DIR/log/mkfs.log"
  # The daemons fork into the background and write their pid files; "9>&-" keeps them from
  # inheriting the lock, which they would otherwise hold for as long as they run.
  ceph-mon -c "$CONF" -i a 9>&-
  wait_for 30 "ceph-mon" c mon stat

  say "OSD ($STORE): tạo và khởi động"
  local osd_uuid
  osd_uuid=$(uuidgen)
  c osd new "$osd_uuid" >/dev/null
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$DIR/log/mkfs.log" 2>&1 ||
    die "ceph-osd --mkfs thất bại — xem $DIR/log/mkfs.log"
  ceph-osd -c "$CONF" -i 0 9>&- 2>>"$DIR/log/osd.stderr"   # its start-up chatter
  wait_for 60 "ceph-osd" osd_up

  say "radosgw: khởi động ($ENDPOINT)"
  radosgw -c "$CONF" -n client.rgw 9>&-
  wait_for 120 "radosgw" rgw_listening
  radosgw-admin -c "$CONF" user create --uid=hsdt-test --display-name="hsdt tests" \
    --access-key="$S3_KEY" --secret-key="$S3_SECRET" >/dev/null
  # The first requests create the bucket index and data pools (seconds); do it here, once,
  # rather than inside the first test's timeout.
  say "radosgw: tạo pool dữ liệu (bucket + đối tượng khởi động)"
  local sig=("${SIGN[@]}" -s -S -f -o /dev/null --max-time 60)
  curl "${sig[@]}" -X PUT "$ENDPOINT/hsdt-warmup" || die "radosgw không tạo được bucket khởi động"
  curl "${sig[@]}" -X PUT --data-binary warmup "$ENDPOINT/hsdt-warmup/warmup" ||
    die "radosgw không ghi được đối tượng khởi động"
  wait_for 30 "S3 (radosgw)" s3_ok
}

up() {
  need_tools
  mkdir -p "$(dirname "$DIR")"
  exec 9>"$LOCK"
  flock -w 300 9 || die "Một lệnh services.sh khác đang chạy quá lâu (lock $LOCK)."
  if pid_of rgw >/dev/null && pid_of osd >/dev/null && pid_of mon >/dev/null && s3_ok; then
    if s3_writes; then
      write_env
      say "S3 (radosgw) đã chạy: $ENDPOINT — env: $ENV_FILE"
      return 0
    fi
    say "S3 đang chạy nhưng không ghi được sau $WRITE_PROBE_SECONDS s (OSD đầy? xem $DIR/log/osd.0.log): dừng rồi dựng lại"
    stop_all
  fi
  if [[ -d $DIR/run ]] && { pid_of rgw || pid_of osd || pid_of mon; } >/dev/null; then
    say "cụm chạy dở dang (partly running): dừng rồi dựng lại"
    stop_all
  fi
  start_fresh
  write_env
  say "S3 (radosgw) sẵn sàng sau $(elapsed): $ENDPOINT key=$S3_KEY — env: $ENV_FILE"
}

stop_one() {  # SIGTERM, wait up to 15 s, then SIGKILL (radosgw can hang in shutdown)
  local name=$1 p i
  p=$(pid_of "$name") || { rm -f "$(pid_file "$name")"; return 0; }
  say "dừng $name (pid $p)"
  kill "$p" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do pid_of "$name" >/dev/null || break; sleep 0.1; done
  if pid_of "$name" >/dev/null; then
    say "$name không dừng sau 15 s: SIGKILL"
    kill -9 "$p" 2>/dev/null || true
  fi
  rm -f "$(pid_file "$name")"
}

stop_all() { stop_one rgw; stop_one osd; stop_one mon; }

down() {
  mkdir -p "$(dirname "$DIR")"
  exec 9>"$LOCK"
  flock -w 300 9 || die "Một lệnh services.sh khác đang chạy quá lâu (lock $LOCK)."
  [[ -d $DIR/run ]] || { say "không có gì đang chạy"; return 0; }
  stop_all
  rm -f "$ENV_FILE"
  say "đã dừng ($(elapsed))"
}

status() {
  local n p rc=0
  for n in mon osd rgw; do
    if p=$(pid_of "$n"); then say "$n: chạy (pid $p)"; else say "$n: không chạy"; rc=1; fi
  done
  if s3_ok; then
    say "S3: $ENDPOINT trả lời (answers)"
    if s3_writes; then say "S3: ghi được (takes writes)"
    else say "S3: không ghi được sau $WRITE_PROBE_SECONDS s (OSD đầy? \`$0 down\` rồi \`$0 up\` dựng lại cụm)"; rc=1; fi
  else say "S3: $ENDPOINT không trả lời"; rc=1; fi
  return $rc
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
