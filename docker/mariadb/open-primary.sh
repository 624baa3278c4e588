#!/bin/bash
# One-shot (compose service mariadb-open) on every `up`: scripts/stack.sh's open_primary_for_writes.
# Every server starts read-only (drbook.cnf). Whichever server the others replicate from is the primary and
# becomes writable; after a failover that is the promoted server, and the old primary stays read-only until
# failback re-protects it. The scratch server has no replication and is always writable.
set -euo pipefail
read -r -a servers <<<"${DRBOOK_REPLICATED_SERVERS:-mariadb-primary mariadb-replica}"
scratch=${DRBOOK_SCRATCH_SERVER:-mariadb-scratch}
MYSQL_PWD=$(cat "${DRBOOK_SECRETS_DIR:-/run/secrets}/mysql-password")
export MYSQL_PWD
port=${DRBOOK_MARIADB_PORT:-3306}

# No --skip-column-names: it drops the field names from SHOW SLAVE STATUS\G too.
sql() { mariadb --no-defaults --protocol=tcp -h "$1" -P "$port" -u drbook --batch; }
open_for_writes() {
  echo 'SET GLOBAL read_only = OFF;' | sql "$1"
  echo "open-primary: $1 is writable"
}

for name in "${servers[@]}"; do
  source=$(echo 'SHOW SLAVE STATUS\G' | sql "$name" | awk '/Master_Host:/ {print $2}')
  for candidate in "${servers[@]}"; do
    if [ "$source" = "$candidate" ]; then open_for_writes "$candidate"; fi
  done
done
open_for_writes "$scratch"
