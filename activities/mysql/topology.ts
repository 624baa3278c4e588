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
import { ErrorType, PLAIN_DATABASE_NAME } from '../../contract';
import { failure } from '../errors';
import { mariadbErrantTransactions, transactionsBehind, type GtidFlavor } from './gtid';
import { collect, exitOf, loaderOptions, REFUSED_CLIENT_COMMAND, writeClientDefaults } from './dump';
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
/** A database name a re-clone passes to mariadb-dump: a plain identifier, never one that reads as an option. */
export const CLONEABLE_DATABASE = PLAIN_DATABASE_NAME;

const FENCE_REACH_MS = 10_000;
const FENCE_STATEMENT_TIMEOUT_MS = 4_000;
const FENCE_RETRY_PAUSE_MS = 1_000;
/**
 * How long SET GLOBAL read_only = ON may wait for a lock on the server (a running write, LOCK TABLES, another
 * session's FLUSH TABLES WITH READ LOCK) before the fence reads who holds it: well inside the statement timeout,
 * so a server that answers but is blocked is never mistaken for one that does not answer.
 */
const FENCE_LOCK_WAIT_SECONDS = 2;

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
  /** The server answered, but read_only = ON waited on locks these sessions hold (empty unless blocked). */
  blockers?: LockHolder[];
}

/** A session that holds what a fence waits for: a running statement, an open transaction, or a lock. */
export interface LockHolder {
  id: number;
  user: string;
  host: string;
  command: string;
  seconds: number;
  state: string;
  statement: string;
  /** Open InnoDB transaction started at (ISO), if any. */
  transactionStartedAt: string | null;
  /** Metadata locks it holds (LOCK TABLES, FLUSH TABLES WITH READ LOCK), where the server can tell. */
  locks: string[];
}

/** The fence, read again: does it still hold? */
export interface FenceCheck {
  server: string;
  reachable: boolean;
  readOnly: boolean | null;
  /** The server's binlog position now. */
  gtids: string | null;
  /** Transactions it committed after the fence's final position (its writes the replica will never get). */
  committedSinceFence: number | null;
  holds: boolean;
  detail: string;
}

