#!/usr/bin/env bash
# A throwaway, single-node Ceph RGW (a real S3 server) for the s3:// tests and benchmarks.
#
#   scripts/s3-server.sh install   apt-get the Ceph packages if radosgw is missing (idempotent)
#   scripts/s3-server.sh start     1 mon + 1 OSD (memstore: data in RAM) + 1 radosgw on 127.0.0.1 (idempotent)
#   scripts/s3-server.sh stop      stop the daemons by PID and delete the state dir (idempotent)
#   scripts/s3-server.sh status    exit 0 when the server is up and answering
#   scripts/s3-server.sh env       print the `export` lines the tests read: eval "$(scripts/s3-server.sh env)"
#
# Environment: TWILL_S3_PORT (RGW port, default 7480), TWILL_S3_MON_PORT (default 3300), TWILL_S3_DIR (state
# dir, default <repo>/.s3-server), TWILL_S3_MEMSTORE_BYTES (OSD capacity, default 4 GiB — the data lives in RAM),
# TWILL_S3_START_TIMEOUT (seconds, default 60).
#
# Why the settings below: see docs/S3.md and /work/shared/S3-SERVER.md. Everything a daemon writes (data, logs,
# sockets, pid files) lives in the state dir, so `stop` leaves nothing behind.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${TWILL_S3_DIR:-$REPO/.s3-server}"
PORT="${TWILL_S3_PORT:-7480}"
MON_PORT="${TWILL_S3_MON_PORT:-3300}"
MEMSTORE_BYTES="${TWILL_S3_MEMSTORE_BYTES:-4294967296}"
START_TIMEOUT_S="${TWILL_S3_START_TIMEOUT:-60}"
BUCKET="twill-test"
ACCESS_KEY="twilltest"
SECRET_KEY="twilltestsecret"
REGION="us-east-1"
ENDPOINT="http://127.0.0.1:${PORT}"
CONF="$DIR/ceph.conf"
# The lock lives outside the state dir, which `stop` deletes.
LOCK="${TMPDIR:-/tmp}/twill-s3-server.$(printf '%s' "$DIR" | cksum | cut -d' ' -f1).lock"
# Stop order: the gateway first, the monitor last.
DAEMONS=(rgw osd mon)

log() { printf 's3-server: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

lock() {
  exec 9>"$LOCK"
  flock -w 120 9 || die "another s3-server.sh holds $LOCK"
}

# --- install ---------------------------------------------------------------------------------------------------

PACKAGES=(ceph-mon ceph-osd radosgw ceph-common curl)

installed() {
  command -v radosgw >/dev/null 2>&1 && command -v ceph-mon >/dev/null 2>&1 &&
    command -v ceph-osd >/dev/null 2>&1 && command -v radosgw-admin >/dev/null 2>&1 &&
    command -v curl >/dev/null 2>&1
}

cmd_install() {
  if installed; then return 0; fi
  log "installing ${PACKAGES[*]} (about 60 MB download)"
  export DEBIAN_FRONTEND=noninteractive
  if ! as_root apt-get install -y --no-install-recommends "${PACKAGES[@]}"; then
    log "install failed; running apt-get update and retrying"
    as_root apt-get update
    as_root apt-get install -y --no-install-recommends "${PACKAGES[@]}"
  fi
  installed || die "radosgw is still missing after apt-get install"
}

# --- processes -------------------------------------------------------------------------------------------------

# Prints the PID recorded for daemon $1 if that process is alive (a zombie counts as stopped) and is still the
# daemon we started (the PID was not reused).
live_pid() {
  local file="$DIR/pid/$1.pid" pid state
  [ -f "$file" ] || return 1
  pid="$(cat "$file")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/stat" ] || return 1
  # Field 3 of /proc/PID/stat is the state; the command name before it may contain spaces, so cut at ") ".
  state="$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [ -n "$state" ] && [ "$state" != "Z" ] && [ "$state" != "X" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CONF" || return 1
  printf '%s\n' "$pid"
}

# Runs a daemon in the foreground (-f) in the background of this script, in its own session (so that a signal to
# the caller's process group does not take it down), without the lock fd, and records its PID.
spawn() {
  local name="$1"
  shift
  mkdir -p "$DIR/pid" "$DIR/log"
  setsid "$@" -f -c "$CONF" </dev/null >>"$DIR/log/$name.out" 2>&1 9>&- &
  printf '%s\n' "$!" >"$DIR/pid/$name.pid"
}

http_up() {
  curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$ENDPOINT/" 2>/dev/null | grep -q '^200$'
}

is_up() {
  [ -f "$CONF" ] || return 1
  local d
  for d in "${DAEMONS[@]}"; do live_pid "$d" >/dev/null || return 1; done
  http_up
}

# The last lines of every daemon log, the first place to look when a start fails.
show_logs() {
  local f
  for f in "$DIR"/log/*.out "$DIR"/log/*.log; do
    [ -s "$f" ] || continue
    case "$f" in */setup.out) continue ;; esac # radosgw-admin's JSON; its errors are in client.admin.log
    printf '\n===== tail of %s =====\n' "$f" >&2
    tail -n 15 "$f" >&2 || true
  done
}

port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# One daemon at a time, the gateway first: a radosgw whose cluster is gone hangs in its shutdown. Nothing is worth
# keeping (the data is throwaway), so a daemon that takes more than 3 s gets SIGKILL.
stop_daemons() {
  local d pid i
  for d in "${DAEMONS[@]}"; do
    pid="$(live_pid "$d")" || continue
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
      live_pid "$d" >/dev/null || continue 2
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      live_pid "$d" >/dev/null || continue 2
      sleep 0.1
    done
    die "$d (pid $pid) still running after SIGKILL"
  done
}

