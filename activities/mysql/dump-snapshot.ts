/**
 * What the logical dump knows about where it stands in the binlog: the dump's own position (read from the head of
 * its output), the counting snapshot opened beside it, and whether the two hold the same rows (see dump.ts).
 */
import { spawn } from 'node:child_process';
import { constants as fsConstants, openSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { Socket } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import type { PoolConnection, RowDataPacket } from 'mysql2/promise';
import { ErrorType } from '../../contract';
import { failure } from '../errors';
import { collect, exitOf } from '../process/child';
import { quoteIdentifier } from '../process/quote';

const execFileAsync = promisify(execFile);

const POSITION = /(?:MASTER|SOURCE)_LOG_FILE='([^']+)',\s*(?:MASTER|SOURCE)_LOG_POS=(\d+)/;
const GTID = /(?:gtid_slave_pos|GTID_PURGED)\s*=\s*'([^']*)'/i;

/**
 * Reads the head of the dump (tee's side copy) for its binlog position and, on MySQL, its GTID
 * set. Once the position is seen the dump has its snapshot, and the side copy is closed: tee
 * (`-p`) then feeds zstd alone, so the worker never handles the dump's own bytes.
 */
export class HeadReader {
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
export async function openSideCopy(dir: string): Promise<{ path: string; stream: Socket }> {
  const fifo = path.join(dir, 'head');
  await execFileAsync('mkfifo', ['-m', '0600', fifo]);
  const fd = openSync(fifo, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
  return { path: fifo, stream: new Socket({ fd, readable: true, writable: false }) };
}

/** The dump tool's exit, as a failure an operator and a retry policy can act on. */
export function dumpFailure(bin: string, server: string, code: number | null, stderr: string): Error {
  const message = `${bin} on ${server} exited ${code}: ${stderr || '(no output)'}`;
  if (/\b1045\b|Access denied/i.test(stderr)) return failure(ErrorType.DatabaseAuthFailed, message, { server });
  if (/\b1049\b|Unknown database/i.test(stderr)) return failure(ErrorType.ResourceNotFound, message, { server });
  return failure(ErrorType.DumpFailed, message, { server });
}

export interface SnapshotPosition {
  locked: boolean;
  binlogFile: string | null;
  binlogPos: number | null;
  gtid: string | null;
}

/**
 * Opens the counting snapshot before the dump starts. MariaDB: no lock (the snapshot's binlog position is
 * compared with the dump's afterwards). MySQL: FTWRL holds commits back until the dump has its own snapshot.
 */
export async function openCountingSnapshot(
  conn: PoolConnection,
  engine: 'mariadb' | 'mysql',
): Promise<SnapshotPosition> {
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
export async function gtidAt(
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
export async function noChangeBetween(
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

export async function countRows(conn: PoolConnection, databases: string[]) {
  const [tables] = await conn.query<RowDataPacket[]>(
    'SELECT TABLE_SCHEMA AS db, TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA IN (?) AND ' +
      "TABLE_TYPE = 'BASE TABLE' ORDER BY 1, 2",
    [databases],
  );
  const out: { database: string; table: string; rows: number }[] = [];
  for (const { db, t } of tables as { db: string; t: string }[]) {
    const [r] = await conn.query<RowDataPacket[]>(
      `SELECT COUNT(*) AS n FROM ${quoteIdentifier(db)}.${quoteIdentifier(t)}`,
    );
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
