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
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants, openSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import path from 'node:path';
import { Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { Context } from '@temporalio/activity';
import type { PoolConnection, RowDataPacket } from 'mysql2/promise';
import { ErrorType, type BackupCopy, type BackupDestinationName } from '../../contract';
import { failure } from '../errors';
import { privateWorkDir } from '../workdirs';
import {
  checkObjectLocks,
  writtenCopies,
  type BackupStore,
  type BackupStores,
  type BackupWriter,
} from '../storage/destinations';
import { checksumKey, checksumLine, dumpKey, newAttempt } from '../storage/layout';
import { refuseExistingBackup } from '../storage/manifest';
import { createTopologyDiscoveryActivities } from './discovery';
import { mysqlFailure, type MysqlPools, type MysqlTarget } from './index';

export interface DumpResult {
  service: string;
  backupId: string;
  server: string;
  engine: 'mariadb' | 'mysql';
  version: string;
  startedAt: string;
  endedAt: string;
  position: { gtid: string | null; binlogFile: string | null; binlogPos: number | null; binlogCreatedAt?: string };
  databases: string[];
  tables: { database: string; table: string; rows: number }[];
  rowCounts: { exact: boolean; method: string };
  object: { key: string; size: number; sha256: string; compression: 'zstd'; uncompressedSize: number };
  /** Copies written (not yet verified: verifyCopy reads each back). */
  copies: {
    destination: BackupDestinationName;
    kind: 'file' | 's3';
    region: string | null;
    offsite: boolean;
    location: string;
    /** The S3 object version this attempt wrote, where the bucket keeps versions. */
    versionId?: string;
    /** S3 Object Lock on the copy (destination objectLock): recorded in the manifest. */
    objectLock?: BackupCopy['objectLock'];
    encryption?: BackupCopy['encryption'];
  }[];
  tools: Record<string, string>;
}

export interface DumpOptions {
  /**
   * zstd level and worker threads (0: one per core). Level 1 by default: on mariadb-dump output it
   * used half the CPU of level 3 and compressed as well or better (docs/benchmarks.md, "Backup").
   */
  zstdLevel?: number;
  zstdThreads?: number;
}

const execFileAsync = promisify(execFile);
const HEARTBEAT_MS = 5000;
/** How long commits may be held back (MySQL) waiting for the dump to open its snapshot. */
const LOCK_HOLD_LIMIT_MS = 20000;

/** The heartbeat context when running as an activity; null when called directly (benchmarks, tests). */
export function activityContext(): Context | null {
  try {
    return Context.current();
  } catch {
    return null;
  }
}

const OPTION_ESCAPES: Record<string, string> = {
  '\\': '\\\\',
  '"': '\\"',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\b': '\\b',
};

/**
 * A value for a MySQL option file, double-quoted, with every character the option-file reader
 * unescapes written as its escape: a raw newline would end the line and start an option of its own.
 */
export const optionValue = (v: string | number) => {
  const text = String(v);
  // The reader has no escape for NUL (it would cut the value short): refuse, never pass a different value.
  if (text.includes('\0')) throw failure(ErrorType.InvalidInput, 'an option-file value holds a NUL byte');
  return `"${text.replace(/[\\"\n\r\t\b]/g, (c) => OPTION_ESCAPES[c])}"`;
};

/** A private directory holding a 0600 [client] defaults file; the caller removes the directory. */
export async function writeClientDefaults(target: MysqlTarget): Promise<{ dir: string; file: string }> {
  const dir = await privateWorkDir('dump');
  const file = path.join(dir, 'client.cnf');
  const lines = [
    '[client]',
    `user=${optionValue(target.user)}`,
    `password=${optionValue(target.password)}`,
    `host=${optionValue(target.host)}`,
    `port=${target.port}`,
  ];
  await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600 });
  return { dir, file };
}

let sandboxSupported: Promise<boolean> | null = null;

