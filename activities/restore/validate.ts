/**
 * What a restore loaded, checked: every manifest table present, its row count equal to the manifest's, and the
 * inventory's validation queries (read-only, with a time limit) returning what they expect.
 */
import { ApplicationFailure } from '@temporalio/common';
import type mysql from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2/promise';
import { type BackupManifest, type RestoreCheck } from '../../contract';
import { mysqlFailure } from '../mysql';
import { quoteIdentifier } from '../process/quote';
import { requireScratchNames, type ScratchDatabases, type ScratchMapping } from './scratch';

export interface ValidatedRestore {
  checks: RestoreCheck[];
  seconds: number;
}

/** A result cell as the text an inventory's `expect` is compared with. */
function cellText(v: unknown): string {
  if (v === undefined) return '(no rows)';
  if (v === null) return 'NULL';
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean')
    return String(v);
  return JSON.stringify(v);
}

export type ValidationQuery = { name: string; sql: string; expect: string | number };

/** The validation queries, read-only with a time limit, each first cell compared with its `expect`. */
export async function runQueries(
  conn: mysql.Connection,
  queries: ValidationQuery[],
  prefix: string,
): Promise<RestoreCheck[]> {
  const checks: RestoreCheck[] = [];
  await conn.query('SET SESSION TRANSACTION READ ONLY');
  await conn.query('SET SESSION max_statement_time = 300');
  for (const q of queries) {
    const name = `${prefix}${q.name}`;
    try {
      const [rows] = await conn.query<RowDataPacket[]>({ sql: q.sql, rowsAsArray: true });
      const got = cellText((rows as unknown as unknown[][])[0]?.[0]);
      checks.push({
        name,
        ok: got === String(q.expect),
        gate: true,
        detail: `${q.sql} → ${got} (expected ${String(q.expect)})`,
      });
    } catch (err) {
      checks.push({ name, ok: false, gate: true, detail: `${q.sql} → error: ${(err as Error).message}` });
    }
  }
  return checks;
}

export function createRestoreValidationActivities({ connectTo }: ScratchDatabases) {
  return {
    /**
     * What was loaded, checked: every manifest table present, its row count equal to the manifest's,
     * and the inventory's validation queries (run read-only in the first scratch database) returning
     * what they expect. Every check is reported, failed or not.
     */
    async validateRestore({
      server,
      databases,
      tables,
      rowCountsExact,
      queries,
    }: {
      server: string;
      databases: ScratchMapping[];
      tables: BackupManifest['tables'];
      rowCountsExact: boolean;
      queries: ValidationQuery[];
    }): Promise<ValidatedRestore> {
      requireScratchNames(databases.map((d) => d.scratch));
      const started = performance.now();
      const scratchOf = new Map(databases.map((d) => [d.source, d.scratch]));
      const checks: RestoreCheck[] = [];
      const conn = await connectTo(server, databases[0].scratch);
      try {
        const [present] = await conn.query<RowDataPacket[]>(
          'SELECT TABLE_SCHEMA AS db, TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA IN (?) ' +
            "AND TABLE_TYPE = 'BASE TABLE'",
          [databases.map((d) => d.scratch)],
        );
        const have = new Set((present as { db: string; t: string }[]).map((r) => `${r.db}.${r.t}`));
        const missing = tables.filter((t) => !have.has(`${scratchOf.get(t.database)}.${t.table}`));
        checks.push({
          name: 'schema-present',
          ok: missing.length === 0 && tables.length > 0,
          gate: true,
          detail: missing.length
            ? `missing: ${missing.map((t) => `${t.database}.${t.table}`).join(', ')}`
            : `${tables.length} tables in ${databases.map((d) => d.scratch).join(', ')}`,
        });

        const wrong: string[] = [];
        let counted = 0;
        for (const t of tables) {
          const scratch = scratchOf.get(t.database);
          if (!scratch || !have.has(`${scratch}.${t.table}`)) continue;
          const [r] = await conn.query<RowDataPacket[]>(
            `SELECT COUNT(*) AS n FROM ${quoteIdentifier(scratch)}.${quoteIdentifier(t.table)}`,
          );
          const n = Number(r[0].n);
          counted += n;
          if (n !== t.rows) wrong.push(`${t.database}.${t.table}: manifest ${t.rows}, restored ${n}`);
        }
        checks.push({
          name: 'row-counts',
          ok: wrong.length === 0 && missing.length === 0,
          // Approximate counts (no RELOAD for the dump's lock) can differ honestly: reported, not gating.
          gate: rowCountsExact,
          detail: wrong.length
            ? wrong.join('; ')
            : missing.length
              ? `${missing.length} tables missing, not counted`
              : `${tables.length} tables, ${counted} rows, all equal to the manifest`,
        });

        checks.push(...(await runQueries(conn, queries, 'query:')));
      } catch (err) {
        throw err instanceof ApplicationFailure ? err : mysqlFailure(server, err);
      } finally {
        await conn.end().catch(() => undefined);
      }
      return { checks, seconds: (performance.now() - started) / 1000 };
    },

    /**
     * After a point-in-time replay: the queries that must hold at that point, read-only in the first scratch database.
     */
    async validatePointInTime({
      server,
      databases,
      queries,
    }: {
      server: string;
      databases: ScratchMapping[];
      queries: ValidationQuery[];
    }): Promise<ValidatedRestore> {
      requireScratchNames(databases.map((d) => d.scratch));
      const started = performance.now();
      const conn = await connectTo(server, databases[0].scratch);
      try {
        return {
          checks: await runQueries(conn, queries, 'pitr-query:'),
          seconds: (performance.now() - started) / 1000,
        };
      } catch (err) {
        throw mysqlFailure(server, err);
      } finally {
        await conn.end().catch(() => undefined);
      }
    },
  };
}
