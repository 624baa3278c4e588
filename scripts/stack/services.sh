# shellcheck shell=bash
# scripts/stack.sh start/status/stop/up: the processes of the stack, each started once and stopped by pid.
# Sourced by scripts/stack.sh, which sets ROOT, the ports and the paths it uses.

# ---------------------------------------------------------------- process helpers
pidfile() { echo "$RUN/$1.pid"; }
running() { local f; f=$(pidfile "$1"); [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # name port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    port_open "$2" && return 0
    running "$1" || { tail -n 20 "$LOGS/$1.log" >&2 || true; die "$1 exited during start (log: $LOGS/$1.log)"; }
    sleep 0.1
  done
  tail -n 20 "$LOGS/$1.log" >&2 || true
  die "$1 did not open port $2 within $3 s (log: $LOGS/$1.log)"
}
spawn() { # name command...: run in its own session, output to the log, pid to the pidfile
  local name=$1
  shift
  if running "$name"; then return 1; fi
  if port_open "$PORT_OF"; then die "$name: port $PORT_OF is taken by another process"; fi
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
}
stop_pid() { # name [signal]
  local f pid i
  f=$(pidfile "$1")
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -"${2:-TERM}" "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { log "$1 did not stop in 30 s; killing"; kill -KILL "$pid" 2>/dev/null || true; }
    log "stopped $1"
  fi
  rm -f "$f"
}

# ---------------------------------------------------------------- components
start_temporal() {
  mkdir -p "$DRBOOK_DATA/temporal"
  local codec=()
  [ -n "${DRBOOK_PAYLOAD_KEYS:-}" ] && codec=(--ui-codec-endpoint "http://127.0.0.1:$DRBOOK_CODEC_PORT")
  PORT_OF=$DRBOOK_TEMPORAL_PORT spawn temporal "$VENV/bin/temporal" server start-dev "${codec[@]}" \
    --ip 127.0.0.1 --port "$DRBOOK_TEMPORAL_PORT" --ui-port "$DRBOOK_UI_PORT" \
    --db-filename "$DRBOOK_DATA/temporal/temporal.db" --log-level warn \
    --search-attribute DrService=Keyword --search-attribute DrRunbook=Keyword \
    --search-attribute DrMode=Keyword --search-attribute DrOutcome=Keyword || return 0
  wait_port temporal "$DRBOOK_TEMPORAL_PORT" 60
  wait_port temporal "$DRBOOK_UI_PORT" 30
  log "temporal: 127.0.0.1:$DRBOOK_TEMPORAL_PORT, Web UI http://127.0.0.1:$DRBOOK_UI_PORT"
}

mariadb_sql() { # name: SQL on stdin, as root over the instance's unix socket (no password anywhere)
  mariadb --no-defaults --socket="$DRBOOK_DATA/mariadb/$1.sock" -uroot --batch --skip-column-names
}

start_mariadb() { # name port server-id role
  local name=$1 port=$2 id=$3 role=$4 dir=$DRBOOK_DATA/mariadb/$1
  mkdir -p "$DRBOOK_DATA/mariadb"
  # The settings every server shares with the compose stack, then this server's own (later lines win).
  cat >"$DRBOOK_DATA/mariadb/$name.cnf" <<EOF
!include $MARIADB_BOOTSTRAP/drbook.cnf
[mariadbd]
datadir=$dir
socket=$DRBOOK_DATA/mariadb/$name.sock
pid-file=$DRBOOK_DATA/mariadb/$name.mariadbd.pid
bind-address=127.0.0.1
port=$port
server-id=$id
log-bin=$dir/binlog
relay-log=$dir/relay
EOF
  if [ ! -d "$dir/mysql" ]; then
    log "mariadb $name: initialising $dir"
    mariadb-install-db --no-defaults --datadir="$dir" --user="$(id -un)" --auth-root-authentication-method=socket \
      --skip-test-db >"$LOGS/mariadb-$name.init.log" 2>&1 ||
      { cat "$LOGS/mariadb-$name.init.log" >&2; die "mariadb-install-db $name"; }
  fi
  PORT_OF=$port spawn "mariadb-$name" \
    mariadbd --defaults-file="$DRBOOK_DATA/mariadb/$name.cnf" --user="$(id -un)" || return 0
  STARTED_MARIADB+=("$name")
  wait_port "mariadb-$name" "$port" 60
  [ -f "$dir/.drbook-bootstrapped" ] || bootstrap_mariadb "$name" "$role"
  log "mariadb $name ($role): 127.0.0.1:$port"
}

# The MariaDB servers this invocation started (a server that was already running is not in it).
STARTED_MARIADB=()
started_now() { local n; for n in "${STARTED_MARIADB[@]}"; do [ "$n" = "$1" ] && return 0; done; return 1; }

# After a (re)start every server is read-only. Whichever server the others replicate from is the
# primary and becomes writable; after a failover that is the promoted DR server, and the old
# primary stays read-only until failback re-protects it. The scratch server has no replication.
# Only a server started by THIS call is opened: one that was already running keeps its read_only, whatever
# it is. It may be an old primary fenced by a switchover in flight (its replica still replicates from it
# until promotion), and re-opening it would make two writers.
# And none is opened while a runbook holds its service's lock-<service> (workflows/lock.ts): a fenced old primary
# that crashed mid-switchover and is started again here must stay fenced until the runbook has finished.
open_primary_for_writes() {
  local name source_port source
  for name in primary replica; do
    # (no --skip-column-names here: \G output needs its field names)
    source_port=$(mariadb --no-defaults --socket="$DRBOOK_DATA/mariadb/$name.sock" -uroot -e 'SHOW SLAVE STATUS\G' |
      awk '/Master_Port:/ {print $2}')
    [ -n "$source_port" ] || continue
    source=
    [ "$source_port" = "$DRBOOK_PRIMARY_PORT" ] && source=primary
    [ "$source_port" = "$DRBOOK_REPLICA_PORT" ] && source=replica
    [ -n "$source" ] || continue
    if ! started_now "$source"; then
      log "mariadb $source: already running, read_only left as it is"
    elif service_locked shop; then
      log "mariadb $source: lock-shop is held (a runbook is changing shop), read_only left ON"
    else
      echo "SET GLOBAL read_only = OFF;" | mariadb_sql "$source"
    fi
  done
  if started_now scratch; then
    if service_locked wiki; then
      log "mariadb scratch: lock-wiki is held (a runbook is changing wiki), read_only left ON"
    else
      echo "SET GLOBAL read_only = OFF;" | mariadb_sql scratch
    fi
  fi
  # The restore scratch serves no service: nothing to fence, nothing to lock.
  if started_now restore-scratch; then echo "SET GLOBAL read_only = OFF;" | mariadb_sql restore-scratch; fi
}

# Whether a runbook holds lock-<service> (the sandbox's services: shop on primary/replica, wiki on scratch).
# A Temporal that cannot answer counts as held: a server left read-only is safe, one opened may be a second writer.
service_locked() {
  local out
  if out=$("$VENV/bin/temporal" workflow describe --address "$TEMPORAL_ADDRESS" -w "lock-$1" -o json 2>&1); then
    grep -q '"WORKFLOW_EXECUTION_STATUS_RUNNING"' <<<"$out"
  else
    ! grep -q 'not found' <<<"$out"
  fi
}

# mariabackup's socket login and the metadata_lock_info plugin (deploy/mariadb/bootstrap.sh): every start, so
# older stacks get them too. Both are idempotent.
ensure_backup_accounts() {
  local name
  for name in primary replica; do drbook_backup_account_sql "$DRBOOK_DATA/secrets" | mariadb_sql "$name"; done
}
ensure_lock_info() {
  local name
  for name in primary replica scratch cold-dr restore-scratch; do drbook_lock_info_sql | mariadb_sql "$name"; done
}

# On a server's first start, from the files docker-compose.yml mounts too (deploy/mariadb/): users are local to
# each server (not replicated); the schema and heartbeat event come from the primary, by replication.
bootstrap_mariadb() { # name role
  local name=$1 role=$2 secrets=$DRBOOK_DATA/secrets
  drbook_users_sql 127.0.0.1 "$secrets" | mariadb_sql "$name"
  case "$role" in
    primary) { echo 'SET GLOBAL read_only = OFF;' && cat "$MARIADB_BOOTSTRAP/schema.sql"; } | mariadb_sql "$name" ;;
    replica) drbook_replica_sql 127.0.0.1 "$DRBOOK_PRIMARY_PORT" "$secrets" start | mariadb_sql "$name" ;;
    # The cold service `wiki` lives here (no standby: its failover restores a backup into cold-dr).
    scratch) mariadb_sql "$name" <"$MARIADB_BOOTSTRAP/wiki.sql" ;;
  esac
  touch "$DRBOOK_DATA/mariadb/$name/.drbook-bootstrapped"
}