/**
 * The options every `mariadb` client that loads SQL drbook did not write itself runs with (a backup
 * object, another server's dump, a binlog): client commands are refused, so `\! cmd` in a backup
 * never runs a shell on the worker (which holds every secret) and `\. file` never reads one.
 * --binary-mode turns off every client command but `\C` and DELIMITER (an unknown one ends the
 * load: "ERROR at line N: Unknown command"); --sandbox, where the client has it (MariaDB 10.5.25,
 * 10.6.18, 10.11.8 and later), also refuses the file-system ones should any be parsed.
 */
export async function loaderOptions(): Promise<string[]> {
  sandboxSupported ??= execFileAsync('mariadb', ['--help']).then(
    (r) => /^\s*--sandbox\b/m.test(r.stdout),
    () => false,
  );
  return ['--binary-mode', ...((await sandboxSupported) ? ['--sandbox'] : [])];
}

/** "ERROR at line N: Unknown command '\!'." (or refused in sandbox mode): a client command in the SQL, refused. */
export const REFUSED_CLIENT_COMMAND = /ERROR at line (\d+)[^:]*: (Unknown command '\\.'|.*sandbox mode)/i;

const toolVersions = new Map<string, Promise<string>>();
/** `tool --version`, once per worker. */
export function toolVersion(bin: string): Promise<string> {
  let v = toolVersions.get(bin);
  if (!v) {
    v = execFileAsync(bin, ['--version']).then(
      (r) => r.stdout.trim().split('\n')[0],
      () => 'unknown',
    );
    toolVersions.set(bin, v);
  }
  return v;
}

const POSITION = /(?:MASTER|SOURCE)_LOG_FILE='([^']+)',\s*(?:MASTER|SOURCE)_LOG_POS=(\d+)/;
const GTID = /(?:gtid_slave_pos|GTID_PURGED)\s*=\s*'([^']*)'/i;

/**
 * Reads the head of the dump (tee's side copy) for its binlog position and, on MySQL, its GTID
 * set. Once the position is seen the dump has its snapshot, and the side copy is closed: tee
 * (`-p`) then feeds zstd alone, so the worker never handles the dump's own bytes.
 */
class HeadReader {
  private head = '';
  binlogFile: string | null = null;
  binlogPos: number | null = null;
  gtid: string | null = null;
  private resolveHead!: () => void;
  /** Resolves once the dump has written its binlog position, i.e. opened its snapshot (or gave up). */
  readonly headSeen = new Promise<void>((r) => (this.resolveHead = r));

  /** True once the position is found (or the head grew too long to hold one): stop reading. */
  feed(chunk: Buffer): boolean {
    this.head += chunk.toString('latin1');
    const m = POSITION.exec(this.head);
    if (m) {
      this.binlogFile = m[1];
      this.binlogPos = Number(m[2]);
      this.gtid = GTID.exec(this.head)?.[1] ?? null;
    }
    if (m || this.head.length > 1024 * 1024) {
      this.head = '';
      this.resolveHead();
      return true;
    }
    return false;
  }

  giveUp(): void {
    this.resolveHead();
  }
}

/**
 * tee's side copy: a FIFO in the dump's private directory, opened read-write and non-blocking so
 * that neither side's open waits for the other (a read-only open blocks until a writer comes, a
 * thread lost if tee never does). Closing it makes tee's next write to it EPIPE, which `-p` ignores.
 */
async function openSideCopy(dir: string): Promise<{ path: string; stream: Socket }> {
  const fifo = path.join(dir, 'head');
  await execFileAsync('mkfifo', ['-m', '0600', fifo]);
  const fd = openSync(fifo, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
  return { path: fifo, stream: new Socket({ fd, readable: true, writable: false }) };
}

/** zstd -vv ends with the exact sizes in and out: "… : 21.49%   (523174282 B => 112430322 B, …)". */
const ZSTD_SIZES = /\(\s*(\d+) B =>\s*(\d+) B,/;

/** SHA-256 and size of the compressed stream, on the fly. */
export class Digest extends Transform {
  bytes = 0;
  private readonly hash = createHash('sha256');
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    cb(null, chunk);
  }
  hex(): string {
    return this.hash.digest('hex');
  }
}

/** One stream in, every destination out; moves on only when every destination has taken the chunk. */
export class FanOut extends Writable {
  constructor(private readonly targets: Writable[]) {
    super({ highWaterMark: 1024 * 1024 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    let waiting = 0;
    const drained = () => {
      if (--waiting === 0) cb();
    };
    for (const t of this.targets) {
      if (!t.write(chunk)) {
        waiting++;
        t.once('drain', drained);
      }
    }
    if (waiting === 0) cb();
  }
}

export function exitOf(child: ChildProcess, bin: string): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? failure(ErrorType.NotConfigured, `${bin} is not installed on this worker`)
          : failure(ErrorType.DumpFailed, `${bin}: ${err.message}`),
      ),
    );
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
}

