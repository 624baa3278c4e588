/**
 * The archived binary logs a point-in-time replay reads (pitr.ts): which ones, in order, from the dump's own log;
 * and what mariadb-binlog's text says about the events it passes on (transactions, GTIDs, times).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Transform, type TransformCallback } from 'node:stream';

export const LOG_NAME = /^(.+)\.(\d+)$/;
/** An archived log: `binlog.000042@20250101T030000Z` (its name and creation time), or `binlog.000042` (before that). */
const ARCHIVED_LOG = /^(.+)\.(\d+)(?:@(\d{8}T\d{6}Z))?$/;

export interface ArchivedLog {
  /** The archived file's name. */
  name: string;
  base: string;
  index: number;
  createdAt: string | null;
}

/**
 * The archived logs to replay, oldest first: the dump's own log and every later one of the same numbering.
 * Logs are told apart by when the server created them (`<log>@<created>`), so after RESET MASTER (numbering
 * starts again at .000001) the old and the new `binlog.000001` are two logs, and a chain never crosses from
 * one numbering into the next: ordered by creation, a generation ends where the numbers go down. Backups from
 * before creation times were recorded name their log without one and read the name-only keys they had.
 */
export function chainFrom(
  names: string[],
  start: { file: string; createdAt: string | null },
  gap: (why: string) => Error,
): ArchivedLog[] {
  const present = new Set(names);
  const logs = names
    .filter((n) => present.has(`${n}.sha256`))
    .map((n) => ({ n, m: ARCHIVED_LOG.exec(n) }))
    .filter((x) => x.m)
    .map(({ n, m }) => ({ name: n, base: m![1], index: Number(m![2]), createdAt: m![3] ?? null }));
  const startLog = LOG_NAME.exec(start.file);
  if (!startLog) throw gap(`cannot hold ${start.file}: not a binlog file name`);
  const base = startLog[1];
  if (start.createdAt === null) {
    // Before creation times: one numbering, by name.
    const chain = logs
      .filter((l) => l.createdAt === null && l.base === base && l.index >= Number(startLog[2]))
      .sort((a, b) => a.index - b.index);
    if (chain[0]?.name !== start.file)
      throw gap(`does not hold ${start.file}, where the backup's position is (archive binlogs before the backup runs)`);
    for (let i = 1; i < chain.length; i++)
      if (chain[i].index !== chain[i - 1].index + 1)
        throw gap(`lacks the logs between ${chain[i - 1].name} and ${chain[i].name}`);
    return chain;
  }
  const wanted = `${start.file}@${start.createdAt}`;
  const dated = logs
    .filter((l) => l.createdAt !== null && l.base === base)
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.index - b.index);
  const at = dated.findIndex((l) => l.name === wanted);
  if (at < 0)
    throw gap(`does not hold ${wanted}, where the backup's position is (archive binlogs before the backup runs)`);
  const chain = [dated[at]];
  for (const l of dated.slice(at + 1)) {
    const last = chain[chain.length - 1];
    if (l.index <= last.index) break; // numbering started again (RESET MASTER): another history
    if (l.index !== last.index + 1) throw gap(`lacks the logs between ${last.name} and ${l.name}`);
    chain.push(l);
  }
  return chain;
}
/** `#261126 10:09:34 server id 1  end_log_pos 2016 CRC32 0x98c25823 	GTID 0-1-341 trans` (times in TZ=UTC). */
const EVENT_HEADER = /^#(\d{2})(\d{2})(\d{2}) +(\d{1,2}):(\d{2}):(\d{2}) server id \d+ /;
const GTID_EVENT = /\tGTID (\d+-\d+-\d+)/;

/** Scans mariadb-binlog's text output for event headers on its way to the client. */
export class EventScanner extends Transform {
  transactions = 0;
  firstGtid: string | null = null;
  lastGtid: string | null = null;
  lastGtidAt: string | null = null;
  lastEventAt: string | null = null;
  bytes = 0;
  private partial = '';

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    const text = this.partial + chunk.toString('latin1');
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    if (this.partial.length > 4096) this.partial = ''; // a base64 row image, not a header
    for (const line of lines) if (line.startsWith('#')) this.header(line);
    cb(null, chunk);
  }

  private header(line: string): void {
    const h = EVENT_HEADER.exec(line);
    if (!h) return;
    const at = `20${h[1]}-${h[2]}-${h[3]}T${h[4].padStart(2, '0')}:${h[5]}:${h[6]}Z`;
    this.lastEventAt = at;
    const g = GTID_EVENT.exec(line);
    if (g) {
      this.transactions++;
      this.firstGtid ??= g[1];
      this.lastGtid = g[1];
      this.lastGtidAt = at;
    }
  }
}

export const seqOf = (gtid: string) => Number(gtid.split('-')[2]);
export const domainOf = (gtid: string) => gtid.split('-')[0];
/** `2025-01-01 03:00:00` in UTC, as mariadb-binlog reads --stop-datetime (run with TZ=UTC). */
export const binlogTime = (iso: string) => new Date(iso).toISOString().slice(0, 19).replace('T', ' ');

export function spawnBinlog(args: string[]): ChildProcess {
  return spawn('mariadb-binlog', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TZ: 'UTC' } });
}