# --- start -----------------------------------------------------------------------------------------------------

write_conf() {
  local fsid="$1"
  # `$name`, `$id` are Ceph metavariables, expanded by the daemons, not by this shell.
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$MON_PORT
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $DIR/keyring
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
log to stderr = false
err to stderr = true
log flush on exit = true
mon data = $DIR/mon/\$name
osd data = $DIR/osd/\$name
crash dir = $DIR/crash

# One node, one OSD, one copy.
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon allow pool delete = true

# Cold start 11.9 s -> ~1 s: the monitor commits proposals at once instead of batching for 1 s.
paxos propose interval = 0.01
paxos min wait = 0.001

# Small machine.
ms async op threads = 2
osd op num shards = 2
osd op num threads per shard = 1

[osd]
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
# memstore keeps the PG log in RAM and it grows ~15 KB per write at the defaults: keep it short.
osd min pg log entries = 10
osd max pg log entries = 100
osd pg log dups tracked = 100
osd pg log trim min = 10

[client]
# Half the starts stalled 5 s in the objecter without a short tick.
objecter tick interval = 0.1

[client.rgw.a]
# tcp_nodelay: without it every GET on a kept-alive connection waits ~40 ms (Nagle against delayed ACK).
rgw frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
rgw thread pool size = 32
rgw data = $DIR/rgw
rgw dynamic resharding = false
rgw enable usage log = false
EOF
}

# Runs a ceph CLI command with a deadline; the CLI otherwise waits forever for an absent monitor.
ceph_timeout() {
  timeout 30 "$@"
}

wait_http() {
  local deadline="$1"
  while ! http_up; do
    local d
    for d in "${DAEMONS[@]}"; do
      live_pid "$d" >/dev/null || {
        log "$d exited during start"
        return 1
      }
    done
    [ "$(date +%s)" -lt "$deadline" ] || {
      log "RGW did not answer on $ENDPOINT within ${START_TIMEOUT_S} s"
      return 1
    }
    sleep 0.1
  done
}

create_bucket() {
  local code
  code="$(curl -s -o "$DIR/log/create-bucket.out" -w '%{http_code}' --max-time 10 \
    --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X PUT "$ENDPOINT/$BUCKET")" || true
  # 200: created; 409 BucketAlreadyExists/OwnedByYou: there already.
  [ "$code" = "200" ] || [ "$code" = "409" ] || {
    log "creating bucket $BUCKET answered HTTP $code: $(cat "$DIR/log/create-bucket.out" 2>/dev/null)"
    return 1
  }
}

do_start() {
  local deadline=$(($(date +%s) + START_TIMEOUT_S))
  local fsid osd_uuid
  fsid="$(cat /proc/sys/kernel/random/uuid)"
  osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
  mkdir -p "$DIR"/{run,log,pid,mon,osd/osd.0,rgw,crash}
  write_conf "$fsid"
  export CEPH_CONF="$CONF"

  # One keyring for everyone; `ceph-mon --mkfs` imports all of its keys (with their caps) into the auth database.
  local k="$DIR/keyring"
  ceph-authtool --create-keyring "$k" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$k" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$k" --gen-key -n osd.0 \
    --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
  ceph-authtool "$k" --gen-key -n client.rgw.a --cap mon 'allow rw' --cap osd 'allow rwx' >/dev/null

  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$k" >>"$DIR/log/mkfs.out" 2>&1
  spawn mon ceph-mon -i a

  ceph_timeout ceph -c "$CONF" osd new "$osd_uuid" 0 >>"$DIR/log/setup.out" 2>&1
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$DIR/log/mkfs.out" 2>&1
  spawn osd ceph-osd -i 0

  # Creates the zone and its pools; returns once the OSD serves them.
  ceph_timeout radosgw-admin -c "$CONF" --objecter-tick-interval=0.1 user create --uid=twill \
    --display-name="Twill tests" --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" \
    >>"$DIR/log/setup.out" 2>&1
  spawn rgw radosgw -n client.rgw.a

  wait_http "$deadline"
  create_bucket
}

cmd_start() {
  lock
  if is_up; then
    log "already running on $ENDPOINT (state in $DIR)"
    return 0
  fi
  installed || cmd_install
  # Whatever is left of an earlier, broken run goes first.
  stop_daemons
  rm -rf "$DIR"
  local p
  for p in "$PORT" "$MON_PORT"; do
    if port_busy "$p"; then
      die "port $p on 127.0.0.1 is taken by another program (see: ss -ltnp); set TWILL_S3_PORT / TWILL_S3_MON_PORT"
    fi
  done
  local t0 rc
  t0="$(date +%s%N)"
  # A subshell with errexit of its own: `if ! (do_start)` would switch errexit off inside it.
  set +e
  (
    set -e
    do_start
  )
  rc=$?
  set -e
  if [ "$rc" -ne 0 ]; then
    show_logs
    stop_daemons || true
    die "the S3 server did not come up (logs kept in $DIR/log; \`$0 stop\` removes them)"
  fi
  log "up on $ENDPOINT, bucket $BUCKET, in $((($(date +%s%N) - t0) / 1000000)) ms"
}

cmd_stop() {
  lock
  stop_daemons
  rm -rf "$DIR"
}

cmd_status() {
  if is_up; then
    log "up on $ENDPOINT (state in $DIR)"
    return 0
  fi
  log "not running"
  return 1
}

cmd_env() {
  cat <<EOF
export TWILL_TEST_S3_URL=s3://$BUCKET/
export TWILL_S3_ENDPOINT=$ENDPOINT
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=$REGION
EOF
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
*)
  echo "usage: $0 install|start|stop|status|env" >&2
  exit 2
  ;;
esac