/** Who may take writes right now, read from each member. */
export interface WriterCheck {
  members: { server: string; reachable: boolean; readOnly: boolean | null }[];
  writable: string[];
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

/** One line per session that holds what the fence waits for. */
function describeHolders(holders: LockHolder[]): string {
  if (holders.length === 0) return 'no session holds a lock now (it was released meanwhile)';
  return `held by ${holders
    .map((h) => {
      const what = [
        `${h.command} ${h.seconds} s${h.state ? ` (${h.state})` : ''}`,
        h.statement ? `"${h.statement}"` : null,
        h.transactionStartedAt ? `transaction open since ${h.transactionStartedAt}` : null,
        h.locks.length ? `locks: ${h.locks.join(', ')}` : null,
      ].filter(Boolean);
      return `session ${h.id} ${h.user}@${h.host}: ${what.join(', ')}`;
    })
    .join('; ')}`;
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

  /**
   * Who holds what a fence waits for: sessions running a statement, with an open transaction, or holding
   * metadata locks (LOCK TABLES, FLUSH TABLES WITH READ LOCK: information_schema.METADATA_LOCK_INFO, where
   * the metadata_lock_info plugin is loaded). Replication and event-scheduler threads are left out.
   */
  async function lockHolders(server: string): Promise<LockHolder[]> {
    return withConnection(server, async (conn) => {
      const sessions = await run(
        server,
        conn,
        `SELECT p.ID AS id, p.USER AS user, p.HOST AS host, p.COMMAND AS command, p.TIME AS seconds,
                COALESCE(p.STATE, '') AS state, LEFT(COALESCE(p.INFO, ''), 200) AS statement, t.trx_started AS trx
           FROM information_schema.PROCESSLIST p
           LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID
          WHERE p.ID <> CONNECTION_ID()
            AND p.COMMAND NOT IN ('Daemon', 'Binlog Dump', 'Slave_IO', 'Slave_SQL', 'Slave_worker')
            AND p.USER NOT IN ('system user', 'event_scheduler')
          ORDER BY p.TIME DESC`,
        [],
        FENCE_STATEMENT_TIMEOUT_MS,
      );
      const locks = new Map<number, string[]>();
      const mdl = await run(
        server,
        conn,
        `SELECT THREAD_ID AS id, LOCK_MODE AS mode, CONCAT_WS('.', NULLIF(TABLE_SCHEMA, ''), NULLIF(TABLE_NAME, '')) AS obj
           FROM information_schema.METADATA_LOCK_INFO WHERE THREAD_ID <> CONNECTION_ID()`,
        [],
        FENCE_STATEMENT_TIMEOUT_MS,
      ).catch(() => [] as mysql.RowDataPacket[]); // the plugin is not loaded: sessions and transactions only
      for (const l of mdl) {
        const id = Number(l.id);
        locks.set(id, [...(locks.get(id) ?? []), `${String(l.mode)}${l.obj ? ` ${String(l.obj)}` : ''}`]);
      }
      return sessions
        .map((r) => ({
          id: Number(r.id),
          user: String(r.user),
          host: String(r.host),
          command: String(r.command),
          seconds: Number(r.seconds),
          state: String(r.state),
          statement: String(r.statement),
          transactionStartedAt: r.trx ? new Date(r.trx as string).toISOString() : null,
          locks: locks.get(Number(r.id)) ?? [],
        }))
        .filter((h) => h.command !== 'Sleep' || h.transactionStartedAt !== null || h.locks.length > 0);
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
     * asks a human to acknowledge that it could not be fenced. A server that answers but whose
     * read_only = ON waits on a lock is reported as blocked, with the sessions holding it: never as
     * unreachable.
     */
    async fencePrimary({ server, heartbeatEvent }: { server: string; heartbeatEvent: string }): Promise<FenceResult> {
      const t = FENCE_STATEMENT_TIMEOUT_MS;
      // A private session: lock_wait_timeout (and sql_log_bin, briefly) change, and the pool must never hand them on.
      const fence = () =>
        pools.withPrivateSession(server, async (conn) => {
          const flavor = await flavorOf(server, conn, t);
          await setHeartbeatEvent(server, conn, heartbeatEvent, false, t);
          await run(server, conn, `SET SESSION lock_wait_timeout = ${FENCE_LOCK_WAIT_SECONDS}`, [], t);
          await run(server, conn, 'SET GLOBAL read_only = ON', [], t);
          if (flavor === 'mysql') await run(server, conn, 'SET GLOBAL super_read_only = ON', [], t);
          return String((await run(server, conn, executedSql(flavor, true), [], t))[0].g);
        });
      const started = Date.now();
      const faults: string[] = [];
      let blockers: LockHolder[] | null = null;
      let blockedAttempts = 0;
      for (;;) {
        try {
          const finalGtids = await fence();
          const rode = faults.length ? ` (after ${faults.length} connection fault(s): ${faults.join(', ')})` : '';
          const waited = blockedAttempts ? ` (after waiting on locks ${blockedAttempts} time(s))` : '';
          return {
            server,
            reachable: true,
            fenced: true,
            finalGtids,
            detail: `${server}: read_only=ON, heartbeat stopped${rode}${waited}`,
          };
        } catch (err) {
          const code = (err as { type?: string }).type ?? '';
          if (code === 'ER_LOCK_WAIT_TIMEOUT') {
            blockedAttempts += 1;
            blockers = await lockHolders(server).catch(() => blockers ?? []);
          } else if (UNREACHABLE.has(code)) faults.push(code);
          else throw err;
          if (Date.now() - started >= FENCE_REACH_MS) {
            const seconds = Math.round((Date.now() - started) / 1000);
            // The server answered (last time it was asked, or on some attempt): blocked, not unreachable.
            if (blockers !== null) {
              return {
                server,
                reachable: true,
                fenced: false,
                finalGtids: null,
                blockers,
                detail: `${server} answers, but read_only=ON is blocked: it waited ${FENCE_LOCK_WAIT_SECONDS} s for a lock ${blockedAttempts} time(s) in ${seconds} s; ${describeHolders(blockers)}: not fenced`,
              };
            }
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
     * Read the fence again, right before promotion: the old primary (when reachable) must still be
     * read-only and must not have committed anything past the fence's final position. An unreachable
     * server is reported as such (its fence cannot be re-read, and nobody reaches it through drbook).
     */
    async verifyFence({ server, finalGtids }: { server: string; finalGtids: string | null }): Promise<FenceCheck> {
      try {
        return await pools.withConnection(server, async (conn) => {
          const flavor = await flavorOf(server, conn, FENCE_STATEMENT_TIMEOUT_MS);
          const rows = await run(
            server,
            conn,
            `SELECT @@global.read_only AS ro, ${flavor === 'mariadb' ? '@@gtid_binlog_pos' : '@@gtid_executed'} AS g`,
            [],
            FENCE_STATEMENT_TIMEOUT_MS,
          );
          const readOnly = Number(rows[0].ro) === 1;
          const gtids = String(rows[0].g);
          const committedSinceFence = finalGtids === null ? null : transactionsBehind(flavor, gtids, finalGtids);
          const problems = [
            readOnly ? null : 'read_only=OFF: it takes writes again',
            committedSinceFence
              ? `${committedSinceFence} transaction(s) committed after the fence (at ${gtids})`
              : null,
          ].filter((p): p is string => p !== null);
          return {
            server,
            reachable: true,
            readOnly,
            gtids,
            committedSinceFence,
            holds: problems.length === 0,
            detail: problems.length
              ? `${server}: the fence no longer holds: ${problems.join('; ')}`
              : `${server}: still read-only, nothing committed since the fence${finalGtids ? ` (${finalGtids})` : ''}`,
          };
        });
      } catch (err) {
        const code = (err as { type?: string }).type ?? '';
        if (!UNREACHABLE.has(code)) throw err;
        return {
          server,
          reachable: false,
          readOnly: null,
          gtids: null,
          committedSinceFence: null,
          holds: true,
          detail: `${server} unreachable (${code}): its fence cannot be re-read`,
        };
      }
    },

    /** After cut-over: which members take writes now (read_only read from each; unreachable ones said so). */
    async readWritableMembers({ servers }: { servers: string[] }): Promise<WriterCheck> {
      const members = await Promise.all(
        servers.map(async (server) => {
          try {
            const rows = await pools.withConnection(server, (conn) =>
              run(server, conn, 'SELECT @@global.read_only AS ro', [], FENCE_STATEMENT_TIMEOUT_MS),
            );
            return { server, reachable: true, readOnly: Number(rows[0].ro) === 1 };
          } catch (err) {
            if (!UNREACHABLE.has((err as { type?: string }).type ?? '')) throw err;
            return { server, reachable: false, readOnly: null };
          }
        }),
      );
      const writable = members.filter((m) => m.readOnly === false).map((m) => m.server);
      const unreachable = members.filter((m) => !m.reachable).map((m) => m.server);
      return {
        members,
        writable,
        detail: `writable: ${writable.join(', ') || 'none'}${unreachable.length ? `; unreachable: ${unreachable.join(', ')}` : ''}`,
      };
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

    /**
     * Stop replication for good, give the server the heartbeat and make it writable. Idempotent. The
     * statements that cannot be taken back come last (forgetting the source, then read_only = OFF): a promotion
     * that fails before them leaves a read-only server that still knows its source, which compensation can
     * simply re-protect; once read_only is OFF the server may have taken writes, and compensation fences it again
     * before the old primary is reopened.
     */
    async promoteReplica({
      server,
      heartbeatEvent,
    }: {
      server: string;
      heartbeatEvent: string;
    }): Promise<PromoteResult> {
      const promoted = pools.withPrivateSession(server, async (conn) => {
        const flavor = await flavorOf(server, conn);
        const before = await read.readReplicationStatus({ server });
        const ro = await run(server, conn, 'SELECT @@read_only AS ro');
        const alreadyPrimary = !before.configured && Number(ro[0].ro) === 0;
        if (before.configured) await run(server, conn, flavor === 'mariadb' ? 'STOP SLAVE' : 'STOP REPLICA');
        // The event only stamps while the server is writable (its body checks read_only): harmless until then.
        await setHeartbeatEvent(server, conn, heartbeatEvent, true);
        const gtids = String((await run(server, conn, executedSql(flavor)))[0].g);
        if (before.configured) await run(server, conn, flavor === 'mariadb' ? 'RESET SLAVE ALL' : 'RESET REPLICA ALL');
        if (flavor === 'mysql') await run(server, conn, 'SET GLOBAL super_read_only = OFF');
        await run(server, conn, 'SET GLOBAL read_only = OFF');
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
      // The names come from the source server and become mariadb-dump arguments: a database named
      // "--no-data" would be an option. Refused before anything on the target changes.
      const unsafe = databases.filter((d) => !CLONEABLE_DATABASE.test(d));
      if (unsafe.length)
        throw failure(
          ErrorType.InvalidInput,
          `${source} holds database(s) ${unsafe.map((d) => JSON.stringify(d)).join(', ')}: not a plain name (letters, digits, _ $ -, not starting with -); refusing to re-clone ${server} from it`,
          { server, source },
        );
      // A private session: sql_log_bin = 0 must not go back to the pool with the connection.
      await pools.withPrivateSession(server, async (conn) => {
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
      const clientOptions = await loaderOptions();
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
            '--', // names only from here on
            ...databases,
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        // Loaded with sql_log_bin=0: the copy's binlog stays empty, so it holds no transactions of its own.
        // The source's dump is SQL drbook did not write: no client command in it runs (loaderOptions).
        const load = spawn(
          'mariadb',
          [`--defaults-extra-file=${to.file}`, ...clientOptions, '--init-command=SET SESSION sql_log_bin=0'],
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
            throw failure(ErrorType.RecloneFailed, `mariadb-dump on ${source} exited ${d.code}: ${dumpErr()}`, {
              server,
              source,
            });
          if (l.code !== 0)
            throw failure(
              REFUSED_CLIENT_COMMAND.test(loadErr()) ? ErrorType.RestoreRefused : ErrorType.RecloneFailed,
              `mariadb into ${server} exited ${l.code}: ${loadErr()}`,
              { server, source },
            );
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
