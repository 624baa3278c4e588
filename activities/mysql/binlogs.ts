/**
 * The binary-log archive, for point-in-time recovery between nightly backups:
 *
 *   FLUSH BINARY LOGS → SHOW BINARY LOGS → every closed log not yet archived →
 *   mariadb-binlog --read-from-remote-server --raw → SHA-256 → every destination
 *
 * The logs are read over the replication protocol (no file access, no SSH), byte for byte as
 * the server wrote them, into a private temp directory, then streamed to each destination with
 * a `.sha256` beside them, as `<log>@<created>`: the log's name and when the server created it
 * (its first event), so after RESET MASTER restarts the numbering a new `binlog.000001` is another
 * object beside the old one, never over it. Idempotent by that key: a log already in a destination
 * with the same size and a `.sha256` is not copied again; one that is there with another size is
 * refused (BackupExists), never overwritten. The active log is never archived; the flush closes it,
 * so the archive reaches up to the moment of the flush.
 * Restore: `mariadb-binlog --start-position=<manifest position> binlog.N … | mariadb`.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { RowDataPacket } from 'mysql2/promise';
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType, type BackupDestinationName } from '../../contract';
import { failure } from '../errors';
import { checkObjectLocks, type BackupStore, type BackupStores } from '../storage/destinations';
import { archivedBinlogName, binlogKey, binlogRoot, checksumLine } from '../storage/layout';
import { collect, exitOf } from '../process/child';
import { writeClientDefaults } from '../process/defaults-file';
import { heartbeat } from '../process/heartbeat';
import { binlogCreatedAt } from './dump-snapshot';
import { createTopologyDiscoveryActivities } from './discovery';
import { privateWorkDir } from '../workdirs';
import { mysqlFailure, type MysqlPools } from './index';

export interface BinlogArchiveResult {
  service: string;
  server: string;
  /** Logs copied by this call (to at least one destination), as archived: `<log>@<created>`. */
  copied: string[];
  /** Closed logs already in every destination (`<log>@<created>`). */
  alreadyArchived: string[];
  /** The active log: not archived. */
  active: string;
  /** Newest archived log, and when it was closed (this call's flush). */
  newest: string | null;
  newestClosedAt: string | null;
  destinations: BackupDestinationName[];
}

/** Close the active log (FLUSH BINARY LOGS) and list the server's logs, the active one last. */
async function flushAndList(pools: MysqlPools, server: string) {
  try {
    const pool = pools.pool(server);
    await pool.query('FLUSH BINARY LOGS');
    const closedAt = new Date().toISOString();
    const [rows] = await pool.query<RowDataPacket[]>('SHOW BINARY LOGS');
    return { closedAt, logs: rows.map((r) => ({ name: String(r.Log_name), size: Number(r.File_size) })) };
  } catch (err) {
    const e = err as { code?: string };
    if (e.code === 'ER_NO_BINARY_LOGGING')
      throw failure(ErrorType.NotConfigured, `${server} has no binary log (log-bin is off)`, { server });
    throw mysqlFailure(server, err);
  }
}

/** Whether a destination already holds a log (same size, with its .sha256); one of another size is refused. */
async function archivedIn(targets: BackupStore[], root: string) {
  const present = new Map<BackupDestinationName, Map<string, number>>();
  for (const store of targets) {
    const have = new Map<string, number>();
    for (const o of await store.list(root)) have.set(o.key.slice(root.length), o.size);
    present.set(store.name, have);
  }
  return (store: BackupStore, log: { size: number; file: string }) => {
    const have = present.get(store.name)!;
    const size = have.get(log.file);
    if (size !== undefined && size !== log.size)
      throw ApplicationFailure.create({
        type: ErrorType.BackupExists,
        message:
          `${store.location(`${root}${log.file}`)} holds ${size} bytes, the server's log ${log.size}: an ` +
          `archived log is never overwritten`,
        nonRetryable: true,
      });
    return size === log.size && have.has(`${log.file}.sha256`);
  };
}

