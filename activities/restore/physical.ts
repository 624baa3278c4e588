/**
 * A physical (mariabackup) backup restored into a scratch MariaDB instance of its own, checked, and
 * removed again — all inside one activity, so the instance never outlives the step that owns it:
 *
 *   storage object ─▶ SHA-256 ─▶ zstd -d ─▶ mbstream -x -C <datadir>     (no temp copy of the stream)
 *   mariabackup --prepare --target-dir=<datadir>
 *   mariadbd --datadir=<datadir> --socket=<private dir>/mariadbd.sock --skip-networking --skip-grant-tables
 *   → every table of the backup's databases counted, the queries run, the copy's GTID compared
 *   → shutdown, SIGKILL if it does not stop, the directory deleted (success, failure or cancellation)
 *
 * The scratch instance listens on a unix socket in a 0700 directory and on no TCP port, so it needs
 * no credentials (--skip-grant-tables) and nothing else on the machine can reach it; binary log,
 * replication and the event scheduler are off, so it can neither replicate nor act on the copy's
 * events. It runs as the worker's own user, as the local stack's servers do.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { Context } from '@temporalio/activity';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { ErrorType, type BackupDestinationName, type RestoreCheck } from '../../contract';
import { failure } from '../errors';
import { privateWorkDir } from '../workdirs';
import { collect, exitOf, killAll } from '../process/child';
import { activityContext, heartbeatEvery } from '../process/heartbeat';
import { quoteIdentifier } from '../process/quote';
import { Digest } from '../process/streams';
import { startUnzstd } from '../process/zstd';
import type { BackupStore, BackupStores } from '../storage/destinations';
import { readVerifiedManifest, requireManifestObject } from '../storage/manifest';
import { runQueries, type ValidationQuery } from './validate';

const HEARTBEAT_MS = 1000;
const START_TIMEOUT_MS = 180_000;
const SYSTEM_SCHEMAS = new Set(['mysql', 'information_schema', 'performance_schema', 'sys']);

export interface PhysicalRestoreResult {
  bytesRead: number;
  sha256: string;
  /** The copy's own binlog position (xtrabackup_binlog_info), after prepare. */
  gtid: string | null;
  tables: { database: string; table: string; rows: number }[];
  checks: RestoreCheck[];
  seconds: { extract: number; prepare: number; start: number; validate: number; total: number };
  /** Every trace of the instance removed (process gone, directory deleted). */
  cleanedUp: boolean;
}

interface PhysicalRestoreRequest {
  service: string;
  backupId: string;
  destination: BackupDestinationName;
  size: number;
  sha256: string;
  /** The service's databases: the copy must hold them; the queries run in the first. */
  databases: string[];
  /** The manifest's position: the prepared copy must be at this GTID. */
  gtid?: string | null;
  queries?: ValidationQuery[];
  expectedTables?: { database: string; table: string; rows: number }[];
}

function restoreFailed(message: string): ApplicationFailure {
  return failure(ErrorType.RestoreFailed, message);
}

async function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** One restore's scratch instance: its private directory, its children, and where it stands (for heartbeats). */
class ScratchInstance {
  readonly datadir: string;
  readonly socket: string;
  readonly children: ChildProcess[] = [];
  server: ChildProcess | null = null;
  phase = 'extracting';

  constructor(
    readonly work: string,
    private readonly ctx: Context | null,
  ) {
    this.datadir = path.join(work, 'data');
    this.socket = path.join(work, 'mariadbd.sock');
  }

  checkCancelled(): void {
    if (this.ctx?.cancellationSignal.aborted) throw new CancelledFailure('physical restore cancelled');
  }

