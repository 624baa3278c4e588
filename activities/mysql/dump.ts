/**
 * The logical dump, streamed end to end with no temp file:
 *
 *   mariadb-dump --single-transaction --master-data=2 --gtid | tee | zstd | SHA-256 | every destination at once
 *
 * Row counts for the manifest are read in a second consistent snapshot. On MariaDB neither
 * snapshot takes a lock: each reports its own binlog position (binlog_snapshot_file/position;
 * mariadb-dump --single-transaction --master-data uses it too and skips FLUSH TABLES WITH READ
 * LOCK), and the counts are exact when no binlog event between the two positions changes a
 * dumped table. A global read lock would stall every write (and a fence's read_only = ON)
 * behind any long statement. MySQL reports no snapshot position: a brief FLUSH TABLES WITH
 * READ LOCK holds commits back until mysqldump has its snapshot (as mysqldump --source-data
 * does itself). Where the counts cannot be tied to the dump the manifest says they are not exact.
 *
 * The password goes to the client tools through a 0600 defaults file in a private temp
 * directory, removed when the dump ends; never on a command line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { pipeline } from 'node:stream/promises';
import type { PoolConnection, RowDataPacket } from 'mysql2/promise';
import { ErrorType, type BackupDestinationName } from '../../contract';
import { failure } from '../errors';
import { collect, exitOf, killAll, toolVersion } from '../process/child';
import { writeClientDefaults } from '../process/defaults-file';
import { heartbeatEvery } from '../process/heartbeat';
import { Digest } from '../process/streams';
import { Upload } from '../process/upload';
import { startZstd, ZSTD_SIZES } from '../process/zstd';
import type { BackupStores } from '../storage/destinations';
import { databaseBackups, type DatabaseBackupRun } from './backup-start';
import {
  binlogCreatedAt,
  countRows,
  dumpFailure,
  gtidAt,
  HeadReader,
  noChangeBetween,
  openCountingSnapshot,
  openSideCopy,
  type SnapshotPosition,
} from './dump-snapshot';
import { mysqlFailure, type MysqlPools } from './index';

export interface DumpResult extends DatabaseBackupRun {
  position: { gtid: string | null; binlogFile: string | null; binlogPos: number | null; binlogCreatedAt?: string };
  tables: { database: string; table: string; rows: number }[];
  rowCounts: { exact: boolean; method: string };
}

export interface DumpOptions {
  /**
   * zstd level and worker threads (0: one per core). Level 1 by default: on mariadb-dump output it
   * used half the CPU of level 3 and compressed as well or better (docs/benchmarks.md, "Backup").
   */
  zstdLevel?: number;
  zstdThreads?: number;
}

const HEARTBEAT_MS = 5000;
/** How long commits may be held back (MySQL) waiting for the dump to open its snapshot. */
const LOCK_HOLD_LIMIT_MS = 20000;

/** The dump tool and its options for the engine. */
function dumpCommand(engine: 'mariadb' | 'mysql', databases: string[]): { bin: string; args: string[] } {
  const bin = engine === 'mariadb' ? 'mariadb-dump' : 'mysqldump';
  const args =
    engine === 'mariadb'
      ? ['--single-transaction', '--master-data=2', '--gtid']
      : ['--single-transaction', '--source-data=2', '--set-gtid-purged=AUTO'];
  args.push('--routines', '--events', '--triggers', '--databases', ...databases);
  return { bin, args };
}

/**
 * mariadb-dump | tee | zstd run as one pipeline in the kernel: the worker reads only zstd's output (to hash it and
 * write it out) and the dump's head from tee's side copy, never the dump itself (passing it through was a third of
 * the worker's CPU per GB; docs/benchmarks.md).
 */