/** One log read over the replication protocol into `work`, byte for byte; its file and SHA-256. */
async function fetchLog(
  bin: string,
  defaultsFile: string,
  work: string,
  server: string,
  log: { name: string; size: number },
) {
  // --raw writes the log as the server has it, named after it, under the --result-file prefix.
  const child = spawn(
    bin,
    [`--defaults-extra-file=${defaultsFile}`, '--read-from-remote-server', '--raw', `--result-file=${work}/`, log.name],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const stderr = collect(child.stderr);
  const { code } = await exitOf(child, bin);
  if (code !== 0)
    throw failure(ErrorType.DumpFailed, `${bin} for ${server} ${log.name} exited ${code}: ${stderr()}`, {
      server,
    });
  const file = path.join(work, log.name);
  const size = (await stat(file)).size;
  if (size !== log.size)
    throw failure(ErrorType.DumpFailed, `${log.name}: read ${size} bytes, the server lists ${log.size}`);
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return { file, sha256: hash.digest('hex') };
}

/** A fetched log into one destination; the checksum goes last, so a log without it counts as not archived. */
async function copyLog(store: BackupStore, key: string, file: string, sha256: string, name: string) {
  const writer = store.openWriter(key, () => undefined);
  try {
    await pipeline(createReadStream(file, { highWaterMark: 1024 * 1024 }), writer.stream, { end: false });
    await writer.finish();
    await writer.publish();
  } catch (err) {
    await writer.abort();
    throw err;
  }
  await store.put(`${key}.sha256`, checksumLine(sha256, name));
}

export function createBinlogArchiveActivities(stores: BackupStores, pools: MysqlPools) {
  const live = createTopologyDiscoveryActivities((name) => stores.service(name), pools);
  return {
    /**
     * Copy the closed binary logs of the member writable now (read from the servers: after a failover, the
     * promoted one) to every destination of the service (each once). A split or writer-less service is refused.
     */
    async archiveBinlogs({ service }: { service: string }): Promise<BinlogArchiveResult> {
      const svc = stores.service(service);
      if (!svc.database) throw failure(ErrorType.NotConfigured, `service ${service} has no database`);
      const { server } = await live.backupSource(service);
      const engine = svc.database.engine;
      const bin = engine === 'mariadb' ? 'mariadb-binlog' : 'mysqlbinlog';
      const targets = stores.forService(service);
      await checkObjectLocks(targets);
      const { logs, closedAt } = await flushAndList(pools, server);
      const active = logs.pop()!.name;
      const root = binlogRoot(service, server);
      const defaults = await writeClientDefaults(pools.target(server));
      let dated: { name: string; size: number; file: string }[];
      try {
        dated = [];
        for (const log of logs) {
          const created = await binlogCreatedAt(engine, defaults.file, log.name);
          dated.push({ ...log, file: archivedBinlogName(log.name, created) });
        }
      } catch (err) {
        await rm(defaults.dir, { recursive: true, force: true });
        throw err;
      }
      const archived = await archivedIn(targets, root);

      const copied: string[] = [];
      const alreadyArchived: string[] = [];
      const work = await privateWorkDir('binlog');
      try {
        for (const log of dated) {
          const missing = targets.filter((s) => !archived(s, log));
          if (missing.length === 0) {
            alreadyArchived.push(log.file);
            continue;
          }
          heartbeat({ phase: 'archiving binlogs', log: log.name });
          const { file, sha256 } = await fetchLog(bin, defaults.file, work, server, log);
          for (const store of missing)
            await copyLog(store, binlogKey(service, server, log.file), file, sha256, log.file);
          await rm(file, { force: true });
          copied.push(log.file);
        }
      } finally {
        await rm(work, { recursive: true, force: true });
        await rm(defaults.dir, { recursive: true, force: true });
      }
      const newest = dated.length ? dated[dated.length - 1].file : null;
      return {
        service,
        server,
        copied,
        alreadyArchived,
        active,
        newest,
        newestClosedAt: newest ? closedAt : null,
        destinations: targets.map((s) => s.name),
      };
    },
  };
}

export type BinlogArchiveActivities = ReturnType<typeof createBinlogArchiveActivities>;
