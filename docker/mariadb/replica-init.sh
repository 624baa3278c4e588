# Sourced (keep it non-executable) by the mariadb image's docker-entrypoint.sh on the replica's first start,
# after users.sh: replicate from the primary by GTID from its first transaction, as scripts/stack.sh does.
# The entrypoint's temporary server runs with --skip-slave-start; replication starts with the real server.
if ! declare -F docker_process_sql >/dev/null; then
  echo "replica-init.sh: must be sourced by the mariadb image's docker-entrypoint.sh" >&2
  exit 1
fi
drbook_sql_string() { # a value as the inside of a '...' literal (backslash and quote escaped)
  local s=${1//\\/\\\\}
  printf '%s' "${s//\'/\\\'}"
}
drbook_source_host=${DRBOOK_REPLICATION_SOURCE_HOST:-mariadb-primary}
drbook_source_port=${DRBOOK_REPLICATION_SOURCE_PORT:-3306}
drbook_rpw=$(drbook_sql_string "$(cat "${DRBOOK_SECRETS_DIR:-/run/secrets}/replication-password")")
docker_process_sql <<EOSQL
SET sql_log_bin = 0;
STOP SLAVE;
SET GLOBAL gtid_slave_pos = '';
CHANGE MASTER TO MASTER_HOST='$drbook_source_host', MASTER_PORT=$drbook_source_port, MASTER_USER='repl',
  MASTER_PASSWORD='$drbook_rpw', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
EOSQL
unset drbook_rpw
