/**
 * The isolated drill's database side: a consistent copy of the DR replica's data in a
 * scratch database, brought up and written to, while the real replica stays a replica.
 *
 *   pause the replica's SQL thread (the IO thread keeps fetching: nothing is lost, only delayed)
 *   → date the copy (the primary's heartbeat row as the replica holds it, and its GTID position)
 *   → mariadb-dump the replica | mariadb into drill_<id>_<db> on the scratch server
 *   → resume the SQL thread (always, also on failure)
 *
 * The replica is never promoted, its read_only never changes, and production traffic never
 * sees the copy. Passwords reach the client tools through a 0600 defaults file, never argv.
 */
import { ApplicationFailure } from '@temporalio/common';
import type mysql from 'mysql2/promise';
import { ErrorType } from '../../contract';
import { failure } from '../errors';
import { dumpInto } from '../process/mysql-client';
import { quoteIdentifier, quoteName } from '../process/quote';
import { mysqlFailure, type MysqlPools } from './index';
import type { ScratchIsolation } from './scratch-isolation';

export interface DrillCopy {
  replica: string;
  scratch: string;
  databases: { source: string; scratch: string }[];
  /** The replica's applied GTID position when the copy was taken. */
  gtid: string;
  /** When the newest change in the copy was made on the primary (heartbeat), epoch ms; null without a heartbeat. */
  dataAt: number | null;
  copiedAt: number;
  seconds: number;
}

/** drill_<id>_<db>, within MySQL's 64-character identifier limit. */
export function scratchDatabaseName(copyId: string, database: string): string {
  const id = copyId.toLowerCase().replace(/[^a-z0-9]/g, '');
  return `drill_${id}_${database}`.slice(0, 64);
}

/** The pool's connection helper, with driver errors raised inside `fn` named by server too. */
const withConnection = <T>(
  pools: MysqlPools,
  server: string,
  fn: (conn: mysql.PoolConnection) => Promise<T>,
): Promise<T> =>
  pools.withConnection(server, async (conn) => {
    try {
      return await fn(conn);
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      throw mysqlFailure(server, err);
    }
  });
const rows = async (conn: mysql.PoolConnection, sql: string, params: unknown[] = []) =>
  (await conn.query<mysql.RowDataPacket[]>(sql, params))[0];

/** mariadb-dump <db> from one server piped into mariadb <scratchDb> on another; stderr of either names the failure. */
async function pipeDatabase(
  pools: MysqlPools,
  source: string,
  database: string,
  target: string,
  scratchDb: string,
  names: unknown,
) {
  const copied = await dumpInto({
    from: pools.target(source),
    to: pools.target(target),
    // No --databases: the dump carries no CREATE DATABASE / USE, so it loads into the scratch name.
    dumpArgs: [
      '--single-transaction',
      '--skip-lock-tables',
      '--routines',
      '--triggers',
      '--skip-events',
      '--', // the name is never an option
      database,
    ],
    loadArgs: ['--batch', scratchDb],
    progress: () => ({ copying: names }),
  });
  if (copied.dump.code !== 0 || copied.load.code !== 0)
    throw failure(
      ErrorType.CommandFailed,
      `copy ${source}/${database} → ${target}/${scratchDb} failed: mariadb-dump ` +
        `exit ${copied.dump.code} ${copied.dumpErr}; mariadb exit ${copied.load.code} ${copied.loadErr}`,
    );
}

/** The copy taken (the replica paused, dated, copied, resumed), and the replica made sure to apply again. */
function createCopyActivities(pools: MysqlPools, isolation: ScratchIsolation) {
  return {
    /**
     * Copy the DR replica's databases into fresh scratch databases, consistent at one GTID position.
     * Repeatable: a retry drops and re-creates its scratch databases.
     */
    async copyReplicaToScratch({
      replica,
      scratch,
      databases,
      heartbeatTable,
      copyId,
    }: {
      replica: string;
      scratch: string;
      databases: string[];
      heartbeatTable?: string;
      copyId: string;
    }): Promise<DrillCopy> {
      if (replica === scratch)
        throw failure(ErrorType.InvalidInput, `the scratch server ${scratch} cannot be the replica itself`);
      const started = Date.now();
      const names = databases.map((source) => ({ source, scratch: scratchDatabaseName(copyId, source) }));
      // Read before the replica is paused or anything is created: the scratch is nobody's member, live.
      await isolation.requireScratch(scratch, 'copying the DR replica into it');
      return withConnection(pools, replica, async (conn) => {
        const [status] = await rows(conn, 'SHOW SLAVE STATUS');
        if (!status)
          throw failure(ErrorType.ReplicationBroken, `${replica} is not a replica: an isolated drill copies a replica`);
        const wasRunning = status.Slave_SQL_Running === 'Yes';
        await rows(conn, 'STOP SLAVE SQL_THREAD');
        try {
          const [pos] = await rows(conn, 'SELECT @@gtid_slave_pos AS g');
          let dataAt: number | null = null;
          if (heartbeatTable) {
            // The primary's own row: its timestamp is the newest primary change this replica has applied.
            const [hb] = await rows(
              conn,
              `SELECT UNIX_TIMESTAMP(MAX(ts)) AS t FROM ${quoteName(heartbeatTable)} WHERE server_id <> @@server_id`,
            );
            dataAt = hb?.t === null || hb?.t === undefined ? null : Math.round(Number(hb.t) * 1000);
          }
          await withConnection(pools, scratch, async (s) => {
            for (const n of names) {
              await rows(s, `DROP DATABASE IF EXISTS ${quoteIdentifier(n.scratch)}`);
              await rows(s, `CREATE DATABASE ${quoteIdentifier(n.scratch)}`);
            }
          });
          for (const n of names) await pipeDatabase(pools, replica, n.source, scratch, n.scratch, names);
          return {
            replica,
            scratch,
            databases: names,
            gtid: String(pos.g),
            dataAt,
            copiedAt: Date.now(),
            seconds: Math.round((Date.now() - started) / 100) / 10,
          };
        } finally {
          if (wasRunning) await rows(conn, 'START SLAVE SQL_THREAD');
        }
      });
    },

    /** Make sure a replica applies again (the copy resumes it itself; this is the teardown's belt and braces). */
    async resumeReplicaSqlThread({ replica }: { replica: string }): Promise<{ resumed: boolean }> {
      return withConnection(pools, replica, async (conn) => {
        const [status] = await rows(conn, 'SHOW SLAVE STATUS');
        if (!status || status.Slave_SQL_Running === 'Yes') return { resumed: false };
        await rows(conn, 'START SLAVE SQL_THREAD');
        return { resumed: true };
      });
    },
  };
}

