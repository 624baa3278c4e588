/**
 * Fencing the old primary (read_only = ON, its heartbeat stopped, everything it committed read), reading the fence
 * again before promotion, and which members take writes after a cut-over. A server that does not answer within the
 * fence's own budget is reported, never mistaken for fenced; one that answers but is blocked says by whom.
 */
import type mysql from 'mysql2/promise';
import { quoteName } from '../process/quote';
import { transactionsBehind } from './gtid';
import type { MysqlPools } from './index';
import { executedSql, type TopologySql } from './topology-sql';

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
/**
 * How long SET GLOBAL read_only = ON may wait for a lock on the server (a running write, LOCK TABLES, another
 * session's FLUSH TABLES WITH READ LOCK) before the fence reads who holds it: well inside the statement timeout,
 * so a server that answers but is blocked is never mistaken for one that does not answer.
 */
const FENCE_LOCK_WAIT_SECONDS = 2;

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

/**
 * Who holds what a fence waits for: sessions running a statement, with an open transaction, or holding
 * metadata locks (LOCK TABLES, FLUSH TABLES WITH READ LOCK: information_schema.METADATA_LOCK_INFO, where
 * the metadata_lock_info plugin is loaded). Replication and event-scheduler threads are left out.
 */
async function lockHolders({ run, withConnection }: TopologySql, server: string): Promise<LockHolder[]> {
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
      `SELECT THREAD_ID AS id, LOCK_MODE AS mode, ` +
        `CONCAT_WS('.', NULLIF(TABLE_SCHEMA, ''), NULLIF(TABLE_NAME, '')) AS obj
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

export function createFenceActivities(pools: MysqlPools, sql: TopologySql) {
  const { run, flavorOf, setHeartbeatEvent } = sql;
  return {
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
            blockers = await lockHolders(sql, server).catch(() => blockers ?? []);
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
                detail:
                  `${server} answers, but read_only=ON is blocked: it waited ${FENCE_LOCK_WAIT_SECONDS} s for a ` +
                  `lock ${blockedAttempts} time(s) in ${seconds} s; ${describeHolders(blockers)}: not fenced`,
              };
            }
            return {
              server,
              reachable: false,
              fenced: false,
              finalGtids: null,
              detail:
                `${server} unreachable (${faults.join(', ')}; ${faults.length} attempts in ${seconds} s): ` +
                `not fenced`,
            };
          }
          await new Promise((resolve) => setTimeout(resolve, FENCE_RETRY_PAUSE_MS));
        }
      }
    },
  };
}

/** The fence read again; after cut-over, who takes writes and whether the new primary does. */
export function createFenceCheckActivities(pools: MysqlPools, { run, withConnection, flavorOf }: TopologySql) {
  return {
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
        detail:
          `writable: ${writable.join(', ') || 'none'}` +
          (unreachable.length ? `; unreachable: ${unreachable.join(', ')}` : ''),
      };
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
          `CREATE TABLE IF NOT EXISTS ${quoteName(heartbeatTable)} (server_id INT UNSIGNED NOT NULL PRIMARY KEY, ` +
            `ts TIMESTAMP(6) NOT NULL)`,
        );
        await run(
          server,
          conn,
          `INSERT INTO ${quoteName(heartbeatTable)} (server_id, ts) VALUES (@@server_id, NOW(6)) ON DUPLICATE KEY ` +
            `UPDATE ts = NOW(6)`,
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