async function startDump(
  command: { bin: string; args: string[] },
  defaults: { dir: string; file: string },
  upload: Upload,
  fanOut: NodeJS.WritableStream,
  zstdOptions: { level: number; threads: number },
  children: ChildProcess[],
) {
  const side = await openSideCopy(defaults.dir);
  const dump = spawn(command.bin, [`--defaults-extra-file=${defaults.file}`, ...command.args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tee = spawn('tee', ['-p', side.path], { stdio: [dump.stdout, 'pipe', 'pipe'] });
  dump.stdout.destroy(); // tee holds the read end now; a dead tee must mean EPIPE for the dump, not a hang
  const zstd = startZstd({ ...zstdOptions, verbose: true, stdin: tee.stdout });
  tee.stdout?.destroy();
  children.push(dump, tee, zstd.child);
  const teeStderr = collect(tee.stderr);
  const teeExit = exitOf(tee, 'tee');
  const dumpStderr = collect(dump.stderr);
  const dumpExit = exitOf(dump, command.bin);
  const head = new HeadReader();
  side.stream.on('data', (chunk: Buffer) => {
    if (head.feed(chunk)) side.stream.destroy();
  });
  // Once tee is gone nothing more comes on the side copy. (Its failure is reported through `streamed`;
  // this derived promise must not become an unhandled rejection of its own.)
  const sideDone = () => {
    side.stream.destroy();
    head.giveUp();
  };
  teeExit.then(sideDone, sideDone);
  const digest = new Digest();
  upload.onAbort(() => killAll(children));
  const streamed = Promise.all([
    pipeline(zstd.child.stdout!, digest, fanOut, { signal: upload.signal }),
    dumpExit,
    zstd.exit,
    teeExit,
  ]);
  streamed.catch(() => undefined); // awaited by the caller; an early failure must not go unhandled meanwhile
  /** Every tool's exit checked, and zstd's own count of its output compared with the bytes received. */
  const finished = async (server: string) => {
    const [, dumped, compressed, teed] = await streamed;
    if (dumped.code !== 0) throw dumpFailure(command.bin, server, dumped.code, dumpStderr());
    if (teed.code !== 0) throw failure(ErrorType.DumpFailed, `tee exited ${teed.code}: ${teeStderr()}`, { server });
    if (compressed.code !== 0)
      throw failure(ErrorType.DumpFailed, `zstd exited ${compressed.code}: ${zstd.stderr()}`, { server });
    upload.throwIfAborted();
    const sizes = ZSTD_SIZES.exec(zstd.stderr());
    if (!sizes || Number(sizes[2]) !== digest.bytes)
      throw failure(
        ErrorType.DumpFailed,
        `zstd's byte counts (${sizes ? `${sizes[2]} B out` : 'not reported'}) do not match the ${digest.bytes} ` +
          `B received`,
        { server },
      );
    return { uncompressedSize: Number(sizes[1]) };
  };
  return { sideCopy: side.stream, head, digest, streamed, finished };
}

/**
 * The row counts, read in the counting snapshot as soon as the dump has its own (the commits a MySQL lock held back
 * are released first), and whether they are exact: both snapshots at one position, or nothing between them changed
 * a dumped table (MariaDB).
 */
async function countAtSnapshot(
  conn: PoolConnection,
  engine: 'mariadb' | 'mysql',
  databases: string[],
  snapshot: SnapshotPosition,
  head: HeadReader,
  streamed: Promise<unknown>,
) {
  // Release the commits as soon as the dump has its snapshot (or after a bounded wait).
  const giveUp = setTimeout(() => head.giveUp(), LOCK_HOLD_LIMIT_MS);
  await Promise.race([head.headSeen, streamed]);
  clearTimeout(giveUp);
  if (snapshot.locked) await conn.query('UNLOCK TABLES');
  const tables = await countRows(conn, databases);
  await conn.query('COMMIT');
  // MariaDB writes the dump's GTID at the end of the file; the server tells it for the head's position.
  const gtid = head.gtid ?? (await gtidAt(conn, engine, head.binlogFile, head.binlogPos));
  // MariaDB: two lock-free snapshots hold the same rows of the dumped tables if nothing between them changed one.
  const sameRows =
    snapshot.binlogFile !== null &&
    snapshot.binlogPos !== null &&
    head.binlogPos !== null &&
    snapshot.binlogFile === head.binlogFile &&
    (snapshot.binlogPos === head.binlogPos ||
      (engine === 'mariadb' &&
        (await noChangeBetween(conn, databases, snapshot.binlogFile, snapshot.binlogPos, head.binlogPos))));
  const exact = sameRows && (engine === 'mariadb' || snapshot.locked);
  return { tables, gtid, rowCounts: { exact, method: countMethod(exact, engine, databases, snapshot, head) } };
}

/** How the counts were read, for the manifest. */
function countMethod(
  exact: boolean,
  engine: 'mariadb' | 'mysql',
  databases: string[],
  snapshot: SnapshotPosition,
  head: HeadReader,
): string {
  if (exact)
    return snapshot.binlogPos === head.binlogPos
      ? `COUNT(*) in a snapshot at the dump's binlog position ${head.binlogFile}:${head.binlogPos}`
      : `COUNT(*) in a snapshot at ${snapshot.binlogFile}:${snapshot.binlogPos}; the dump's is ` +
          `at ${head.binlogPos}, and no binlog event between them changes ${databases.join(', ')}`;
  return (
    `COUNT(*) in a snapshot at ${snapshot.binlogFile}:${snapshot.binlogPos}, the dump is ` +
    `at ${head.binlogFile}:${head.binlogPos}` +
    (engine === 'mysql' && !snapshot.locked
      ? ' (no RELOAD privilege for FLUSH TABLES WITH READ LOCK)'
      : ` (the dumped tables changed in between, or the binlog could not be read)`)
  );
}

/** A session on the dump's source, its version, and the counting snapshot opened; a source fenced since is refused. */
async function openSource(
  pools: MysqlPools,
  server: string,
  service: string,
  writable: string | null,
  engine: 'mariadb' | 'mysql',
) {
  const conn = await pools
    .pool(server)
    .getConnection()
    .catch((err: unknown) => {
      throw mysqlFailure(server, err);
    });
  try {
    const [ver] = await conn.query<RowDataPacket[]>('SELECT VERSION() AS v, @@read_only AS ro');
    // Read again on the dump's own session: a writer fenced since discovery is stale from here on.
    if (server === writable && Number(ver[0].ro) === 1)
      throw failure(
        ErrorType.SourceNotWritable,
        `${server} was fenced (read_only=ON) after it was read as ${service}'s writable member: not dumping it`,
        { service, source: server },
      );
    return { conn, version: String(ver[0].v), snapshot: await openCountingSnapshot(conn, engine) };
  } catch (err) {
    conn.destroy();
    throw err;
  }
}

export function createDumpActivities(stores: BackupStores, pools: MysqlPools, options: DumpOptions = {}) {
  const backups = databaseBackups(stores, pools, options);

  return {
    /**
     * Dump the service's databases from the member writable now (read from the servers, not the inventory's
     * role names; a healthy replica of it with backup.source: replica) into every destination at once; a fenced
     * source is refused. Safe to retry: each attempt writes under its own `<attempt>/` directory (never another
     * attempt's keys), and nothing is verified here (the manifest, written after verifyCopy, names the attempt
     * that counts). A backup id that already has a manifest is refused (BackupExists): never rewritten.
     */
    async dumpDatabase({
      service,
      backupId,
      destinations,
      source,
    }: {
      service: string;
      backupId: string;
      /** Default: every destination of the service. */
      destinations?: BackupDestinationName[];
      /** A member to read from instead of the live one (refused if fenced). */
      source?: string;
    }): Promise<DumpResult> {
      const { backup, engine, server, topology, targets, key, startedAt } = await backups.start({
        service,
        backupId,
        kind: 'logical',
        source,
        destinations,
      });
      const databases = backup.databases;
      const command = dumpCommand(engine, databases);

      const defaults = await writeClientDefaults(pools.target(server));
      let conn: PoolConnection | undefined;
      const upload = new Upload();
      const children: ChildProcess[] = [];
      let stopBeat = () => {};
      let sideCopy: Socket | undefined;
      try {
        const opened = await openSource(pools, server, service, topology.writable, engine);
        conn = opened.conn;
        const fanOut = upload.open(targets, key);
        const run = await startDump(command, defaults, upload, fanOut, backups.zstd, children);
        sideCopy = run.sideCopy;
        stopBeat = heartbeatEvery(() => ({ phase: 'dumping', writtenBytes: run.digest.bytes }), HEARTBEAT_MS);
        const counted = await countAtSnapshot(conn, engine, databases, opened.snapshot, run.head, run.streamed);
        const { uncompressedSize } = await run.finished(server);

        const sha256 = run.digest.hex();
        const { head, digest } = run;
        const snapshot = opened.snapshot;
        const binlogFile = head.binlogFile ?? snapshot.binlogFile;
        // Which log that is even after RESET MASTER restarts the numbering: the binlog archive keys logs by
        // name and creation time, and point-in-time recovery starts from exactly this one.
        const binlogCreated =
          backup.binlogArchive && binlogFile
            ? await binlogCreatedAt(engine, defaults.file, binlogFile).catch(() => null)
            : null;
        const copies = await upload.complete(sha256);
        return {
          service,
          backupId,
          server,
          engine,
          version: opened.version,
          startedAt,
          endedAt: new Date().toISOString(),
          position: {
            gtid: counted.gtid ?? snapshot.gtid,
            binlogFile,
            binlogPos: head.binlogPos ?? snapshot.binlogPos,
            ...(binlogCreated ? { binlogCreatedAt: binlogCreated } : {}),
          },
          databases,
          tables: counted.tables,
          rowCounts: counted.rowCounts,
          object: { key, size: digest.bytes, sha256, compression: 'zstd', uncompressedSize },
          copies,
          tools: {
            [command.bin]: await toolVersion(command.bin),
            zstd: await toolVersion('zstd'),
            server: opened.version,
          },
        };
      } catch (err) {
        return await upload.fail(err);
      } finally {
        stopBeat();
        sideCopy?.destroy();
        upload.close();
        killAll(children);
        // Destroyed, not released: the session may hold the read lock or changed settings.
        conn?.destroy();
        await rm(defaults.dir, { recursive: true, force: true });
      }
    },
  };
}

export type DumpActivities = ReturnType<typeof createDumpActivities>;