export function collect(stream: NodeJS.ReadableStream | null): () => string {
  let text = '';
  stream?.on('data', (d: Buffer) => (text = (text + d.toString()).slice(-4000)));
  return () => text.trim();
}

/** The dump tool's exit, as a failure an operator and a retry policy can act on. */
function dumpFailure(bin: string, server: string, code: number | null, stderr: string): Error {
  const message = `${bin} on ${server} exited ${code}: ${stderr || '(no output)'}`;
  if (/\b1045\b|Access denied/i.test(stderr)) return failure(ErrorType.DatabaseAuthFailed, message, { server });
  if (/\b1049\b|Unknown database/i.test(stderr)) return failure(ErrorType.ResourceNotFound, message, { server });
  return failure(ErrorType.DumpFailed, message, { server });
}

const ident = (name: string) => `\`${name.replace(/`/g, '``')}\``;

interface SnapshotPosition {
  locked: boolean;
  binlogFile: string | null;
  binlogPos: number | null;
  gtid: string | null;
}

/**
 * Opens the counting snapshot before the dump starts. MariaDB: no lock (the snapshot's binlog position is
 * compared with the dump's afterwards). MySQL: FTWRL holds commits back until the dump has its own snapshot.
 */
async function openCountingSnapshot(conn: PoolConnection, engine: 'mariadb' | 'mysql'): Promise<SnapshotPosition> {
  let locked = false;
  await conn.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
  if (engine === 'mysql') {
    await conn.query('SET SESSION lock_wait_timeout = 20');
    try {
      await conn.query('FLUSH TABLES WITH READ LOCK');
      locked = true;
    } catch (err) {
      // Without RELOAD the counts are still read, just not at the dump's exact position.
      if (
        !/ER_SPECIFIC_ACCESS_DENIED|ER_ACCESS_DENIED|ER_LOCK_WAIT_TIMEOUT/.test((err as { code?: string }).code ?? '')
      )
        throw err;
    }
  }
  await conn.query('START TRANSACTION WITH CONSISTENT SNAPSHOT');
  if (engine === 'mariadb') {
    const [rows] = await conn.query<RowDataPacket[]>("SHOW STATUS LIKE 'binlog_snapshot_%'");
    const v = Object.fromEntries(rows.map((r) => [String(r.Variable_name).toLowerCase(), String(r.Value)]));
    const [g] = await conn.query<RowDataPacket[]>('SELECT @@gtid_binlog_pos AS g');
    return {
      locked,
      binlogFile: v.binlog_snapshot_file || null,
      binlogPos: v.binlog_snapshot_position ? Number(v.binlog_snapshot_position) : null,
      gtid: String(g[0].g ?? '') || null,
    };
  }
  const [rows] = await conn.query<RowDataPacket[]>('SHOW MASTER STATUS');
  return {
    locked,
    binlogFile: rows[0] ? String(rows[0].File) : null,
    binlogPos: rows[0] ? Number(rows[0].Position) : null,
    gtid: rows[0] ? String(rows[0].Executed_Gtid_Set ?? '') || null : null,
  };
}

/** MariaDB: the GTID position at a binlog file/offset (what mariadb-dump itself writes at the end of the dump). */
async function gtidAt(
  conn: PoolConnection,
  engine: 'mariadb' | 'mysql',
  file: string | null,
  pos: number | null,
): Promise<string | null> {
  if (engine !== 'mariadb' || file === null || pos === null) return null;
  const [r] = await conn.query<RowDataPacket[]>('SELECT BINLOG_GTID_POS(?, ?) AS g', [file, pos]);
  return r[0]?.g == null ? null : String(r[0].g);
}