  /** 1. Stream, check and unpack: storage ─▶ SHA-256 ─▶ zstd -d ─▶ mbstream -x. */
  async extract(store: BackupStore, key: string, meter: Digest, expected: { size: number; sha256: string }) {
    await mkdir(this.datadir, { mode: 0o700 });
    const zstd = startUnzstd();
    const mbstream = spawn('mbstream', ['-x', '-C', this.datadir], { stdio: ['pipe', 'ignore', 'pipe'] });
    this.children.push(zstd.child, mbstream);
    const mbErr = collect(mbstream.stderr);
    const flows = await Promise.allSettled([
      pipeline(await store.read(key), meter, zstd.child.stdin!),
      pipeline(zstd.child.stdout!, mbstream.stdin),
      zstd.exit,
      exitOf(mbstream, 'mbstream', ErrorType.RestoreFailed),
    ]);
    this.checkCancelled();
    const digest = meter.hex();
    if (meter.bytes !== expected.size || digest !== expected.sha256)
      throw ApplicationFailure.create({
        type: ErrorType.BackupCorrupt,
        message:
          `${store.location(key)}: read ${meter.bytes} bytes with SHA-256 ${digest}; the manifest ` +
          `says ${expected.size} bytes with SHA-256 ${expected.sha256}`,
        nonRetryable: true,
      });
    const [, , z, m] = flows;
    if (z.status === 'rejected') throw z.reason;
    if (m.status === 'rejected') throw m.reason;
    if (z.value.code !== 0) throw restoreFailed(`zstd -d exited ${z.value.code}: ${zstd.stderr()}`);
    if (m.value.code !== 0) throw restoreFailed(`mbstream -x exited ${m.value.code}: ${mbErr()}`);
    for (const f of flows.slice(0, 2)) if (f.status === 'rejected') throw f.reason;
    return digest;
  }

