# Sourced (keep it non-executable) by the mariadb image's docker-entrypoint.sh on a server's first start, on
# all three servers: drbook's users, as scripts/stack.sh's bootstrap_mariadb makes them. sql_log_bin=0: users
# belong to one server and are never replicated (a replica with writes of its own breaks gtid-strict-mode).
# Passwords come from the compose secrets; '%' since the clients are other containers.
if ! declare -F docker_process_sql >/dev/null; then
  echo "users.sh: must be sourced by the mariadb image's docker-entrypoint.sh" >&2
  exit 1
fi
drbook_sql_string() { # a value as the inside of a '...' literal (backslash and quote escaped)
  local s=${1//\\/\\\\}
  printf '%s' "${s//\'/\\\'}"
}
drbook_secrets=${DRBOOK_SECRETS_DIR:-/run/secrets}
drbook_pw=$(drbook_sql_string "$(cat "$drbook_secrets/mysql-password")")
drbook_rpw=$(drbook_sql_string "$(cat "$drbook_secrets/replication-password")")
drbook_apw=$(drbook_sql_string "$(cat "$drbook_secrets/app-password")")
docker_process_sql <<EOSQL
SET sql_log_bin = 0;
CREATE USER IF NOT EXISTS 'drbook'@'%' IDENTIFIED BY '$drbook_pw';
GRANT ALL PRIVILEGES ON *.* TO 'drbook'@'%' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY '$drbook_rpw';
GRANT REPLICATION SLAVE, REPLICATION SLAVE ADMIN, BINLOG MONITOR ON *.* TO 'repl'@'%';
-- The sandbox application's own user: no SUPER, so read_only (fencing) stops its writes.
CREATE USER IF NOT EXISTS 'shop_app'@'%' IDENTIFIED BY '$drbook_apw';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON shop.* TO 'shop_app'@'%';
-- The heartbeat event runs as this user: without SUPER, read_only stops it on a fenced primary.
CREATE USER IF NOT EXISTS 'drbook_heartbeat'@'localhost' ACCOUNT LOCK;
GRANT INSERT, UPDATE, SELECT, EVENT ON drbook.* TO 'drbook_heartbeat'@'localhost';
SET sql_log_bin = 1;
EOSQL
unset drbook_secrets drbook_pw drbook_rpw drbook_apw