start_moto() {
  # The recorder (off until /moto-api/recorder/start-recording) logs every AWS call: the chaos suite counts side
  # effects in it.
  # scripts/moto-server.py: moto_server, answering PromoteReadReplica and DescribeDBSnapshots paging as AWS does.
  PORT_OF=$DRBOOK_AWS_PORT spawn moto env MOTO_RECORDER_FILEPATH="$RUN/moto-recording.jsonl" \
    "$VENV/bin/python" "$ROOT/scripts/moto-server.py" -H 127.0.0.1 -p "$DRBOOK_AWS_PORT" || return 0
  wait_port moto "$DRBOOK_AWS_PORT" 60
  log "moto (AWS API emulator): http://127.0.0.1:$DRBOOK_AWS_PORT"
}

start_s3proxy() {
  mkdir -p "$DRBOOK_DATA/objects"
  # s3proxy on jclouds' filesystem provider streams each object straight to a file: a multi-gigabyte
  # backup never sits in memory (moto's S3 keeps whole objects in RAM).
  (umask 077 && cat >"$RUN/s3proxy.properties" <<EOF
s3proxy.endpoint=http://127.0.0.1:$DRBOOK_S3_PORT
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$(cat "$DRBOOK_DATA/secrets/aws-access-key-id")
s3proxy.credential=$(cat "$DRBOOK_DATA/secrets/aws-secret-access-key")
jclouds.provider=filesystem-nio2
jclouds.identity=drbook
jclouds.credential=local-disk
jclouds.filesystem.basedir=$DRBOOK_DATA/objects
EOF
)
  PORT_OF=$DRBOOK_S3_PORT spawn s3proxy \
    env LOG_LEVEL=warn java -Xmx256m -jar "$S3PROXY_JAR" --properties "$RUN/s3proxy.properties" || return 0
  wait_port s3proxy "$DRBOOK_S3_PORT" 60
  log "s3proxy (streaming S3 on disk): http://127.0.0.1:$DRBOOK_S3_PORT"
}