  /** 2. Prepare: apply the redo log the copy carries, so the data files are consistent. Returns the copy's GTID. */
  async prepare(): Promise<string | null> {
    this.phase = 'preparing';
    const prepare = spawn('mariabackup', ['--prepare', `--target-dir=${this.datadir}`, '--use-memory=256M'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.children.push(prepare);
    const prepareErr = collect(prepare.stderr);
    const prepared = await exitOf(prepare, 'mariabackup', ErrorType.RestoreFailed);
    this.checkCancelled();
    if (prepared.code !== 0) throw restoreFailed(`mariabackup --prepare exited ${prepared.code}: ${prepareErr()}`);
    const info = await readFile(path.join(this.datadir, 'xtrabackup_binlog_info'), 'utf8').catch(() => '');
    return info.trim().split(/\s+/)[2] ?? null;
  }

  /** 3. A scratch instance on the copy: private socket, no TCP, no binlog, no replication, no events. */
  async start(): Promise<mysql.Connection> {
    this.phase = 'starting the scratch instance';
    const errorLog = path.join(this.work, 'error.log');
    const server = spawn(
      'mariadbd',
      [
        '--no-defaults',
        `--datadir=${this.datadir}`,
        `--socket=${this.socket}`,
        `--pid-file=${path.join(this.work, 'mariadbd.pid')}`,
        `--log-error=${errorLog}`,
        `--tmpdir=${this.work}`,
        `--user=${userInfo().username}`,
        '--skip-networking',
        '--skip-grant-tables',
        '--skip-log-bin',
        '--skip-slave-start',
        '--event-scheduler=DISABLED',
        '--innodb-buffer-pool-size=128M',
      ],
      { stdio: ['ignore', 'ignore', 'ignore'] },
    );
    this.server = server;
    this.children.push(server);
    const exited = exitOf(server, 'mariadbd', ErrorType.RestoreFailed);
    exited.catch(() => undefined);
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      this.checkCancelled();
      if (server.exitCode !== null || server.signalCode !== null) {
        await exited;
        const log = await readFile(errorLog, 'utf8').catch(() => '');
        throw restoreFailed(`the scratch mariadbd exited ${server.exitCode}: ${log.slice(-1500)}`);
      }
      const conn = await mysql.createConnection({ socketPath: this.socket, user: 'root' }).catch(() => null);
      if (conn) return conn;
      if (Date.now() > deadline)
        throw restoreFailed(`the scratch mariadbd did not accept connections in ${START_TIMEOUT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * 5. Always: the instance stopped (SIGTERM, then SIGKILL) and its directory deleted. After SHUTDOWN (`shutDown`)
   * the server is on its way out; otherwise (a failure) it is told to stop now. True when every trace is gone.
   */
  async cleanUp(shutDown: boolean): Promise<boolean> {
    this.phase = 'cleaning up';
    let cleanedUp = true;
    const server = this.server;
    if (server && !(shutDown && (await waitForExit(server, 60_000)))) {
      server.kill('SIGTERM');
      if (!(await waitForExit(server, 60_000))) {
        server.kill('SIGKILL');
        cleanedUp = await waitForExit(server, 10_000);
      }
    }
    killAll(this.children);
    await rm(this.work, { recursive: true, force: true }).catch(() => {
      cleanedUp = false;
    });
    return cleanedUp;
  }
}

/** The physical-schema-present check, and the tables of the backup's databases as the copy has them. */
async function schemaCheck(
  conn: mysql.Connection,
  wanted: string[],
  expectedTables: PhysicalRestoreRequest['expectedTables'],
): Promise<{ check: RestoreCheck; present: RowDataPacket[] }> {
  const [present] = await conn.query<RowDataPacket[]>(
    'SELECT TABLE_SCHEMA AS db, TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA IN (?) AND ' +
      "TABLE_TYPE = 'BASE TABLE' ORDER BY 1, 2",
    [wanted.length ? wanted : ['']],
  );
  const dbsPresent = new Set(present.map((r) => String(r.db)));
  const missingDbs = wanted.filter((d) => !dbsPresent.has(d));
  const missingTables = (expectedTables ?? []).filter(
    (e) => !present.some((r) => r.db === e.database && r.t === e.table),
  );
  return {
    present,
    check: {
      name: 'physical-schema-present',
      ok: missingDbs.length === 0 && missingTables.length === 0 && present.length > 0,
      gate: true,
      detail:
        missingDbs.length || missingTables.length
          ? `missing: ${[...missingDbs, ...missingTables.map((e) => `${e.database}.${e.table}`)].join(', ')}`
          : `${present.length} tables in ${wanted.join(', ')}`,
    },
  };
}

/** The physical-row-counts check: against the expected counts when known, else evidence only. */
function rowCountCheck(
  tables: PhysicalRestoreResult['tables'],
  expectedTables: PhysicalRestoreRequest['expectedTables'],
): RestoreCheck {
  const total = tables.reduce((n, x) => n + x.rows, 0);
  if (!expectedTables)
    return {
      name: 'physical-row-counts',
      ok: true,
      gate: false,
      detail: `${tables.length} tables read in full, ${total} rows (a physical manifest holds no counts to compare)`,
    };
  const wrong = expectedTables
    .map((e) => ({ e, got: tables.find((x) => x.database === e.database && x.table === e.table)?.rows }))
    .filter(({ e, got }) => got !== e.rows)
    .map(({ e, got }) => `${e.database}.${e.table}: expected ${e.rows}, restored ${got ?? 'missing'}`);
  return {
    name: 'physical-row-counts',
    ok: wrong.length === 0,
    gate: true,
    detail: wrong.length ? wrong.join('; ') : `${expectedTables.length} tables, ${total} rows, all as expected`,
  };
}

/** 4. Validate: schema, every table counted (through InnoDB: a page the copy got wrong fails here), GTID, queries. */
async function validateCopy(conn: mysql.Connection, r: PhysicalRestoreRequest, copyGtid: string | null) {
  const checks: RestoreCheck[] = [];
  const tables: PhysicalRestoreResult['tables'] = [];
  const wanted = r.databases.filter((d) => !SYSTEM_SCHEMAS.has(d));
  const { check, present } = await schemaCheck(conn, wanted, r.expectedTables);
  checks.push(check);
  for (const row of present) {
    const [db, table] = [String(row.db), String(row.t)];
    const [c] = await conn.query<RowDataPacket[]>(
      `SELECT COUNT(*) AS n FROM ${quoteIdentifier(db)}.${quoteIdentifier(table)}`,
    );
    tables.push({ database: db, table, rows: Number(c[0].n) });
  }
  checks.push(rowCountCheck(tables, r.expectedTables));
  const gtid = r.gtid ?? null;
  if (gtid !== null)
    checks.push({
      name: 'physical-position',
      ok: copyGtid === gtid,
      gate: true,
      detail: `the prepared copy is at GTID ${copyGtid ?? '(none)'}; the manifest says ${gtid}`,
    });
  const queries = r.queries ?? [];
  if (queries.length) {
    if (wanted[0]) await conn.query(`USE ${quoteIdentifier(wanted[0])}`);
    checks.push(...(await runQueries(conn, queries, 'physical-query:')));
  }
  return { checks, tables };
}

export function createPhysicalRestoreActivities(stores: BackupStores) {
  return {
    /**
     * Restore a physical backup into a scratch instance, validate it, and remove the instance.
     * `expectedTables` (row counts to match, when known) gates `physical-row-counts`; without it the
     * counts are evidence. Retry-safe: each attempt works in a fresh private directory.
     */
    async restorePhysicalIntoScratch(r: PhysicalRestoreRequest): Promise<PhysicalRestoreResult> {
      const started = performance.now();
      const seconds = { extract: 0, prepare: 0, start: 0, validate: 0, total: 0 };
      const store = stores.store(r.service, r.destination);
      // The signed manifest names the attempt's object and its digest: a rewritten one is refused before extracting.
      const verified = await readVerifiedManifest(store, stores.keyring, r.service, r.backupId, 'physical');
      requireManifestObject(verified, store, { size: r.size, sha256: r.sha256 });
      const ctx = activityContext();
      const instance = new ScratchInstance(await privateWorkDir('physical'), ctx); // 0700: holds the socket too
      const meter = new Digest();
      const stopBeat = heartbeatEvery(() => ({ phase: instance.phase, readBytes: meter.bytes }), HEARTBEAT_MS);
      const onCancel = () => killAll(instance.children);
      ctx?.cancellationSignal.addEventListener('abort', onCancel);
      const lap = (() => {
        let t = performance.now();
        return () => {
          const s = (performance.now() - t) / 1000;
          t = performance.now();
          return s;
        };
      })();
      let result: Omit<PhysicalRestoreResult, 'cleanedUp'> | null = null;
      let thrown: Error | null = null;
      try {
        const digest = await instance.extract(store, verified.objectKey, meter, r);
        seconds.extract = lap();
        const copyGtid = await instance.prepare();
        seconds.prepare = lap();
        const conn = await instance.start();
        seconds.start = lap();
        instance.phase = 'validating';
        try {
          const { checks, tables } = await validateCopy(conn, r, copyGtid);
          // A clean shutdown, as a real recovery would do before handing the files over.
          instance.phase = 'shutting down';
          await conn.query('SHUTDOWN').catch(() => undefined);
          result = { bytesRead: meter.bytes, sha256: digest, gtid: copyGtid, tables, checks, seconds };
        } finally {
          await conn.end().catch(() => undefined);
        }
        seconds.validate = lap();
      } catch (err) {
        thrown = ctx?.cancellationSignal.aborted
          ? new CancelledFailure('physical restore cancelled')
          : err instanceof Error
            ? err
            : new Error(String(err));
      }
      const cleanedUp = await instance.cleanUp(result !== null);
      stopBeat();
      ctx?.cancellationSignal.removeEventListener('abort', onCancel);
      if (thrown) throw thrown;
      seconds.total = (performance.now() - started) / 1000;
      return { ...result!, seconds, cleanedUp };
    },
  };
}

export type PhysicalRestoreActivities = ReturnType<typeof createPhysicalRestoreActivities>;
