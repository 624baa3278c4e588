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
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { type BackupDestinationName, type RestoreCheck, ErrorType } from '../../contract';
import { failure } from '../errors';
import { privateWorkDir } from '../workdirs';
import { activityContext, collect, Digest, exitOf } from '../mysql/dump';
import type { BackupStores } from '../storage/destinations';
import { readVerifiedManifest, requireManifestObject } from '../storage/manifest';
import { runQueries, type ValidationQuery } from './index';

const HEARTBEAT_MS = 1000;
const START_TIMEOUT_MS = 180_000;
const SYSTEM_SCHEMAS = new Set(['mysql', 'information_schema', 'performance_schema', 'sys']);
const ident = (name: string) => `\`${name.replace(/`/g, '``')}\``;

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

export function createPhysicalRestoreActivities(stores: BackupStores) {
  return {
    /**
     * Restore a physical backup into a scratch instance, validate it, and remove the instance.
     * `expectedTables` (row counts to match, when known) gates `physical-row-counts`; without it the
     * counts are evidence. Retry-safe: each attempt works in a fresh private directory.
     */
    async restorePhysicalIntoScratch({
      service,
      backupId,
      destination,
      size,
      sha256,
      databases,
      gtid = null,
      queries = [],
      expectedTables,
    }: {
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
    }): Promise<PhysicalRestoreResult> {
      const started = performance.now();
      const seconds = { extract: 0, prepare: 0, start: 0, validate: 0, total: 0 };
      const store = stores.store(service, destination);
      // The signed manifest names the attempt's object and its digest: a rewritten one is refused before extracting.
      const verified = await readVerifiedManifest(store, stores.keyring, service, backupId, 'physical');
      requireManifestObject(verified, store, { size, sha256 });
      const key = verified.objectKey;
      const ctx = activityContext();
      const work = await privateWorkDir('physical'); // 0700: holds the socket too
      const datadir = path.join(work, 'data');
      const socket = path.join(work, 'mariadbd.sock');
      const children: ChildProcess[] = [];
      let server: ChildProcess | null = null;
      let phase = 'extracting';
      const meter = new Digest();
      const heartbeat = setInterval(() => ctx?.heartbeat({ phase, readBytes: meter.bytes }), HEARTBEAT_MS);
      const killAll = () => {
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      };
      ctx?.cancellationSignal.addEventListener('abort', killAll);
      let result: Omit<PhysicalRestoreResult, 'cleanedUp'> | null = null;
      let thrown: Error | null = null;
      try {
        // 1. Stream, check and unpack.
        await mkdir(datadir, { mode: 0o700 });
        let t = performance.now();
        const zstd = spawn('zstd', ['-d', '-q', '-c'], { stdio: ['pipe', 'pipe', 'pipe'] });
        const mbstream = spawn('mbstream', ['-x', '-C', datadir], { stdio: ['pipe', 'ignore', 'pipe'] });
        children.push(zstd, mbstream);
        const zstdErr = collect(zstd.stderr);
        const mbErr = collect(mbstream.stderr);
        const flows = await Promise.allSettled([
          pipeline(await store.read(key), meter, zstd.stdin),
          pipeline(zstd.stdout, mbstream.stdin),
          exitOf(zstd, 'zstd'),
          exitOf(mbstream, 'mbstream'),
        ]);
        if (ctx?.cancellationSignal.aborted) throw new CancelledFailure('physical restore cancelled');
        const digest = meter.hex();
        if (meter.bytes !== size || digest !== sha256)
          throw ApplicationFailure.create({
            type: ErrorType.BackupCorrupt,
            message: `${store.location(key)}: read ${meter.bytes} bytes with SHA-256 ${digest}; the manifest says ${size} bytes with SHA-256 ${sha256}`,
            nonRetryable: true,
          });
        const [, , z, m] = flows;
        if (z.status === 'rejected') throw z.reason;
        if (m.status === 'rejected') throw m.reason;
        if (z.value.code !== 0) throw restoreFailed(`zstd -d exited ${z.value.code}: ${zstdErr()}`);
        if (m.value.code !== 0) throw restoreFailed(`mbstream -x exited ${m.value.code}: ${mbErr()}`);
        for (const f of flows.slice(0, 2)) if (f.status === 'rejected') throw f.reason;
        seconds.extract = (performance.now() - t) / 1000;

        // 2. Prepare: apply the redo log the copy carries, so the data files are consistent.
        phase = 'preparing';
        t = performance.now();
        const prepare = spawn('mariabackup', ['--prepare', `--target-dir=${datadir}`, '--use-memory=256M'], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        children.push(prepare);
        const prepareErr = collect(prepare.stderr);
        const prepared = await exitOf(prepare, 'mariabackup');
        if (ctx?.cancellationSignal.aborted) throw new CancelledFailure('physical restore cancelled');
        if (prepared.code !== 0) throw restoreFailed(`mariabackup --prepare exited ${prepared.code}: ${prepareErr()}`);
        seconds.prepare = (performance.now() - t) / 1000;
        const info = await readFile(path.join(datadir, 'xtrabackup_binlog_info'), 'utf8').catch(() => '');
        const copyGtid = info.trim().split(/\s+/)[2] ?? null;

        // 3. A scratch instance on the copy: private socket, no TCP, no binlog, no replication, no events.
        phase = 'starting the scratch instance';
        t = performance.now();
        const errorLog = path.join(work, 'error.log');
        server = spawn(
          'mariadbd',
          [
            '--no-defaults',
            `--datadir=${datadir}`,
            `--socket=${socket}`,
            `--pid-file=${path.join(work, 'mariadbd.pid')}`,
            `--log-error=${errorLog}`,
            `--tmpdir=${work}`,
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
        children.push(server);
        const exited = exitOf(server, 'mariadbd');
        exited.catch(() => undefined);
        const deadline = Date.now() + START_TIMEOUT_MS;
        let conn: mysql.Connection | null = null;
        while (!conn) {
          if (ctx?.cancellationSignal.aborted) throw new CancelledFailure('physical restore cancelled');
          if (server.exitCode !== null || server.signalCode !== null) {
            await exited;
            const log = await readFile(errorLog, 'utf8').catch(() => '');
            throw restoreFailed(`the scratch mariadbd exited ${server.exitCode}: ${log.slice(-1500)}`);
          }
          conn = await mysql.createConnection({ socketPath: socket, user: 'root' }).catch(() => null);
          if (!conn) {
            if (Date.now() > deadline)
              throw restoreFailed(`the scratch mariadbd did not accept connections in ${START_TIMEOUT_MS / 1000} s`);
            await new Promise((r) => setTimeout(r, 200));
          }
        }
        seconds.start = (performance.now() - t) / 1000;

        // 4. Validate.
        phase = 'validating';
        t = performance.now();
        const checks: RestoreCheck[] = [];
        const tables: PhysicalRestoreResult['tables'] = [];
        try {
          const wanted = databases.filter((d) => !SYSTEM_SCHEMAS.has(d));
          const [present] = await conn.query<RowDataPacket[]>(
            "SELECT TABLE_SCHEMA AS db, TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA IN (?) AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1, 2",
            [wanted.length ? wanted : ['']],
          );
          const dbsPresent = new Set(present.map((r) => String(r.db)));
          const missingDbs = wanted.filter((d) => !dbsPresent.has(d));
          const missingTables = (expectedTables ?? []).filter(
            (e) => !present.some((r) => r.db === e.database && r.t === e.table),
          );
          checks.push({
            name: 'physical-schema-present',
            ok: missingDbs.length === 0 && missingTables.length === 0 && present.length > 0,
            gate: true,
            detail:
              missingDbs.length || missingTables.length
                ? `missing: ${[...missingDbs, ...missingTables.map((e) => `${e.database}.${e.table}`)].join(', ')}`
                : `${present.length} tables in ${wanted.join(', ')}`,
          });
          // Counting reads every row through InnoDB: a page the copy got wrong fails here.
          for (const r of present) {
            const [db, table] = [String(r.db), String(r.t)];
            const [c] = await conn.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${ident(db)}.${ident(table)}`);
            tables.push({ database: db, table, rows: Number(c[0].n) });
          }
          const total = tables.reduce((n, x) => n + x.rows, 0);
          if (expectedTables) {
            const wrong = expectedTables
              .map((e) => ({ e, got: tables.find((x) => x.database === e.database && x.table === e.table)?.rows }))
              .filter(({ e, got }) => got !== e.rows)
              .map(({ e, got }) => `${e.database}.${e.table}: expected ${e.rows}, restored ${got ?? 'missing'}`);
            checks.push({
              name: 'physical-row-counts',
              ok: wrong.length === 0,
              gate: true,
              detail: wrong.length
                ? wrong.join('; ')
                : `${expectedTables.length} tables, ${total} rows, all as expected`,
            });
          } else {
            checks.push({
              name: 'physical-row-counts',
              ok: true,
              gate: false,
              detail: `${tables.length} tables read in full, ${total} rows (a physical manifest holds no counts to compare)`,
            });
          }
          if (gtid !== null)
            checks.push({
              name: 'physical-position',
              ok: copyGtid === gtid,
              gate: true,
              detail: `the prepared copy is at GTID ${copyGtid ?? '(none)'}; the manifest says ${gtid}`,
            });
          if (queries.length) {
            if (wanted[0]) await conn.query(`USE ${ident(wanted[0])}`);
            checks.push(...(await runQueries(conn, queries, 'physical-query:')));
          }
          // A clean shutdown, as a real recovery would do before handing the files over.
          phase = 'shutting down';
          await conn.query('SHUTDOWN').catch(() => undefined);
        } finally {
          await conn.end().catch(() => undefined);
        }
        seconds.validate = (performance.now() - t) / 1000;
        result = { bytesRead: meter.bytes, sha256: digest, gtid: copyGtid, tables, checks, seconds };
      } catch (err) {
        thrown = ctx?.cancellationSignal.aborted
          ? new CancelledFailure('physical restore cancelled')
          : err instanceof Error
            ? err
            : new Error(String(err));
      }

      // 5. Always: the instance stopped (SIGTERM, then SIGKILL) and its directory deleted.
      phase = 'cleaning up';
      let cleanedUp = true;
      // After SHUTDOWN the server is on its way out; otherwise (a failure) it is told to stop now.
      if (server && !(result && (await waitForExit(server, 60_000)))) {
        server.kill('SIGTERM');
        if (!(await waitForExit(server, 60_000))) {
          server.kill('SIGKILL');
          cleanedUp = await waitForExit(server, 10_000);
        }
      }
      killAll();
      await rm(work, { recursive: true, force: true }).catch(() => {
        cleanedUp = false;
      });
      clearInterval(heartbeat);
      ctx?.cancellationSignal.removeEventListener('abort', killAll);
      if (thrown) throw thrown;
      seconds.total = (performance.now() - started) / 1000;
      return { ...result!, seconds, cleanedUp };
    },
  };
}

export type PhysicalRestoreActivities = ReturnType<typeof createPhysicalRestoreActivities>;
