# Sourced (keep it non-executable) by the mariadb image's docker-entrypoint.sh on a server's first start, on
# all three servers: drbook's users from deploy/mariadb/bootstrap.sh (mounted at /opt/drbook/mariadb), as
# scripts/stack.sh makes them. Passwords come from the compose secrets; '%' since the clients are other containers.
if ! declare -F docker_process_sql >/dev/null; then
  echo "users.sh: must be sourced by the mariadb image's docker-entrypoint.sh" >&2
  exit 1
fi
. "${DRBOOK_MARIADB_BOOTSTRAP:-/opt/drbook/mariadb}/bootstrap.sh"
drbook_users_sql '%' "${DRBOOK_SECRETS_DIR:-/run/secrets}" | docker_process_sql
