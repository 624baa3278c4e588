/**
 * Point-in-time recovery onto a restored dump: the archived binary logs replayed from the dump's
 * own position up to a chosen point.
 *
 *   archived logs (SHA-256 checked) ─▶ mariadb-binlog --start-position=<dump GTID>
 *       [--stop-position=<GTID> | --stop-datetime=<UTC>] --database=<db> --rewrite-db=<db>-><scratch>
 *   ─▶ mariadb --binary-mode (sql_log_bin = 0) on the scratch server
 *
 * The start GTID is exclusive (the dump already holds it), a stop GTID inclusive, a stop time
 * exclusive (events stamped at or after it are not applied; binlog times have whole seconds).
 * --database keeps other databases' changes (the heartbeat, other services) out of the scratch
 * server; --rewrite-db puts the rest into the scratch database. Rows are logged ROW-based on the
 * stack, so the rewrite holds for every change; statement-logged changes that name another
 * database explicitly are not rewritten (the same limit as the dump's cross-database references).
 * A backup of several databases is replayed one database after the other.
 *
 * Not safe to repeat on the same scratch databases (rows would be applied twice): the workflow
 * runs it once, right after a fresh restore, and a failure fails the check.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { ErrorType, type BackupDestinationName } from '../../contract';
import { failure } from '../errors';
import { privateWorkDir } from '../workdirs';
import type { MysqlPools } from '../mysql';
import type { ScratchIsolation } from '../mysql/scratch-isolation';
import { activityContext, collect, exitOf, loaderOptions, writeClientDefaults } from '../mysql/dump';
import { CLONEABLE_DATABASE } from '../mysql/topology';
import type { BackupStores } from '../storage/destinations';
import { binlogRoot } from '../storage/layout';
import { sessionPrelude } from './load';

const HEARTBEAT_MS = 1000;
const LOG_NAME = /^(.+)\.(\d+)$/;
/** An archived log: `binlog.000042@20250101T030000Z` (its name and creation time), or `binlog.000042` (before that). */
const ARCHIVED_LOG = /^(.+)\.(\d+)(?:@(\d{8}T\d{6}Z))?$/;

interface ArchivedLog {
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

export interface PointInTimeTarget {
  /** ISO time: the state just before it. */
  time?: string;
  /** A GTID (domain-server-seq): the state right after that transaction. */
  gtid?: string;
}

export interface ReplayedToPoint {
  /** Archived logs read (oldest first), and their bytes. */
  logs: string[];
  bytes: number;
  /** Transactions in the replayed range (every database; changes outside the backup's are skipped). */
  transactions: number;
  firstGtid: string | null;
  lastGtid: string | null;
  /** The newest replayed transaction's binlog time. */
  lastEventAt: string | null;
  /** When the newest archived log was closed: the latest point this archive can reach. */
  archiveEndsAt: string | null;
  target: { kind: 'gtid' | 'time' | 'end'; value: string | null };
  /** The replay stopped at the point asked for (not short of it because the archive ends earlier). */
  reached: boolean;
  detail: string;
  seconds: number;
}

/** Scans mariadb-binlog's text output for event headers on its way to the client. */
class EventScanner extends Transform {
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

const seqOf = (gtid: string) => Number(gtid.split('-')[2]);
const domainOf = (gtid: string) => gtid.split('-')[0];
/** `2025-01-01 03:00:00` in UTC, as mariadb-binlog reads --stop-datetime (run with TZ=UTC). */
const binlogTime = (iso: string) => new Date(iso).toISOString().slice(0, 19).replace('T', ' ');

function spawnBinlog(args: string[]): ChildProcess {
  return spawn('mariadb-binlog', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TZ: 'UTC' } });
}