start_sshd() {
  mkdir -p /run/sshd
  cat >"$RUN/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $DRBOOK_SSH_PORT
HostKey $DRBOOK_DATA/ssh/host_ed25519
PidFile $RUN/sshd.daemon.pid
AuthorizedKeysFile $DRBOOK_DATA/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
EOF
  PORT_OF=$DRBOOK_SSH_PORT spawn sshd /usr/sbin/sshd -D -e -f "$RUN/sshd_config" || return 0
  wait_port sshd "$DRBOOK_SSH_PORT" 15
  log "sshd: 127.0.0.1:$DRBOOK_SSH_PORT (host key pinned in $DRBOOK_DATA/ssh/known_hosts)"
}

# Whether namespace $1 holds the VIP. Not `ip … | grep -q`: under pipefail, grep quitting at its first match can
# fail the pipeline with ip's SIGPIPE, and the VIP would look absent (then "Address already assigned").
holds_vip() {
  local addrs
  addrs=$(ip -n "$1" addr show dev "$VIP_DEVICE")
  [[ $addrs == *" ${VIP_ADDRESS%/*}/"* ]]
}

start_namespaces() {
  # Two "hosts" for the VIP: each namespace has a bridge device named like the inventory's VIP device.
  local ns
  for ns in "${NAMESPACES[@]}"; do
    [ -e "/run/netns/$ns" ] || ip netns add "$ns"
    ip -n "$ns" link show "$VIP_DEVICE" >/dev/null 2>&1 || ip -n "$ns" link add "$VIP_DEVICE" type bridge
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "$VIP_DEVICE" up
  done
  # The VIP starts on the primary side unless some side already holds it (after a failover it stays where it is).
  if ! holds_vip "$DRBOOK_NETNS_PRIMARY" && ! holds_vip "$DRBOOK_NETNS_DR"; then
    ip -n "$DRBOOK_NETNS_PRIMARY" addr add "$VIP_ADDRESS" dev "$VIP_DEVICE"
  fi
}

node_ts() { (cd "$ROOT" && exec node -r ts-node/register/transpile-only "$@"); }

start_app() {
  webhook_urls
  PORT_OF=$DRBOOK_APP_PORT spawn app \
    node -r "$ROOT/node_modules/ts-node/register/transpile-only" "$ROOT/scripts/sandbox-app.ts" || return 0
  wait_port app "$DRBOOK_APP_PORT" 30
  log "sandbox app: http://127.0.0.1:$DRBOOK_APP_PORT/health"
}

