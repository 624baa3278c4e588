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
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { ErrorType, type BackupDestinationName } from '../../contract';
import { failure } from '../errors';
import { privateWorkDir } from '../workdirs';
import type { MysqlPools } from '../mysql';
import type { ScratchIsolation } from '../mysql/scratch-isolation';
import { CLONEABLE_DATABASE } from '../mysql/reclone';
import { collect, exitOf, killAll } from '../process/child';
import { writeClientDefaults } from '../process/defaults-file';
import { activityContext, heartbeatEvery } from '../process/heartbeat';
import { loaderOptions } from '../process/mysql-client';
import { Digest } from '../process/streams';
import type { BackupStore, BackupStores } from '../storage/destinations';
import { binlogRoot } from '../storage/layout';
import {
  binlogTime,
  chainFrom,
  domainOf,
  EventScanner,
  LOG_NAME,
  seqOf,
  spawnBinlog,
  type ArchivedLog,
} from './binlog-chain';
import { sessionPrelude } from './load';
import { SCRATCH_DATABASE } from './scratch';

const HEARTBEAT_MS = 1000;

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

type ReplayFrom = { gtid: string | null; binlogFile: string | null; binlogPos: number | null };

/** A request that cannot be replayed is refused before anything is read or written. */
function checkRequest(
  service: string,
  databases: { source: string; scratch: string }[],
  from: ReplayFrom,
  to: PointInTimeTarget,
): void {
  if (to.time && to.gtid) throw failure(ErrorType.InvalidInput, 'pointInTime: give a time or a GTID, not both');
  if (!databases.every((d) => SCRATCH_DATABASE.test(d.scratch)))
    throw failure(ErrorType.InvalidInput, `not scratch database names: ${databases.map((d) => d.scratch).join(', ')}`);
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
}

/** 2. Fetch each log into `work`, checking it against its .sha256 on the way. */
async function fetchLogs(store: BackupStore, root: string, archived: ArchivedLog[], work: string) {
  let bytes = 0;
  const files: string[] = [];
  for (const log of archived) {
    const key = `${root}${log.name}`;
    const expected = (await store.get(`${key}.sha256`))?.split(/\s+/)[0];
    const digest = new Digest();
    const file = path.join(work, log.name);
    await pipeline(await store.read(key), digest, createWriteStream(file, { mode: 0o600 }));
    bytes += digest.bytes;
    const actual = digest.hex();
    if (actual !== expected)
      throw ApplicationFailure.create({
        type: ErrorType.BackupCorrupt,
        message: `${store.location(key)}: SHA-256 ${actual}, its .sha256 says ${expected ?? '(missing)'}`,
        nonRetryable: true,
      });
    files.push(file);
  }
  return { files, bytes };
}

/** 3. Where the archive ends: the newest log's last event is the Rotate its closing flush wrote. */
async function archiveEnd(file: string, name: string, children: ChildProcess[]): Promise<string | null> {
  const end = new EventScanner();
  const endChild = spawnBinlog([file]);
  children.push(endChild);
  const endErr = collect(endChild.stderr);
  const [, endExit] = await Promise.all([
    pipeline(endChild.stdout!, end, new Writable({ write: (_c, _e, cb) => cb() })),
    exitOf(endChild, 'mariadb-binlog', ErrorType.RestoreFailed),
  ]);
  if (endExit.code !== 0)
    throw failure(ErrorType.RestoreFailed, `mariadb-binlog ${name} exited ${endExit.code}: ${endErr()}`);
  return end.lastEventAt;
}

