/**
 * Restore-test steps: pick the backup, read its manifest, prove the object matches it, load it
 * into scratch databases (streamed: storage → SHA-256 → zstd -d → mariadb, no temp copy), validate
 * what was loaded, and drop the scratch databases again. Steps take names (service, destination,
 * backup id, scratch server and databases) and return counts and timings; no data, no credentials.
 *
 * Scratch databases are always named `restore_…`: dropScratchDatabase refuses any other name, so
 * a mistake can never drop a real database.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import {
  BACKUP_ID,
  ErrorType,
  type BackupDestinationName,
  type BackupManifest,
  type RestoreCheck,
} from '../../contract';
import { failure } from '../errors';
import { mysqlFailure, type MysqlPools } from '../mysql';
import { Digest, loaderOptions, writeClientDefaults } from '../mysql/dump';
import type { ScratchIsolation } from '../mysql/scratch-isolation';
import type { BackupStore, BackupStores } from '../storage/destinations';
import { backupRoot, manifestKey, MANIFEST_FILE, serviceRoot, type BackupKind } from '../storage/layout';
import { readVerifiedManifest, requireManifestObject } from '../storage/manifest';
import { DumpRouter, sessionPrelude } from './load';

/** Scratch databases carry this prefix and nothing else does: the only names drbook will drop. */
export const SCRATCH_DATABASE = /^restore_[a-z0-9_]{1,56}$/;
/** Where a restore test reads from, in order of preference: the copy operators would reach for first. */
const SOURCE_ORDER: BackupDestinationName[] = ['primary', 'offsite', 'local'];
const HEARTBEAT_MS = 1000;

export interface PickedBackup {
  backupId: string;
  destination: BackupDestinationName;
  /** Where the backup is (s3://.../<service>/<kind>/<backupId>/ or a directory). */
  location: string;
  manifestKey: string;
  /** Verified backups of the service found in that destination. */
  verifiedCount: number;
}

export interface ScratchMapping {
  source: string;
  scratch: string;
}

export interface RestoredIntoScratch {
  server: string;
  databases: ScratchMapping[];
  /** Compressed bytes read from storage, and their SHA-256 (checked against the manifest again). */
  bytesRead: number;
  sha256: string;
  /** Decompressed dump bytes loaded. */
  bytesLoaded: number;
  statements: number;
  tables: number;
  /** Secondary keys built after their table's rows instead of row by row (activities/restore/deferred-keys.ts). */
  deferredKeys: number;
  parallel: number;
  seconds: number;
}

export interface ValidatedRestore {
  checks: RestoreCheck[];
  seconds: number;
}

function activityContext(): Context | null {
  try {
    return Context.current();
  } catch {
    return null; // called directly (benchmark)
  }
}

function corrupt(message: string, details: Record<string, unknown>): ApplicationFailure {
  return ApplicationFailure.create({
    type: ErrorType.BackupCorrupt,
    message,
    nonRetryable: true,
    details: [details],
  });
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

const ident = (name: string) => `\`${name.replace(/`/g, '``')}\``;