start_codec() { # only with payload encryption on
  [ -n "${DRBOOK_PAYLOAD_KEYS:-}" ] || return 0
  PORT_OF=$DRBOOK_CODEC_PORT spawn codec node -r "$ROOT/node_modules/ts-node/register/transpile-only" \
    "$ROOT/cli/codec-server.ts" || return 0
  wait_port codec "$DRBOOK_CODEC_PORT" 30
  log "codec server: http://127.0.0.1:$DRBOOK_CODEC_PORT (the Web UI decodes payloads through it)"
}

start_worker() {
  PORT_OF=$DRBOOK_METRICS_PORT spawn worker \
    node -r "$ROOT/node_modules/ts-node/register/transpile-only" "$ROOT/workers/main.ts" || return 0
  local i
  for ((i = 0; i < 600; i++)); do
    grep -q 'worker ready' "$LOGS/worker.log" 2>/dev/null && break
    running worker || { tail -n 30 "$LOGS/worker.log" >&2; die "worker exited during start (log: $LOGS/worker.log)"; }
    sleep 0.1
  done
  log "worker: polling task queues (log: $LOGS/worker.log)"
}

cmd_start() {
  mkdir -p "$RUN" "$LOGS"
  [ -x "$VENV/bin/temporal" ] || die "not installed: run scripts/stack.sh install"
  require_runtime
  # Again here: the pinned host key's line and the webhook URLs name this stack's ports, which an install run
  # without this DRBOOK_PORT_OFFSET wrote for other ones (keys and passwords are kept).
  secrets_generate
  start_temporal
  start_codec
  start_mariadb primary "$DRBOOK_PRIMARY_PORT" 1 primary
  start_mariadb replica "$DRBOOK_REPLICA_PORT" 2 replica
  start_mariadb scratch "$DRBOOK_SCRATCH_PORT" 3 scratch
  start_mariadb cold-dr "$DRBOOK_COLD_DR_PORT" 4 cold-dr # stays read-only until a cold failover opens it
  start_mariadb restore-scratch "$DRBOOK_RESTORE_SCRATCH_PORT" 5 restore-scratch # restore tests, isolated drills
  open_primary_for_writes
  ensure_backup_accounts
  ensure_lock_info
  start_moto
  start_s3proxy
  start_sshd
  start_namespaces
  seed_wiki_uploads
  # moto keeps its state in memory: the sandbox estate is (re)seeded on every start; seeding is idempotent.
  node_ts scripts/seed-aws.ts
  start_app
}

COMPONENTS=(worker app sshd s3proxy moto mariadb-restore-scratch mariadb-cold-dr mariadb-scratch mariadb-replica
  mariadb-primary codec temporal)

# A small tree for wiki's file-tree backups (nested directories, a symlink, modes, an excluded cache), made once.
seed_wiki_uploads() {
  local d=$DRBOOK_WIKI_UPLOADS i
  [ -d "$d" ] && return 0
  mkdir -p "$d/2026/11" "$d/2026/12" "$d/cache" "$DRBOOK_FILETREE_STATE"
  for i in $(seq 1 20); do printf 'upload %s\n' "$i" >"$d/2026/$((i % 2 + 11))/page-$i.txt"; done
  printf 'private\n' >"$d/2026/12/draft.txt" && chmod 600 "$d/2026/12/draft.txt"
  printf 'regenerated\n' >"$d/cache/thumb.bin"
  ln -s 2026/12/page-1.txt "$d/latest"
  echo "[seed] wiki uploads: $d"
}

cmd_status() {
  local c state any=1
  for c in "${COMPONENTS[@]}"; do
    if running "$c"; then state="running (pid $(cat "$(pidfile "$c")"))"; any=0; else state=stopped; fi
    printf '%-16s %s\n' "$c" "$state"
  done
  echo "Web UI: http://127.0.0.1:$DRBOOK_UI_PORT   Temporal: $TEMPORAL_ADDRESS   data: $DRBOOK_DATA"
  return $any
}

cmd_stop() {
  local c
  for c in "${COMPONENTS[@]}"; do stop_pid "$c"; done
}

cmd_up() {
  cmd_install
  cmd_start
  start_worker
  # The inventory's schedules, reconciled with Temporal (cli/schedules.ts).
  node_ts cli/drctl.ts schedules reconcile
  echo "drbook is up. Web UI: http://127.0.0.1:$DRBOOK_UI_PORT  (stop with: scripts/stack.sh stop)"
}
