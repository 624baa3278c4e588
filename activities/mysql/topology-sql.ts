/**
 * The statements every topology step is built from, on one server at a time: a query that names its server when it
 * fails, the server's flavour (MariaDB or MySQL, from VERSION()), the heartbeat event switched without changing its
 * definer, the transactions one server holds that another lacks, and replication started from a source.
 */
import type mysql from 'mysql2/promise';
import { mariadbErrantTransactions, flavorOfVersion, transactionsBehind, type GtidFlavor } from './gtid';
import { quoteName } from '../process/quote';
import { createMysqlActivities, mysqlFailure, type MysqlPools } from './index';

/** Replication credentials per service (database.replication in the inventory), resolved on the worker. */
export type ReplicationCredentials = (service: string) => { user: string; password: string };

/** A server to make a replica of `source` (re-protect, re-clone), with its heartbeat event switched off. */
export interface NewReplica {
  /** Whose replication credentials it uses. */
  service: string;
  server: string;
  source: string;
  heartbeatEvent: string;
}

/** Where a MariaDB replica starts: the position a dump set (`slave_pos`) or its own history (`current_pos`). */
export type GtidStart = 'slave_pos' | 'current_pos';

/** Everything a server has committed: MariaDB gtid_current_pos (or only its binlog's), MySQL gtid_executed. */
export const executedSql = (flavor: GtidFlavor, binlogOnly = false) =>
  flavor === 'mariadb'
    ? `SELECT @@${binlogOnly ? 'gtid_binlog_pos' : 'gtid_current_pos'} AS g`
    : 'SELECT @@gtid_executed AS g';

export function topologySql(pools: MysqlPools) {
  const read = createMysqlActivities(pools);

  async function run(
    server: string,
    conn: mysql.PoolConnection,
    sql: string,
    params: unknown[] = [],
    timeoutMs?: number,
  ) {
    try {
      const [rows] = await conn.query<mysql.RowDataPacket[]>({ sql, timeout: timeoutMs }, params);
      return rows;
    } catch (err) {
      throw mysqlFailure(server, err);
    }
  }

  const withConnection = <T>(server: string, fn: (conn: mysql.PoolConnection) => Promise<T>) =>
    pools.withConnection(server, fn);

  async function flavorOf(server: string, conn: mysql.PoolConnection, timeoutMs?: number): Promise<GtidFlavor> {
    const rows = await run(server, conn, 'SELECT VERSION() AS v', [], timeoutMs);
    return flavorOfVersion(String(rows[0].v));
  }

  /** Turn the heartbeat event on or off on this server only (not replicated). */
  async function setHeartbeatEvent(
    server: string,
    conn: mysql.PoolConnection,
    event: string,
    enable: boolean,
    timeoutMs?: number,
  ) {
    const [schema, name] = event.split('.');
    const found = await run(
      server,
      conn,
      'SELECT definer FROM information_schema.events WHERE event_schema = ? AND event_name = ?',
      [schema, name],
      timeoutMs,
    );
    // No heartbeat event on this server: nothing to switch (the RPO clock then relies on GTIDs).
    if (found.length === 0) return;
    // ALTER EVENT without DEFINER makes the caller (drbook, with SUPER) the definer, and a SUPER
    // definer's writes pass read_only: a fenced primary would keep writing. Keep the original one.
    const [user, host] = String(found[0].definer).split('@');
    await run(server, conn, 'SET SESSION sql_log_bin = 0', [], timeoutMs);
    try {
      await run(
        server,
        conn,
        `ALTER DEFINER = ?@? EVENT ${quoteName(event)} ${enable ? 'ENABLE' : 'DISABLE'}`,
        [user, host],
        timeoutMs,
      );
    } finally {
      await run(server, conn, 'SET SESSION sql_log_bin = 1', [], timeoutMs);
    }
  }

  /** Transactions `server` holds that `source` lacks: a divergence (split brain, or writes lost in a crash). */
  async function errantTransactions(server: string, source: string): Promise<number> {
    // MariaDB: the source's binlog state (last GTID per domain and server) shows a divergence a position would hide.
    const sourceGtids = await withConnection(source, async (conn) => {
      const flavor = await flavorOf(source, conn);
      // ... plus its slave position: a server re-cloned from a dump (RESET MASTER, gtid_slave_pos set by the dump)
      // holds those transactions although its own binlog does not list them yet.
      const sql =
        flavor === 'mariadb'
          ? "SELECT CONCAT_WS(',', NULLIF(@@gtid_binlog_state, ''), NULLIF(@@gtid_slave_pos, '')) AS g"
          : executedSql(flavor, true);
      return String((await run(source, conn, sql))[0].g);
    });
    return withConnection(server, async (conn) => {
      const flavor = await flavorOf(server, conn);
      const mine = String((await run(server, conn, executedSql(flavor)))[0].g);
      return flavor === 'mariadb'
        ? mariadbErrantTransactions(mine, sourceGtids)
        : transactionsBehind(flavor, mine, sourceGtids);
    });
  }

  /**
   * Make `server` a replica of `source` and start it: at the source's replication address, never the worker's route
   * to it. MariaDB starts from `gtidPos`, MySQL from its own auto position. The credentials are statement
   * parameters: never in the SQL text, an error or a log.
   */
  async function startReplicationFrom(
    server: string,
    conn: mysql.PoolConnection,
    source: string,
    { user, password }: { user: string; password: string },
    { flavor, gtidPos }: { flavor: GtidFlavor; gtidPos: GtidStart },
  ): Promise<void> {
    const { host, port } = pools.replicationSource(source);
    if (flavor === 'mariadb') {
      await run(
        server,
        conn,
        'CHANGE MASTER TO MASTER_HOST = ?, MASTER_PORT = ?, MASTER_USER = ?, MASTER_PASSWORD = ?, ' +
          `MASTER_USE_GTID = ${gtidPos}, MASTER_CONNECT_RETRY = 1`,
        [host, port, user, password],
      );
      await run(server, conn, 'START SLAVE');
    } else {
      await run(
        server,
        conn,
        'CHANGE REPLICATION SOURCE TO SOURCE_HOST = ?, SOURCE_PORT = ?, SOURCE_USER = ?, SOURCE_PASSWORD = ?, ' +
          'SOURCE_AUTO_POSITION = 1',
        [host, port, user, password],
      );
      await run(server, conn, 'START REPLICA');
    }
  }

  return { read, run, withConnection, flavorOf, setHeartbeatEvent, errantTransactions, startReplicationFrom };
}

export type TopologySql = ReturnType<typeof topologySql>;
