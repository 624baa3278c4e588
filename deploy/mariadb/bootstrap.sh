# drbook's MariaDB bootstrap SQL for both local stacks, as shell functions that print SQL (source this file; it
# runs nothing by itself). scripts/stack.sh pipes their output into each server over its unix socket; the compose
# stack's init scripts (docker/mariadb/users.sh, replica-init.sh) pipe it into the mariadb image's
# docker_process_sql. What differs between the stacks is a parameter: the hosts the users connect from
# (127.0.0.1 on loopback, '%' between containers), the replication source, and the directory of password files.
#
#   drbook_users_sql HOST SECRETS_DIR                    drbook's users, on every server's first start
#   drbook_replica_sql SOURCE_HOST SOURCE_PORT SECRETS_DIR [start]   replicate by GTID from the primary
#   drbook_backup_account_sql SECRETS_DIR                mariabackup's socket login on a database host
#   drbook_lock_info_sql                                 the plugin the fence names its blockers with
# The primary's schema and heartbeat event are deploy/mariadb/schema.sql; the settings, deploy/mariadb/drbook.cnf.

drbook_sql_string() { # a value as the inside of a '...' literal (backslash and quote escaped)
  local s=${1//\\/\\\\}
  printf '%s' "${s//\'/\\\'}"
}

drbook_password() { # SECRETS_DIR NAME: the password file's content as the inside of a '...' literal
  drbook_sql_string "$(cat "$1/$2")"
}

# sql_log_bin=0: users belong to one server and are never replicated (a replica with writes of its own breaks
# gtid-strict-mode).
drbook_users_sql() {
  local host pw rpw apw
  host=$(drbook_sql_string "$1")
  pw=$(drbook_password "$2" mysql-password)
  rpw=$(drbook_password "$2" replication-password)
  apw=$(drbook_password "$2" app-password)
  cat <<EOSQL
SET sql_log_bin = 0;
CREATE USER IF NOT EXISTS 'drbook'@'$host' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON *.* TO 'drbook'@'$host' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS 'repl'@'$host' IDENTIFIED BY '$rpw';
GRANT REPLICATION SLAVE, REPLICATION SLAVE ADMIN, BINLOG MONITOR ON *.* TO 'repl'@'$host';
-- The sandbox application's own user: no SUPER, so read_only (fencing) stops its writes.
CREATE USER IF NOT EXISTS 'shop_app'@'$host' IDENTIFIED BY '$apw';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON shop.* TO 'shop_app'@'$host';
-- The heartbeat event runs as this user: without SUPER, read_only stops it on a fenced primary.
CREATE USER IF NOT EXISTS 'drbook_heartbeat'@'localhost' ACCOUNT LOCK;
GRANT INSERT, UPDATE, SELECT, EVENT ON drbook.* TO 'drbook_heartbeat'@'localhost';
SET sql_log_bin = 1;
EOSQL
}

# From the primary's first transaction (gtid_slave_pos empty): the schema arrives by replication. `start` starts
# replication now (the host stack); the mariadb image's temporary init server runs with --skip-slave-start, and
# replication starts with the real server.
drbook_replica_sql() {
  local host rpw
  host=$(drbook_sql_string "$1")
  rpw=$(drbook_password "$3" replication-password)
  cat <<EOSQL
SET sql_log_bin = 0;
STOP SLAVE;
SET GLOBAL gtid_slave_pos = '';
CHANGE MASTER TO MASTER_HOST='$host', MASTER_PORT=$(($2)), MASTER_USER='repl',
  MASTER_PASSWORD='$rpw', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
EOSQL
  if [ "${4:-}" = start ]; then echo 'START SLAVE;'; fi
}

# mariabackup on the database host connects through the unix socket (a socket login is 'localhost', not
# '127.0.0.1') with only what it needs. Idempotent: the host stack runs it on every start, so older stacks get it.
drbook_backup_account_sql() {
  local pw
  pw=$(drbook_password "$1" mysql-password)
  cat <<EOSQL
SET sql_log_bin = 0;
CREATE USER IF NOT EXISTS 'drbook'@'localhost' IDENTIFIED BY '$pw';
GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO 'drbook'@'localhost';
SET sql_log_bin = 1;
EOSQL
}

# The fence reports who blocks it (docs/operating.md): information_schema.METADATA_LOCK_INFO names the sessions
# holding LOCK TABLES and FLUSH TABLES WITH READ LOCK. A plugin that ships with the server; idempotent.
drbook_lock_info_sql() {
  echo "INSTALL PLUGIN IF NOT EXISTS metadata_lock_info SONAME 'metadata_lock_info';"
}