/** The drill copy checked (it answers, holds rows, takes a write, passes the queries), and dropped again. */
function createCheckActivities(pools: MysqlPools, isolation: ScratchIsolation) {
  return {
    /**
     * The DR copy is healthy when it answers, holds tables with rows, takes a write, and passes the service's queries.
     */
    async verifyDrillCopy({
      scratch,
      databases,
      queries = [],
    }: {
      scratch: string;
      databases: { source: string; scratch: string }[];
      queries?: { name: string; sql: string; expect: string | number }[];
    }): Promise<{
      tables: number;
      rows: number;
      wroteAt: number;
      checks: { name: string; ok: boolean; got: string }[];
    }> {
      return withConnection(pools, scratch, async (conn) => {
        let tables = 0;
        let total = 0;
        for (const d of databases) {
          const t = await rows(
            conn,
            'SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = ' +
              "'BASE TABLE'",
            [d.scratch],
          );
          tables += t.length;
          for (const { t: table } of t) {
            const [c] = await rows(
              conn,
              `SELECT COUNT(*) AS n FROM ${quoteIdentifier(d.scratch)}.${quoteIdentifier(String(table))}`,
            );
            total += Number(c.n);
          }
        }
        if (tables === 0)
          throw failure(ErrorType.HealthCheckFailed, `the DR copy on ${scratch} holds no tables`, { scratch });
        const probe = `${quoteIdentifier(databases[0].scratch)}.\`drbook_drill_probe\``;
        await rows(conn, `CREATE TABLE IF NOT EXISTS ${probe} (id INT PRIMARY KEY, at TIMESTAMP(6) NOT NULL)`);
        await rows(conn, `REPLACE INTO ${probe} (id, at) VALUES (1, NOW(6))`);
        const [w] = await rows(conn, `SELECT UNIX_TIMESTAMP(at) AS t FROM ${probe} WHERE id = 1`);
        const checks: { name: string; ok: boolean; got: string }[] = [];
        for (const q of queries) {
          await rows(conn, `USE ${quoteIdentifier(databases[0].scratch)}`);
          const [r] = await rows(conn, q.sql);
          const got = String(Object.values(r ?? {})[0]);
          checks.push({ name: q.name, ok: got === String(q.expect), got });
        }
        const bad = checks.filter((c) => !c.ok);
        if (bad.length)
          throw failure(
            ErrorType.HealthCheckFailed,
            `the DR copy failed ${bad.map((c) => `${c.name} (got ${c.got})`).join(', ')}`,
            { scratch },
          );
        return { tables, rows: total, wroteAt: Math.round(Number(w.t) * 1000), checks };
      });
    },

    /** Drop the drill's scratch databases (by the names copyReplicaToScratch gives them; nothing else). */
    async dropDrillCopy({
      scratch,
      copyId,
      databases,
    }: {
      scratch: string;
      copyId: string;
      databases: string[];
    }): Promise<{ dropped: string[] }> {
      const ours = databases.map((d) => scratchDatabaseName(copyId, d));
      // Only what exists: a DROP ... IF EXISTS is binlogged even when nothing is dropped (errant on a member).
      const existing = await withConnection(pools, scratch, async (conn) =>
        (
          await rows(conn, 'SELECT SCHEMA_NAME AS s FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (?)', [ours])
        ).map((r) => String(r.s)),
      );
      if (!existing.length) return { dropped: [] };
      await isolation.requireScratch(scratch, 'dropping the drill copy on it');
      await withConnection(pools, scratch, async (conn) => {
        for (const d of existing) await rows(conn, `DROP DATABASE IF EXISTS ${quoteIdentifier(d)}`);
      });
      return { dropped: existing };
    },
  };
}

export function createDrillCopyActivities(pools: MysqlPools, isolation: ScratchIsolation) {
  return { ...createCopyActivities(pools, isolation), ...createCheckActivities(pools, isolation) };
}

export type DrillCopyActivities = ReturnType<typeof createDrillCopyActivities>;