/** 4. One database's events, `mariadb-binlog <range> --rewrite-db | mariadb` into its scratch database. */
async function replayInto(
  db: { source: string; scratch: string },
  server: string,
  run: { range: string[]; files: string[]; defaultsFile: string; clientOptions: string[]; children: ChildProcess[] },
  scanner: EventScanner,
  cancelled: () => boolean,
): Promise<void> {
  const binlog = spawnBinlog([
    ...run.range,
    `--database=${db.source}`,
    `--rewrite-db=${db.source}->${db.scratch}`,
    ...run.files,
  ]);
  const client = spawn(
    'mariadb',
    [`--defaults-extra-file=${run.defaultsFile}`, ...run.clientOptions, '--batch', '--max-allowed-packet=1G'],
    { stdio: ['pipe', 'ignore', 'pipe'] },
  );
  run.children.push(binlog, client);
  const binlogErr = collect(binlog.stderr);
  const clientErr = collect(client.stderr);
  client.stdin.on('error', () => undefined); // the client's exit code says why
  client.stdin.write(sessionPrelude());
  const results = await Promise.allSettled([
    pipeline(binlog.stdout!, scanner, client.stdin),
    exitOf(binlog, 'mariadb-binlog', ErrorType.RestoreFailed),
    exitOf(client, 'mariadb', ErrorType.RestoreFailed),
  ]);
  if (cancelled()) throw new CancelledFailure('replay cancelled');
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

/** 5. Did it get where it was asked to go? */
function outcome(s: EventScanner, from: ReplayFrom, to: PointInTimeTarget, archiveEndsAt: string | null) {
  if (to.gtid) {
    const reached =
      s.lastGtid !== null && domainOf(s.lastGtid) === domainOf(to.gtid) && seqOf(s.lastGtid) === seqOf(to.gtid);
    return {
      reached,
      detail: reached
        ? `replayed through ${to.gtid} (${s.lastGtidAt})`
        : `${to.gtid} is not in the archive after the backup's ${from.gtid ?? from.binlogFile}: the replay ` +
          `ended at ${s.lastGtid ?? 'nothing'}`,
    };
  }
  if (to.time) {
    const reached = archiveEndsAt !== null && Date.parse(archiveEndsAt) >= Date.parse(to.time);
    return {
      reached,
      detail: reached
        ? `replayed everything before ${binlogTime(to.time)} UTC: last transaction ${s.lastGtid ?? 'none'} ` +
          `at ${s.lastGtidAt ?? '-'}`
        : `the archive ends at ${archiveEndsAt ?? '?'}, before ${to.time} (archive binlogs more often)`,
    };
  }
  return {
    reached: true,
    detail: `replayed to the end of the archive (${archiveEndsAt ?? '?'}): last transaction ${s.lastGtid ?? 'none'}`,
  };
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
      from: ReplayFrom & { binlogCreatedAt?: string | null };
      to?: PointInTimeTarget;
    }): Promise<ReplayedToPoint> {
      const started = performance.now();
      checkRequest(service, databases, from, to);
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
      const cancelled = () => ctx?.cancellationSignal.aborted ?? false;
      const work = await privateWorkDir('pitr');
      const defaults = await writeClientDefaults(pools.target(server));
      const children: ChildProcess[] = [];
      const stopChildren = () => killAll(children);
      ctx?.cancellationSignal.addEventListener('abort', stopChildren);
      let phase = 'fetching logs';
      let scanner: EventScanner | null = null;
      const stopBeat = heartbeatEvery(
        () => ({ phase, binlogText: scanner?.bytes ?? 0, transactions: scanner?.transactions ?? 0 }),
        HEARTBEAT_MS,
      );
      try {
        const { files, bytes } = await fetchLogs(store, root, archived, work);
        phase = 'reading the archive end';
        const archiveEndsAt = await archiveEnd(files[files.length - 1], archived[archived.length - 1].name, children);

        // 4. Replay, one database at a time.
        const range = [
          from.gtid ? `--start-position=${from.gtid}` : `--start-position=${from.binlogPos}`,
          ...(to.gtid ? [`--stop-position=${to.gtid}`] : []),
          ...(to.time ? [`--stop-datetime=${binlogTime(to.time)}`] : []),
        ];
        // Binlogs from the archive are input drbook did not write: no client command in them runs.
        const run = { range, files, defaultsFile: defaults.file, clientOptions: await loaderOptions(), children };
        let first: EventScanner | null = null;
        for (const db of databases) {
          phase = `replaying into ${db.scratch}`;
          scanner = new EventScanner();
          first ??= scanner;
          await replayInto(db, server, run, scanner, cancelled);
        }
        const s = first!;
        const { reached, detail } = outcome(s, from, to, archiveEndsAt);
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
        killAll(children);
        if (cancelled()) throw new CancelledFailure('replay cancelled');
        throw err;
      } finally {
        stopBeat();
        ctx?.cancellationSignal.removeEventListener('abort', stopChildren);
        killAll(children);
        await rm(work, { recursive: true, force: true });
        await rm(defaults.dir, { recursive: true, force: true });
      }
    },
  };
}

export type PointInTimeActivities = ReturnType<typeof createPointInTimeActivities>;
