# Sourced (keep it non-executable) by the mariadb image's docker-entrypoint.sh on the replica's first start,
# after users.sh: replicate from the primary by GTID from its first transaction (deploy/mariadb/bootstrap.sh,
# mounted at /opt/drbook/mariadb), as scripts/stack.sh does. The entrypoint's temporary server runs with
# --skip-slave-start; replication starts with the real server.
if ! declare -F docker_process_sql >/dev/null; then
  echo "replica-init.sh: must be sourced by the mariadb image's docker-entrypoint.sh" >&2
  exit 1
fi
. "${DRBOOK_MARIADB_BOOTSTRAP:-/opt/drbook/mariadb}/bootstrap.sh"
drbook_replica_sql "${DRBOOK_REPLICATION_SOURCE_HOST:-mariadb-primary}" "${DRBOOK_REPLICATION_SOURCE_PORT:-3306}" \
  "${DRBOOK_SECRETS_DIR:-/run/secrets}" | docker_process_sql
