/**
 * Topology changes: fence a primary, wait for a replica to catch up, promote it, and
 * rebuild an old primary as a replica of the new one. Each one checks the server's
 * state first, so a retried or repeated call is a success, not a second change.
 *
 * MariaDB is exercised by the test suite; the MySQL 8 spellings are chosen by flavour
 * (VERSION()) and follow the MySQL manual, but no MySQL server runs in the local stack.
 */
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { heartbeat } from '@temporalio/activity';
import type mysql from 'mysql2/promise';
import { ErrorType } from '../../workflows/contract';
import { failure } from '../errors';
import { mariadbErrantTransactions, transactionsBehind, type GtidFlavor } from './gtid';
import { collect, exitOf, writeClientDefaults } from './dump';
import { whileHeartbeating } from '../liveness';
import { createMysqlActivities, mysqlFailure, type MysqlPools } from './index';

/** Faults that mean "the server is not there", as opposed to "the server said no". */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'PROTOCOL_CONNECTION_LOST',
  'ECONNRESET',
  'EPIPE',
  // A statement that got no answer within its timeout: a silent network, as far as the fence can tell.
  'PROTOCOL_SEQUENCE_TIMEOUT',
]);

/**
 * The fence's own budget (its step allows 20 s): attempts start for up to FENCE_REACH_MS, each statement waits at
 * most FENCE_STATEMENT_TIMEOUT_MS. A connection reset or a slow link is ridden out; a server still unreachable after
 * that is reported as not fenced, for an operator to acknowledge.
 */
const FENCE_REACH_MS = 10_000;
const FENCE_STATEMENT_TIMEOUT_MS = 4_000;
const FENCE_RETRY_PAUSE_MS = 1_000;

const quoteName = (qualified: string) =>
  qualified
    .split('.')
    .map((p) => `\`${p.replace(/`/g, '``')}\``)
    .join('.');

export interface FenceResult {
  server: string;
  reachable: boolean;
  fenced: boolean;
  /** Everything the fenced primary ever committed: what the replica must hold before promotion. */
  finalGtids: string | null;
  detail: string;
}

export interface CatchUpResult {
  replica: string;
  waitedFor: string;
  caughtUp: boolean;
  transactionsBehind: number | null;
  replicaHeartbeatAt: number | null;
}

export interface PromoteResult {
  server: string;
  alreadyPrimary: boolean;
  gtids: string;
}

/** Replication credentials per service (database.replication in the inventory), resolved on the worker. */
export type ReplicationCredentials = (service: string) => { user: string; password: string };