/**
 * MariaDB: true when no binlog event from `from` to `to` (one file) changes a table of `databases`. Row events
 * name their table in the Table_map event before them; any other statement (DDL, statement-format DML) counts
 * as a change. Unreadable (no BINLOG MONITOR) or too many events to read: false (the counts are then approximate).
 */
async function noChangeBetween(
  conn: PoolConnection,
  databases: string[],
  file: string,
  from: number,
  to: number,
): Promise<boolean> {
  if (to < from) return false;
  let pos = from;
  try {
    for (let page = 0; page < 20 && pos < to; page++) {
      const [events] = await conn.query<RowDataPacket[]>(`SHOW BINLOG EVENTS IN ? FROM ${pos} LIMIT 1000`, [file]);
      if (events.length === 0) return false;
      for (const e of events) {
        if (Number(e.Pos) >= to) return true;
        const info = String(e.Info ?? '').trim();
        if (e.Event_type === 'Table_map') {
          const table = /\(([^.()]+)\.[^()]+\)\s*$/.exec(info);
          if (!table || databases.includes(table[1])) return false;
        } else if (e.Event_type === 'Query' && !/^(BEGIN|COMMIT)$/i.test(info)) return false;
        pos = Number(e.End_log_pos);
      }
    }
  } catch {
    return false;
  }
  return pos >= to;
}