function requireScratchNames(names: string[]): void {
  const bad = names.filter((n) => !SCRATCH_DATABASE.test(n));
  if (bad.length || new Set(names).size !== names.length)
    throw failure(ErrorType.InvalidInput, `not scratch database names (restore_…, distinct): ${names.join(', ')}`);
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

/** Read a stored object to the end, hashing it; heartbeats while it reads. */
async function hashObject(
  store: BackupStore,
  key: string,
  signal?: AbortSignal,
): Promise<{ bytes: number; sha256: string }> {
  const ctx = activityContext();
  const hash = createHash('sha256');
  let bytes = 0;
  const timer = setInterval(() => ctx?.heartbeat({ phase: 'checksum', bytes }), HEARTBEAT_MS);
  const source = await store.read(key);
  try {
    for await (const chunk of source) {
      if (signal?.aborted) throw new Error('cancelled');
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    return { bytes, sha256: hash.digest('hex') };
  } finally {
    clearInterval(timer);
    source.destroy();
  }
}

function cancelledOr(err: unknown, ctx: Context | null): unknown {
  if (ctx?.cancellationSignal.aborted) {
    const reason: unknown = ctx.cancellationSignal.reason;
    return reason instanceof CancelledFailure ? reason : new CancelledFailure('restore cancelled');
  }
  return err;
}

export function createRestoreActivities(stores: BackupStores, pools: MysqlPools, isolation: ScratchIsolation) {
  async function connectTo(server: string, database?: string): Promise<mysql.Connection> {
    const target = pools.target(server);
    try {
      return await mysql.createConnection({ ...target, database, connectTimeout: 5000, multipleStatements: false });
    } catch (err) {
      throw mysqlFailure(server, err);
    }
  }

  /**
   * Drop the scratch databases that exist. One that does not is not dropped "IF EXISTS": that statement is written
   * to the binlog all the same, and on a server that is not scratch after all it would be an errant transaction.
   */
  async function dropDatabases(
    server: string,
    names: string[],
    isolated = false,
  ): Promise<{ dropped: string[]; absent: string[] }> {
    requireScratchNames(names);
    const conn = await connectTo(server);
    try {
      const [present] = await conn.query<RowDataPacket[]>(
        'SELECT SCHEMA_NAME AS s FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (?)',
        [names],
      );
      const existing = new Set((present as { s: string }[]).map((r) => r.s));
      const absent = names.filter((n) => !existing.has(n));
      if (existing.size && !isolated) await isolation.requireScratch(server, 'dropping scratch databases on it');
      const dropped: string[] = [];
      for (const name of names.filter((n) => existing.has(n))) {
        // A session still loading (a killed client's server thread) would hold the drop up: end it first.
        const [sessions] = await conn.query<RowDataPacket[]>(
          'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()',
          [name],
        );
        for (const { id } of sessions as { id: number }[])
          await conn.query(`KILL ${Number(id)}`).catch(() => undefined);
        await conn.query(`DROP DATABASE IF EXISTS ${ident(name)}`);
        dropped.push(name);
      }
      return { dropped, absent };
    } catch (err) {
      throw err instanceof ApplicationFailure ? err : mysqlFailure(server, err);
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  return {
    /** The newest verified backup of the service (or the one asked for), from the first destination that holds it. */
    async pickNewestVerifiedBackup({
      service,
      backupId,
      kind = 'logical',
    }: {
      service: string;
      backupId?: string;
      kind?: BackupKind;
    }): Promise<PickedBackup> {
      const all = stores.forService(service);
      const ordered = SOURCE_ORDER.map((n) => all.find((s) => s.name === n)).filter((s): s is BackupStore => !!s);
      const found: { store: BackupStore; ids: string[] }[] = [];
      for (const store of ordered) {
        const ids = (await store.list(serviceRoot(service, kind)))
          .filter((o) => o.key.endsWith(`/${MANIFEST_FILE}`))
          .map((o) => o.key.slice(serviceRoot(service, kind).length).split('/')[0])
          .filter((id) => BACKUP_ID.test(id))
          .sort();
        found.push({ store, ids });
      }
      const wanted =
        backupId ??
        found
          .flatMap((f) => f.ids)
          .sort()
          .pop();
      const from = wanted ? found.find((f) => f.ids.includes(wanted)) : undefined;
      if (!wanted || !from) {
        throw failure(
          ErrorType.NoVerifiedBackup,
          backupId
            ? `no verified ${kind} backup ${backupId} of ${service} in ${ordered.map((s) => s.label).join(', ')}`
            : `no verified ${kind} backup of ${service} (no manifest.json) in ${ordered.map((s) => s.label).join(', ')}`,
          { service },
        );
      }
      return {
        backupId: wanted,
        destination: from.store.name,
        location: from.store.location(backupRoot(service, wanted, kind)),
        manifestKey: manifestKey(service, wanted, kind),
        verifiedCount: from.ids.length,
      };
    },

    /**
     * The backup's manifest.json from the destination it will be restored from: its signature verified with the
     * worker's backup-signing keyring (ManifestUnauthenticated otherwise), then checked for shape.
     */
    async fetchManifest({
      service,
      backupId,
      destination,
      kind = 'logical',
    }: {
      service: string;
      backupId: string;
      destination: BackupDestinationName;
      kind?: BackupKind;
    }): Promise<BackupManifest> {
      const store = stores.store(service, destination);
      return (await readVerifiedManifest(store, stores.keyring, service, backupId, kind)).manifest;
    },

    /**
     * Before any restore: the signed manifest read again and authenticated (the size and SHA-256 given must be
     * its own), then the object it names read from storage and compared with them.
     */
    async verifyBackupChecksum({
      service,
      backupId,
      destination,
      size,
      sha256,
    }: {
      service: string;
      backupId: string;
      destination: BackupDestinationName;
      size: number;
      sha256: string;
    }): Promise<{ location: string; bytes: number; sha256: string; seconds: number }> {
      const store = stores.store(service, destination);
      const started = performance.now();
      const verified = await readVerifiedManifest(store, stores.keyring, service, backupId);
      requireManifestObject(verified, store, { size, sha256 });
      const key = verified.objectKey;
      const ctx = activityContext();
      const actual = await hashObject(store, key, ctx?.cancellationSignal).catch((err: unknown) => {
        throw cancelledOr(err, ctx);
      });
      if (actual.bytes !== size || actual.sha256 !== sha256) {
        throw corrupt(
          `${store.location(key)}: ${actual.bytes} bytes with SHA-256 ${actual.sha256}; the manifest says ${size} bytes with SHA-256 ${sha256}`,
          { location: store.location(key), ...actual },
        );
      }
      return { location: store.location(key), ...actual, seconds: (performance.now() - started) / 1000 };
    },

    /**
     * Stream the dump into fresh scratch databases on the scratch server. Retry-safe: scratch
     * databases left by an earlier attempt are dropped first. Cancellable: the clients are killed
     * and the activity reports cancellation (the workflow then drops what was loaded).
     */
    async restoreIntoScratch({
      service,
      backupId,
      destination,
      server,
      databases,
      size,
      sha256,
      parallel = 4,
    }: {
      service: string;
      backupId: string;
      destination: BackupDestinationName;
      server: string;
      databases: ScratchMapping[];
      size: number;
      sha256: string;
      parallel?: number;
    }): Promise<RestoredIntoScratch> {
      requireScratchNames(databases.map((d) => d.scratch));
      const started = performance.now();
      // The server is read before anything is written to it: never a replica, a source or a production member.
      await isolation.requireScratch(server, 'restoring into it');
      const store = stores.store(service, destination);
      const verified = await readVerifiedManifest(store, stores.keyring, service, backupId);
      requireManifestObject(verified, store, { size, sha256 });
      const key = verified.objectKey;
      const ctx = activityContext();
      await dropDatabases(
        server,
        databases.map((d) => d.scratch),
        true,
      );

      const defaults = await writeClientDefaults(pools.target(server));
      const abort = new AbortController();
      const onCancel = () => abort.abort(new Error('cancelled'));
      ctx?.cancellationSignal.addEventListener('abort', onCancel);
      const router = new DumpRouter(
        new Map(databases.map((d) => [d.source, d.scratch])),
        Math.max(1, Math.min(16, parallel)),
        defaults.file,
        sessionPrelude(),
        await loaderOptions(),
      );
      const zstd = spawn('zstd', ['-d', '-q', '-c'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let zstdErr = '';
      zstd.stderr.on('data', (d: Buffer) => (zstdErr = (zstdErr + d.toString()).slice(-2000)));
      const zstdExit = new Promise<number | null>((resolve, reject) => {
        zstd.once('error', (err: NodeJS.ErrnoException) =>
          reject(
            err.code === 'ENOENT'
              ? failure(ErrorType.NotConfigured, 'zstd is not installed on this worker')
              : failure(ErrorType.RestoreFailed, `zstd: ${err.message}`),
          ),
        );
        zstd.once('close', (code) => resolve(code));
      });
      zstdExit.catch(() => undefined); // awaited below
      abort.signal.addEventListener('abort', () => {
        router.abort();
        zstd.kill('SIGKILL');
      });
      const meter = new Digest();
      const heartbeat = setInterval(
        () =>
          ctx?.heartbeat({
            phase: 'restoring',
            readBytes: meter.bytes,
            loadedBytes: router.progress.bytes,
            tables: router.progress.tables,
          }),
        HEARTBEAT_MS,
      );
      try {
        const source = await store.read(key);
        const results = await Promise.allSettled([
          pipeline(source, meter, zstd.stdin, { signal: abort.signal }),
          pipeline(zstd.stdout, router, { signal: abort.signal }),
          zstdExit,
        ]);
        if (ctx?.cancellationSignal.aborted) throw cancelledOr(null, ctx);
        if (results[2].status === 'rejected') throw results[2].reason;
        const code = results[2].value;
        // The object changed since verifyBackupChecksum (or was cut short in transit): not what the manifest names.
        const digest = meter.hex();
        if (results[0].status === 'fulfilled' && (meter.bytes !== size || digest !== sha256)) {
          throw corrupt(
            `${store.location(key)} read ${meter.bytes} bytes with SHA-256 ${digest} while restoring; the manifest says ${size} bytes with SHA-256 ${sha256}`,
            { location: store.location(key) },
          );
        }
        const zstdFailed = () =>
          failure(ErrorType.RestoreFailed, `zstd -d of ${store.location(key)} exited ${code}: ${zstdErr.trim()}`);
        // zstd's own complaint (a corrupt frame) first; then the loader's; a zstd that lost its reader last.
        const lostReader = /Write error|Broken pipe|Connection reset/i.test(zstdErr);
        if (code !== 0 && code !== null && !lostReader) throw zstdFailed();
        if (results[1].status === 'rejected') throw results[1].reason;
        if (results[0].status === 'rejected') throw results[0].reason;
        if (code !== 0) throw zstdFailed();
        const missing = databases.filter((d) => !router.seen.includes(d.source)).map((d) => d.source);
        if (missing.length)
          throw failure(ErrorType.RestoreFailed, `the dump holds no database ${missing.join(', ')}`, {
            missing,
          });
        return {
          server,
          databases,
          bytesRead: meter.bytes,
          sha256: digest,
          bytesLoaded: router.progress.bytes,
          statements: router.progress.statements,
          tables: router.progress.tables,
          deferredKeys: router.progress.deferredKeys,
          parallel: router.sessions.length,
          seconds: (performance.now() - started) / 1000,
        };
      } catch (err) {
        abort.abort(err);
        throw cancelledOr(err, ctx);
      } finally {
        clearInterval(heartbeat);
        ctx?.cancellationSignal.removeEventListener('abort', onCancel);
        router.abort();
        if (zstd.exitCode === null && zstd.signalCode === null) zstd.kill('SIGKILL');
        await rm(defaults.dir, { recursive: true, force: true });
      }
    },

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
          "SELECT TABLE_SCHEMA AS db, TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA IN (?) AND TABLE_TYPE = 'BASE TABLE'",
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
            `SELECT COUNT(*) AS n FROM ${ident(scratch)}.${ident(t.table)}`,
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

    /** After a point-in-time replay: the queries that must hold at that point, read-only in the first scratch database. */
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

    /** Drop scratch databases (restore_… only), ending any session still using them. Idempotent. */
    async dropScratchDatabase({
      server,
      databases,
    }: {
      server: string;
      databases: string[];
    }): Promise<{ dropped: string[]; absent: string[] }> {
      return dropDatabases(server, databases);
    },
  };
}

export type RestoreActivities = ReturnType<typeof createRestoreActivities>;