export function createMysqlTopologyActivities(pools: MysqlPools, replicationCredentials: ReplicationCredentials) {
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
    return /mariadb/i.test(String(rows[0].v)) ? 'mariadb' : 'mysql';
  }

  const executedSql = (flavor: GtidFlavor, binlogOnly = false) =>
    flavor === 'mariadb'
      ? `SELECT @@${binlogOnly ? 'gtid_binlog_pos' : 'gtid_current_pos'} AS g`
      : 'SELECT @@gtid_executed AS g';

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

  return {
    /** How many transactions `server` holds that `source` lacks (0: it can simply replicate from it). */
    async countErrantTransactions({
      server,
      source,
    }: {
      server: string;
      source: string;
    }): Promise<{ server: string; source: string; errant: number }> {
      return { server, source, errant: await errantTransactions(server, source) };
    },

    /**
     * Fence the old primary: stop its heartbeat, set read_only=ON (which waits for commits in
     * flight), then read everything it has committed. Connection faults are retried within the
     * fence's own short budget (every statement is idempotent), so a reset or a slow link does not
     * leave a primary unfenced; a server still unreachable after it is reported, and the workflow
     * asks a human to acknowledge that it could not be fenced.
     */
    async fencePrimary({ server, heartbeatEvent }: { server: string; heartbeatEvent: string }): Promise<FenceResult> {
      const t = FENCE_STATEMENT_TIMEOUT_MS;
      const fence = () =>
        withConnection(server, async (conn) => {
          const flavor = await flavorOf(server, conn, t);
          await setHeartbeatEvent(server, conn, heartbeatEvent, false, t);
          await run(server, conn, 'SET GLOBAL read_only = ON', [], t);
          if (flavor === 'mysql') await run(server, conn, 'SET GLOBAL super_read_only = ON', [], t);
          return String((await run(server, conn, executedSql(flavor, true), [], t))[0].g);
        });
      const started = Date.now();
      const faults: string[] = [];
      for (;;) {
        try {
          const finalGtids = await fence();
          const rode = faults.length ? ` (after ${faults.length} connection fault(s): ${faults.join(', ')})` : '';
          return {
            server,
            reachable: true,
            fenced: true,
            finalGtids,
            detail: `${server}: read_only=ON, heartbeat stopped${rode}`,
          };
        } catch (err) {
          const code = (err as { type?: string }).type ?? '';
          if (!UNREACHABLE.has(code)) throw err;
          faults.push(code);
          if (Date.now() - started >= FENCE_REACH_MS) {
            const seconds = Math.round((Date.now() - started) / 1000);
            return {
              server,
              reachable: false,
              fenced: false,
              finalGtids: null,
              detail: `${server} unreachable (${faults.join(', ')}; ${faults.length} attempts in ${seconds} s): not fenced`,
            };
          }
          await new Promise((resolve) => setTimeout(resolve, FENCE_RETRY_PAUSE_MS));
        }
      }
    },

    /**
     * Wait until the replica has applied `gtids` (the fenced primary's final position), or, with
     * the primary gone, everything it already received. Heartbeats while it waits.
     */
    async waitForCatchUp({
      replica,
      gtids,
      heartbeatTable,
      timeoutSeconds,
    }: {
      replica: string;
      gtids: string | null;
      heartbeatTable: string;
      timeoutSeconds: number;
    }): Promise<CatchUpResult> {
      const status = await read.readReplicationStatus({ server: replica });
      if (status.configured && !status.sqlRunning) {
        throw failure(
          ErrorType.ReplicationBroken,
          `${replica}: SQL thread stopped: ${status.lastSqlError || 'no error recorded'}`,
          { replica },
        );
      }
      // With the primary up (gtids known), a stopped IO thread means the replica will never get there.
      if (gtids !== null && status.configured && !status.ioRunning) {
        throw failure(
          ErrorType.ReplicationBroken,
          `${replica}: IO thread not running: ${status.lastIoError || 'no error recorded'}`,
          { replica },
        );
      }
      const target = gtids ?? status.receivedGtids;
      const deadline = Date.now() + timeoutSeconds * 1000;
      const caughtUp = await withConnection(replica, async (conn) => {
        const flavor = await flavorOf(replica, conn);
        const waitSql =
          flavor === 'mariadb' ? 'SELECT MASTER_GTID_WAIT(?, ?) AS r' : 'SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?) AS r';
        for (;;) {
          const left = Math.max(1, Math.min(5, Math.ceil((deadline - Date.now()) / 1000)));
          const rows = await run(replica, conn, waitSql, [target, left]);
          if (Number(rows[0].r) === 0) return true;
          heartbeat({ waitingFor: target });
          if (Date.now() >= deadline) return false;
        }
      });
      const lagNow = await withConnection(replica, async (conn) => {
        const flavor = await flavorOf(replica, conn);
        const have = String((await run(replica, conn, executedSql(flavor)))[0].g);
        return target ? transactionsBehind(flavor, target, have) : 0;
      });
      const hb = await withConnection(replica, async (conn) => {
        const rows = await run(replica, conn, `SELECT UNIX_TIMESTAMP(MAX(ts)) AS t FROM ${quoteName(heartbeatTable)}`);
        return rows[0].t === null ? null : Math.round(Number(rows[0].t) * 1000);
      });
      if (!caughtUp) {
        throw failure(
          ErrorType.ReplicaLagTooHigh,
          `${replica} did not apply ${target} within ${timeoutSeconds} s (${lagNow} transactions behind)`,
          {
            replica,
            transactionsBehind: lagNow,
          },
        );
      }
      return { replica, waitedFor: target, caughtUp, transactionsBehind: lagNow, replicaHeartbeatAt: hb };
    },

    /** Stop replication for good, make the server writable and give it the heartbeat. Idempotent. */
    async promoteReplica({
      server,
      heartbeatEvent,
    }: {
      server: string;
      heartbeatEvent: string;
    }): Promise<PromoteResult> {
      const promoted = withConnection(server, async (conn) => {
        const flavor = await flavorOf(server, conn);
        const before = await read.readReplicationStatus({ server });
        const ro = await run(server, conn, 'SELECT @@read_only AS ro');
        const alreadyPrimary = !before.configured && Number(ro[0].ro) === 0;
        if (before.configured) {
          await run(server, conn, flavor === 'mariadb' ? 'STOP SLAVE' : 'STOP REPLICA');
          await run(server, conn, flavor === 'mariadb' ? 'RESET SLAVE ALL' : 'RESET REPLICA ALL');
        }
        if (flavor === 'mysql') await run(server, conn, 'SET GLOBAL super_read_only = OFF');
        await run(server, conn, 'SET GLOBAL read_only = OFF');
        await setHeartbeatEvent(server, conn, heartbeatEvent, true);
        const gtids = String((await run(server, conn, executedSql(flavor)))[0].g);
        return { server, alreadyPrimary, gtids };
      });
      return whileHeartbeating({ promoting: server }, promoted);
    },

    /**
     * Undo a fence: make a primary that is not replicating writable again and restart its
     * heartbeat. Refuses a server that replicates from something (that would be a split brain).
     */
    async unfencePrimary({
      server,
      heartbeatEvent,
    }: {
      server: string;
      heartbeatEvent: string;
    }): Promise<{ server: string }> {
      const status = await read.readReplicationStatus({ server });
      if (status.configured) {
        throw failure(
          ErrorType.ReplicationBroken,
          `${server} replicates from ${status.sourceHost}:${status.sourcePort}${status.sourceServer ? ` (${status.sourceServer})` : ''}: refusing to make it writable`,
          { server },
        );
      }
      const unfenced = withConnection(server, async (conn) => {
        const flavor = await flavorOf(server, conn);
        if (flavor === 'mysql') await run(server, conn, 'SET GLOBAL super_read_only = OFF');
        await run(server, conn, 'SET GLOBAL read_only = OFF');
        await setHeartbeatEvent(server, conn, heartbeatEvent, true);
        return { server };
      });
      return whileHeartbeating({ unfencing: server }, unfenced);
    },

    /**
     * Re-protect: make `server` (a fenced old primary) a replica of `source`, from its own GTID
     * position. Refuses if it holds transactions the source lacks (errant: it needs a rebuild
     * from backup, not a CHANGE MASTER that would silently diverge).
     */
    async rebuildAsReplica({
      service,
      server,
      source,
      heartbeatEvent,
    }: {
      service: string;
      server: string;
      source: string;
      heartbeatEvent: string;
    }): Promise<{ server: string; source: string; alreadyReplicating: boolean }> {
      const rebuilt = (async () => {
        // The source's replication address, not the worker's route to it: replication must not run through a bastion or proxy.
        const src = pools.replicationSource(source);
        const status = await read.readReplicationStatus({ server });
        if (
          status.configured &&
          status.ioRunning &&
          status.sqlRunning &&
          status.sourcePort === src.port &&
          status.sourceHost === src.host
        ) {
          return { server, source, alreadyReplicating: true };
        }
        const errant = await errantTransactions(server, source);
        if (errant > 0) {
          throw failure(
            ErrorType.ReplicationBroken,
            `${server} has ${errant} transaction(s) that ${source} lacks (written after the failover?): rebuild it from ${source}`,
            { server, source, errant },
          );
        }
        await withConnection(server, async (conn) => {
          const flavor = await flavorOf(server, conn);
          await setHeartbeatEvent(server, conn, heartbeatEvent, false);
          await run(server, conn, 'SET GLOBAL read_only = ON');
          await run(server, conn, flavor === 'mariadb' ? 'STOP SLAVE' : 'STOP REPLICA');
          const { user: replicationUser, password } = replicationCredentials(service);
          if (flavor === 'mariadb') {
            await run(
              server,
              conn,
              'CHANGE MASTER TO MASTER_HOST = ?, MASTER_PORT = ?, MASTER_USER = ?, MASTER_PASSWORD = ?, MASTER_USE_GTID = current_pos, MASTER_CONNECT_RETRY = 1',
              [src.host, src.port, replicationUser, password],
            );
            await run(server, conn, 'START SLAVE');
          } else {
            await run(
              server,
              conn,
              'CHANGE REPLICATION SOURCE TO SOURCE_HOST = ?, SOURCE_PORT = ?, SOURCE_USER = ?, SOURCE_PASSWORD = ?, SOURCE_AUTO_POSITION = 1',
              [src.host, src.port, replicationUser, password],
            );
            await run(server, conn, 'START REPLICA');
          }
        });
        return { server, source, alreadyReplicating: false };
      })();
      return whileHeartbeating({ rebuilding: server, from: source }, rebuilt);
    },

    /**
     * Rebuild a diverged old primary as a fresh copy of `source`: its own databases and binlog
     * are discarded (RESET MASTER), the source's databases are streamed in with
     * mariadb-dump | mariadb (no temp file, passwords in 0600 defaults files), and it then
     * replicates from the GTID position the dump was taken at. Only after an approval that
     * says the divergent transactions may be discarded (failback asks for it).
     */
    async recloneFromSource({
      service,
      server,
      source,
      heartbeatEvent,
    }: {
      service: string;
      server: string;
      source: string;
      heartbeatEvent: string;
    }): Promise<{ server: string; source: string; databases: string[]; bytes: number }> {
      const databases = (
        await withConnection(source, (conn) =>
          run(
            source,
            conn,
            "SELECT schema_name AS d FROM information_schema.schemata WHERE schema_name NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')",
          ),
        )
      ).map((r) => String(r.d));
      await withConnection(server, async (conn) => {
        await setHeartbeatEvent(server, conn, heartbeatEvent, false);
        await run(server, conn, 'SET GLOBAL read_only = ON');
        await run(server, conn, 'STOP SLAVE');
        await run(server, conn, 'RESET SLAVE ALL');
        await run(server, conn, 'SET SESSION sql_log_bin = 0');
        const mine = await run(
          server,
          conn,
          "SELECT schema_name AS d FROM information_schema.schemata WHERE schema_name NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')",
        );
        for (const r of mine) await run(server, conn, `DROP DATABASE ${quoteName(String(r.d))}`);
        await run(server, conn, 'RESET MASTER');
      });
      const [from, to] = await Promise.all([
        writeClientDefaults(pools.target(source)),
        writeClientDefaults(pools.target(server)),
      ]);
      let bytes = 0;
      try {
        const dump = spawn(
          'mariadb-dump',
          [
            `--defaults-extra-file=${from.file}`,
            '--single-transaction',
            '--gtid',
            '--master-data=1',
            '--routines',
            '--events',
            '--triggers',
            '--databases',
            ...databases,
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        // Loaded with sql_log_bin=0: the copy's binlog stays empty, so it holds no transactions of its own.
        const load = spawn(
          'mariadb',
          [`--defaults-extra-file=${to.file}`, '--init-command=SET SESSION sql_log_bin=0'],
          { stdio: ['pipe', 'ignore', 'pipe'] },
        );
        const dumpErr = collect(dump.stderr);
        const loadErr = collect(load.stderr);
        dump.stdout.on('data', (d: Buffer) => {
          bytes += d.length;
        });
        const beat = setInterval(() => heartbeat({ bytes }), 2000);
        try {
          const [d, l] = await Promise.all([
            exitOf(dump, 'mariadb-dump'),
            exitOf(load, 'mariadb'),
            pipeline(dump.stdout, load.stdin),
          ]);
          if (d.code !== 0)
            throw failure('RecloneFailed', `mariadb-dump on ${source} exited ${d.code}: ${dumpErr()}`, {
              server,
              source,
            });
          if (l.code !== 0)
            throw failure('RecloneFailed', `mariadb into ${server} exited ${l.code}: ${loadErr()}`, { server, source });
        } finally {
          clearInterval(beat);
        }
      } finally {
        await Promise.all([
          rm(from.dir, { recursive: true, force: true }),
          rm(to.dir, { recursive: true, force: true }),
        ]);
      }
      // The dump set gtid_slave_pos to where it was taken: replicate from there (at the source's replication address).
      const src = pools.replicationSource(source);
      const { user, password } = replicationCredentials(service);
      await withConnection(server, async (conn) => {
        await setHeartbeatEvent(server, conn, heartbeatEvent, false);
        await run(
          server,
          conn,
          'CHANGE MASTER TO MASTER_HOST = ?, MASTER_PORT = ?, MASTER_USER = ?, MASTER_PASSWORD = ?, MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1',
          [src.host, src.port, user, password],
        );
        await run(server, conn, 'START SLAVE');
      });
      return { server, source, databases, bytes };
    },

    /** A real write on the (new) primary: the heartbeat row, stamped now. */
    async verifyWritable({
      server,
      heartbeatTable,
    }: {
      server: string;
      heartbeatTable: string;
    }): Promise<{ server: string; wroteAt: number }> {
      return withConnection(server, async (conn) => {
        // A server restored from a backup (cold failover) may not have the heartbeat table yet.
        await run(server, conn, `CREATE DATABASE IF NOT EXISTS ${quoteName(heartbeatTable.split('.')[0])}`);
        await run(
          server,
          conn,
          `CREATE TABLE IF NOT EXISTS ${quoteName(heartbeatTable)} (server_id INT UNSIGNED NOT NULL PRIMARY KEY, ts TIMESTAMP(6) NOT NULL)`,
        );
        await run(
          server,
          conn,
          `INSERT INTO ${quoteName(heartbeatTable)} (server_id, ts) VALUES (@@server_id, NOW(6)) ON DUPLICATE KEY UPDATE ts = NOW(6)`,
        );
        const rows = await run(
          server,
          conn,
          `SELECT UNIX_TIMESTAMP(ts) AS t FROM ${quoteName(heartbeatTable)} WHERE server_id = @@server_id`,
        );
        return { server, wroteAt: Math.round(Number(rows[0].t) * 1000) };
      });
    },
  };
}

export type MysqlTopologyActivities = ReturnType<typeof createMysqlTopologyActivities>;