async function countRows(conn: PoolConnection, databases: string[]) {
  const [tables] = await conn.query<RowDataPacket[]>(
    "SELECT TABLE_SCHEMA AS db, TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA IN (?) AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1, 2",
    [databases],
  );
  const out: { database: string; table: string; rows: number }[] = [];
  for (const { db, t } of tables as { db: string; t: string }[]) {
    const [r] = await conn.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${ident(db)}.${ident(t)}`);
    out.push({ database: db, table: t, rows: Number(r[0].n) });
  }
  return out;
}

const FORMAT_DESCRIPTION = /^#(\d{2})(\d{2})(\d{2}) +(\d{1,2}):(\d{2}):(\d{2}) server id \d+ .*\tStart: binlog/m;

/**
 * When the server created a binary log (its Format_description event, the first in the file), as
 * `20250101T030000Z`: with the log's name, what tells two logs apart after RESET MASTER restarts the
 * numbering. Read over the replication protocol, only the first event (`--stop-position=5`).
 */
export async function binlogCreatedAt(engine: 'mariadb' | 'mysql', defaultsFile: string, log: string): Promise<string> {
  const bin = engine === 'mariadb' ? 'mariadb-binlog' : 'mysqlbinlog';
  const child = spawn(
    bin,
    [`--defaults-extra-file=${defaultsFile}`, '--read-from-remote-server', '--stop-position=5', log],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TZ: 'UTC' } },
  );
  const out = collect(child.stdout);
  const err = collect(child.stderr);
  const { code } = await exitOf(child, bin);
  const m = FORMAT_DESCRIPTION.exec(out());
  if (code !== 0 || !m)
    throw failure(ErrorType.DumpFailed, `${bin} could not read when ${log} was created (exit ${code}): ${err()}`);
  return `20${m[1]}${m[2]}${m[3]}T${m[4].padStart(2, '0')}${m[5]}${m[6]}Z`;
}

export function createDumpActivities(stores: BackupStores, pools: MysqlPools, options: DumpOptions = {}) {
  const level = options.zstdLevel ?? 1;
  const threads = options.zstdThreads ?? 0;
  const live = createTopologyDiscoveryActivities((name) => stores.service(name), pools);

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
      const svc = stores.service(service);
      if (!svc.database)
        throw failure(ErrorType.NotConfigured, `service ${service} has no database to dump`, { service });
      const { server, topology } = await live.backupSource(service, {
        named: source,
        preferReplica: svc.backup.source === 'replica',
      });
      const engine = svc.database.engine;
      const databases = svc.backup.databases;
      const targets: BackupStore[] = stores
        .forService(service)
        .filter((s) => !destinations || destinations.includes(s.name));
      if (targets.length === 0) throw failure(ErrorType.NotConfigured, `service ${service} has no backup destination`);

      const ctx = activityContext();
      const startedAt = new Date().toISOString();
      const bin = engine === 'mariadb' ? 'mariadb-dump' : 'mysqldump';
      const args =
        engine === 'mariadb'
          ? ['--single-transaction', '--master-data=2', '--gtid']
          : ['--single-transaction', '--source-data=2', '--set-gtid-purged=AUTO'];
      args.push('--routines', '--events', '--triggers', '--databases', ...databases);
      await checkObjectLocks(targets);
      await refuseExistingBackup(targets, service, backupId, 'logical');
      const attempt = newAttempt(ctx?.info.attempt ?? 1, randomBytes(4).toString('hex'));
      const key = dumpKey(service, backupId, attempt);

      const target = pools.target(server);
      const defaults = await writeClientDefaults(target);
      let conn: PoolConnection | undefined;
      const abort = new AbortController();
      const writers: { store: BackupStore; writer: BackupWriter }[] = [];
      const children: ChildProcess[] = [];
      let heartbeat: NodeJS.Timeout | undefined;
      let sideCopy: Socket | undefined;
      const onCancel = () => abort.abort(new Error('cancelled'));
      ctx?.cancellationSignal.addEventListener('abort', onCancel);
      try {
        conn = await pools
          .pool(server)
          .getConnection()
          .catch((err: unknown) => {
            throw mysqlFailure(server, err);
          });
        const [ver] = await conn.query<RowDataPacket[]>('SELECT VERSION() AS v, @@read_only AS ro');
        const version = String(ver[0].v);
        // Read again on the dump's own session: a writer fenced since discovery is stale from here on.
        if (server === topology.writable && Number(ver[0].ro) === 1)
          throw failure(
            ErrorType.SourceNotWritable,
            `${server} was fenced (read_only=ON) after it was read as ${service}'s writable member: not dumping it`,
            { service, source: server },
          );
        const snapshot = await openCountingSnapshot(conn, engine);

        for (const store of targets) {
          writers.push({
            store,
            writer: store.openWriter(key, (err) => abort.abort(err)),
          });
        }

        // mariadb-dump | tee | zstd run as one pipeline in the kernel: the worker reads only zstd's output
        // (to hash it and write it out) and the dump's head from tee's side copy, never the dump itself
        // (passing it through was a third of the worker's CPU per GB; docs/benchmarks.md).
        const side = await openSideCopy(defaults.dir);
        sideCopy = side.stream;
        const dump = spawn(bin, [`--defaults-extra-file=${defaults.file}`, ...args], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        const tee = spawn('tee', ['-p', side.path], { stdio: [dump.stdout, 'pipe', 'pipe'] });
        dump.stdout.destroy(); // tee holds the read end now; a dead tee must mean EPIPE for the dump, not a hang
        const zstd = spawn('zstd', ['-vv', `-${level}`, `-T${threads}`, '-c'], {
          stdio: [tee.stdout, 'pipe', 'pipe'],
        });
        tee.stdout?.destroy();
        children.push(dump, tee, zstd);
        const teeStderr = collect(tee.stderr);
        const teeExit = exitOf(tee, 'tee');
        const dumpStderr = collect(dump.stderr);
        const zstdStderr = collect(zstd.stderr);
        const dumpExit = exitOf(dump, bin);
        const zstdExit = exitOf(zstd, 'zstd');
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
        const fanOut = new FanOut(writers.map((w) => w.writer.stream));
        abort.signal.addEventListener('abort', () => {
          for (const c of children) c.kill('SIGKILL');
        });
        heartbeat = setInterval(() => ctx?.heartbeat({ phase: 'dumping', writtenBytes: digest.bytes }), HEARTBEAT_MS);

        const streamed = Promise.all([
          pipeline(zstd.stdout, digest, fanOut, { signal: abort.signal }),
          dumpExit,
          zstdExit,
          teeExit,
        ]);
        streamed.catch(() => undefined); // awaited below; an early failure must not go unhandled meanwhile

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

        const [, dumped, compressed, teed] = await streamed;
        if (dumped.code !== 0) throw dumpFailure(bin, server, dumped.code, dumpStderr());
        if (teed.code !== 0) throw failure(ErrorType.DumpFailed, `tee exited ${teed.code}: ${teeStderr()}`, { server });
        if (compressed.code !== 0)
          throw failure(ErrorType.DumpFailed, `zstd exited ${compressed.code}: ${zstdStderr()}`, { server });
        if (abort.signal.aborted) throw abort.signal.reason;
        const sizes = ZSTD_SIZES.exec(zstdStderr());
        if (!sizes || Number(sizes[2]) !== digest.bytes)
          throw failure(
            ErrorType.DumpFailed,
            `zstd's byte counts (${sizes ? `${sizes[2]} B out` : 'not reported'}) do not match the ${digest.bytes} B received`,
            { server },
          );
        const uncompressedSize = Number(sizes[1]);

        const sha256 = digest.hex();
        const binlogFile = head.binlogFile ?? snapshot.binlogFile;
        // Which log that is even after RESET MASTER restarts the numbering: the binlog archive keys logs by
        // name and creation time, and point-in-time recovery starts from exactly this one.
        const binlogCreated =
          svc.backup.binlogArchive && binlogFile
            ? await binlogCreatedAt(engine, defaults.file, binlogFile).catch(() => null)
            : null;
        // Two phases: a file copy becomes visible only once every destination has all the bytes.
        const versions = await Promise.all(writers.map((w) => w.writer.finish()));
        const locations = await Promise.all(writers.map((w) => w.writer.publish()));
        // The .sha256 file follows its object: `sha256sum -c dump.sql.zst.sha256` works from any copy.
        await Promise.all(
          targets.map((s) => s.put(checksumKey(service, backupId, 'logical', attempt), checksumLine(sha256))),
        );

        const exact = sameRows && (engine === 'mariadb' || snapshot.locked);
        return {
          service,
          backupId,
          server,
          engine,
          version,
          startedAt,
          endedAt: new Date().toISOString(),
          position: {
            gtid: gtid ?? snapshot.gtid,
            binlogFile,
            binlogPos: head.binlogPos ?? snapshot.binlogPos,
            ...(binlogCreated ? { binlogCreatedAt: binlogCreated } : {}),
          },
          databases,
          tables,
          rowCounts: {
            exact,
            method: exact
              ? snapshot.binlogPos === head.binlogPos
                ? `COUNT(*) in a snapshot at the dump's binlog position ${head.binlogFile}:${head.binlogPos}`
                : `COUNT(*) in a snapshot at ${snapshot.binlogFile}:${snapshot.binlogPos}; the dump's is at ${head.binlogPos}, and no binlog event between them changes ${databases.join(', ')}`
              : `COUNT(*) in a snapshot at ${snapshot.binlogFile}:${snapshot.binlogPos}, the dump is at ${head.binlogFile}:${head.binlogPos}${engine === 'mysql' && !snapshot.locked ? ' (no RELOAD privilege for FLUSH TABLES WITH READ LOCK)' : ` (the dumped tables changed in between, or the binlog could not be read)`}`,
          },
          object: { key, size: digest.bytes, sha256, compression: 'zstd', uncompressedSize },
          copies: writtenCopies(targets, locations, versions),
          tools: { [bin]: await toolVersion(bin), zstd: await toolVersion('zstd'), server: version },
        };
      } catch (err) {
        const reason = abort.signal.aborted && abort.signal.reason instanceof Error ? abort.signal.reason : err;
        abort.abort(reason);
        await Promise.all(writers.map((w) => w.writer.abort()));
        throw reason;
      } finally {
        clearInterval(heartbeat);
        sideCopy?.destroy();
        ctx?.cancellationSignal.removeEventListener('abort', onCancel);
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
        // Destroyed, not released: the session may hold the read lock or changed settings.
        conn?.destroy();
        await rm(defaults.dir, { recursive: true, force: true });
      }
    },
  };
}

export type DumpActivities = ReturnType<typeof createDumpActivities>;