export function createPointInTimeActivities(stores: BackupStores, pools: MysqlPools, isolation: ScratchIsolation) {
  return {
    /**
     * Replay the service's archived binlogs onto scratch databases restored from a dump, from the
     * dump's position up to `to` (default: the end of the archive). Fails with PitrArchiveGap when
     * the archive does not hold every log from the dump's onwards, BackupCorrupt when a log's SHA-256
     * differs from its `.sha256`, RestoreFailed when mariadb-binlog or the client fails.
     */
    async replayBinlogsToPoint({
      service,
      destination,
      sourceServer,
      server,
      databases,
      from,
      to = {},
    }: {
      service: string;
      destination: BackupDestinationName;
      /** The server the dump (and the archived logs) came from. */
      sourceServer: string;
      /** The scratch server holding the restored dump. */
      server: string;
      databases: { source: string; scratch: string }[];
      from: {
        gtid: string | null;
        binlogFile: string | null;
        binlogPos: number | null;
        binlogCreatedAt?: string | null;
      };
      to?: PointInTimeTarget;
    }): Promise<ReplayedToPoint> {
      const started = performance.now();
      if (to.time && to.gtid) throw failure(ErrorType.InvalidInput, 'pointInTime: give a time or a GTID, not both');
      if (!databases.every((d) => /^restore_[a-z0-9_]{1,56}$/.test(d.scratch)))
        throw failure(
          ErrorType.InvalidInput,
          `not scratch database names: ${databases.map((d) => d.scratch).join(', ')}`,
        );
      // Names from the manifest reach mariadb-binlog's --database and --rewrite-db (`from->to`): only plain
      // identifiers, the re-clone's rule, so none reads as an option or rewrites into another database.
      const hostile = databases.filter((d) => !CLONEABLE_DATABASE.test(d.source)).map((d) => JSON.stringify(d.source));
      if (hostile.length)
        throw failure(
          ErrorType.InvalidInput,
          `refusing to replay binlogs for database name(s) ${hostile.join(', ')}: not plain identifiers`,
          { service },
        );
      const startLog = from.binlogFile ? LOG_NAME.exec(from.binlogFile) : null;
      if (!startLog || (!from.gtid && from.binlogPos === null))
        throw failure(
          ErrorType.PitrArchiveGap,
          `the backup records no binlog position (file ${from.binlogFile ?? 'none'}): nothing to replay from`,
        );
      // Events applied to a production member would be changes nobody made there: read the server first.
      await isolation.requireScratch(server, 'replaying binlogs into it');
      const store = stores.store(service, destination);
      const root = binlogRoot(service, sourceServer);

      // 1. The archived logs from the dump's onwards, with no gap.
      const listed = await store.list(root);
      const archived = chainFrom(
        listed.map((o) => o.key.slice(root.length)),
        { file: from.binlogFile!, createdAt: from.binlogCreatedAt ?? null },
        (why) => failure(ErrorType.PitrArchiveGap, `${store.location(root)} ${why}`, { service }),
      );

      const ctx = activityContext();
      const work = await privateWorkDir('pitr');
      const defaults = await writeClientDefaults(pools.target(server));
      const children: ChildProcess[] = [];
      const killAll = () => {
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      };
      ctx?.cancellationSignal.addEventListener('abort', killAll);
      let phase = 'fetching logs';
      let scanner: EventScanner | null = null;
      const heartbeat = setInterval(
        () => ctx?.heartbeat({ phase, binlogText: scanner?.bytes ?? 0, transactions: scanner?.transactions ?? 0 }),
        HEARTBEAT_MS,
      );
      try {
        // 2. Fetch each log, checking it against its .sha256 on the way.
        let bytes = 0;
        const files: string[] = [];
        for (const log of archived) {
          const key = `${root}${log.name}`;
          const expected = (await store.get(`${key}.sha256`))?.split(/\s+/)[0];
          const hash = createHash('sha256');
          const file = path.join(work, log.name);
          await pipeline(
            await store.read(key),
            new Transform({
              transform(chunk: Buffer, _e, cb) {
                hash.update(chunk);
                bytes += chunk.length;
                cb(null, chunk);
              },
            }),
            createWriteStream(file, { mode: 0o600 }),
          );
          const actual = hash.digest('hex');
          if (actual !== expected)
            throw ApplicationFailure.create({
              type: ErrorType.BackupCorrupt,
              message: `${store.location(key)}: SHA-256 ${actual}, its .sha256 says ${expected ?? '(missing)'}`,
              nonRetryable: true,
            });
          files.push(file);
        }

        // 3. Where the archive ends: the newest log's last event is the Rotate its closing flush wrote.
        phase = 'reading the archive end';
        const end = new EventScanner();
        const endChild = spawnBinlog([files[files.length - 1]]);
        children.push(endChild);
        const endErr = collect(endChild.stderr);
        const [, endExit] = await Promise.all([
          pipeline(endChild.stdout!, end, new Writable({ write: (_c, _e, cb) => cb() })),
          exitOf(endChild, 'mariadb-binlog'),
        ]);
        if (endExit.code !== 0)
          throw failure(
            ErrorType.RestoreFailed,
            `mariadb-binlog ${archived[archived.length - 1].name} exited ${endExit.code}: ${endErr()}`,
          );
        const archiveEndsAt = end.lastEventAt;

        // 4. Replay, one database at a time.
        const range = [
          from.gtid ? `--start-position=${from.gtid}` : `--start-position=${from.binlogPos}`,
          ...(to.gtid ? [`--stop-position=${to.gtid}`] : []),
          ...(to.time ? [`--stop-datetime=${binlogTime(to.time)}`] : []),
        ];
        let first: EventScanner | null = null;
        // Binlogs from the archive are input drbook did not write: no client command in them runs.
        const clientOptions = await loaderOptions();
        for (const db of databases) {
          phase = `replaying into ${db.scratch}`;
          scanner = new EventScanner();
          first ??= scanner;
          const binlog = spawnBinlog([
            ...range,
            `--database=${db.source}`,
            `--rewrite-db=${db.source}->${db.scratch}`,
            ...files,
          ]);
          const client = spawn(
            'mariadb',
            [`--defaults-extra-file=${defaults.file}`, ...clientOptions, '--batch', '--max-allowed-packet=1G'],
            { stdio: ['pipe', 'ignore', 'pipe'] },
          );
          children.push(binlog, client);
          const binlogErr = collect(binlog.stderr);
          const clientErr = collect(client.stderr);
          client.stdin.on('error', () => undefined); // the client's exit code says why
          client.stdin.write(sessionPrelude());
          const results = await Promise.allSettled([
            pipeline(binlog.stdout!, scanner, client.stdin),
            exitOf(binlog, 'mariadb-binlog'),
            exitOf(client, 'mariadb'),
          ]);
          if (ctx?.cancellationSignal.aborted) throw new CancelledFailure('replay cancelled');
          const [, b, c] = results;
          if (b.status === 'rejected') throw b.reason;
          if (c.status === 'rejected') throw c.reason;
          if (b.value.code !== 0)
            throw failure(ErrorType.RestoreFailed, `mariadb-binlog exited ${b.value.code}: ${binlogErr()}`);
          if (c.value.code !== 0)
            throw failure(
              ErrorType.RestoreFailed,
              `replaying into ${db.scratch} on ${server}: mariadb exited ${c.value.code}: ${clientErr()}`,
            );
          if (results[0].status === 'rejected') throw results[0].reason;
        }

        // 5. Did it get where it was asked to go?
        const s = first!;
        let reached = true;
        let detail: string;
        if (to.gtid) {
          reached =
            s.lastGtid !== null && domainOf(s.lastGtid) === domainOf(to.gtid) && seqOf(s.lastGtid) === seqOf(to.gtid);
          detail = reached
            ? `replayed through ${to.gtid} (${s.lastGtidAt})`
            : `${to.gtid} is not in the archive after the backup's ${from.gtid ?? from.binlogFile}: the replay ended at ${s.lastGtid ?? 'nothing'}`;
        } else if (to.time) {
          reached = archiveEndsAt !== null && Date.parse(archiveEndsAt) >= Date.parse(to.time);
          detail = reached
            ? `replayed everything before ${binlogTime(to.time)} UTC: last transaction ${s.lastGtid ?? 'none'} at ${s.lastGtidAt ?? '-'}`
            : `the archive ends at ${archiveEndsAt ?? '?'}, before ${to.time} (archive binlogs more often)`;
        } else {
          detail = `replayed to the end of the archive (${archiveEndsAt ?? '?'}): last transaction ${s.lastGtid ?? 'none'}`;
        }
        return {
          logs: archived.map((l) => l.name),
          bytes,
          transactions: s.transactions,
          firstGtid: s.firstGtid,
          lastGtid: s.lastGtid,
          lastEventAt: s.lastGtidAt,
          archiveEndsAt,
          target: to.gtid
            ? { kind: 'gtid', value: to.gtid }
            : to.time
              ? { kind: 'time', value: to.time }
              : { kind: 'end', value: null },
          reached,
          detail,
          seconds: (performance.now() - started) / 1000,
        };
      } catch (err) {
        killAll();
        if (ctx?.cancellationSignal.aborted) throw new CancelledFailure('replay cancelled');
        throw err;
      } finally {
        clearInterval(heartbeat);
        ctx?.cancellationSignal.removeEventListener('abort', killAll);
        killAll();
        await rm(work, { recursive: true, force: true });
        await rm(defaults.dir, { recursive: true, force: true });
      }
    },
  };
}

export type PointInTimeActivities = ReturnType<typeof createPointInTimeActivities>;
