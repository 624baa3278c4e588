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
import { activityContext, binlogCreatedAt, collect, exitOf, writeClientDefaults } from './dump';
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
      const bin = svc.database.engine === 'mariadb' ? 'mariadb-binlog' : 'mysqlbinlog';
      const ctx = activityContext();
      const targets = stores.forService(service);
      await checkObjectLocks(targets);
      let logs: { name: string; size: number }[];
      let closedAt: string;
      try {
        const pool = pools.pool(server);
        await pool.query('FLUSH BINARY LOGS');
        closedAt = new Date().toISOString();
        const [rows] = await pool.query<RowDataPacket[]>('SHOW BINARY LOGS');
        logs = rows.map((r) => ({ name: String(r.Log_name), size: Number(r.File_size) }));
      } catch (err) {
        const e = err as { code?: string };
        if (e.code === 'ER_NO_BINARY_LOGGING')
          throw failure(ErrorType.NotConfigured, `${server} has no binary log (log-bin is off)`, { server });
        throw mysqlFailure(server, err);
      }
      const active = logs.pop()!.name;
      const root = binlogRoot(service, server);
      const defaults = await writeClientDefaults(pools.target(server));
      let dated: { name: string; size: number; file: string }[];
      try {
        dated = [];
        for (const log of logs) {
          const created = await binlogCreatedAt(svc.database.engine, defaults.file, log.name);
          dated.push({ ...log, file: archivedBinlogName(log.name, created) });
        }
      } catch (err) {
        await rm(defaults.dir, { recursive: true, force: true });
        throw err;
      }
      const present = new Map<BackupDestinationName, Map<string, number>>();
      for (const store of targets) {
        const have = new Map<string, number>();
        for (const o of await store.list(root)) have.set(o.key.slice(root.length), o.size);
        present.set(store.name, have);
      }
      const archived = (store: BackupStore, log: { size: number; file: string }) => {
        const have = present.get(store.name)!;
        const size = have.get(log.file);
        if (size !== undefined && size !== log.size)
          throw ApplicationFailure.create({
            type: ErrorType.BackupExists,
            message: `${store.location(`${root}${log.file}`)} holds ${size} bytes, the server's log ${log.size}: an archived log is never overwritten`,
            nonRetryable: true,
          });
        return size === log.size && have.has(`${log.file}.sha256`);
      };

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
          ctx?.heartbeat({ phase: 'archiving binlogs', log: log.name });
          // --raw writes the log as the server has it, named after it, under the --result-file prefix.
          const child = spawn(
            bin,
            [
              `--defaults-extra-file=${defaults.file}`,
              '--read-from-remote-server',
              '--raw',
              `--result-file=${work}/`,
              log.name,
            ],
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
          for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 }))
            hash.update(chunk as Buffer);
          const sha256 = hash.digest('hex');
          for (const store of missing) {
            const key = binlogKey(service, server, log.file);
            const writer = store.openWriter(key, () => undefined);
            try {
              await pipeline(createReadStream(file, { highWaterMark: 1024 * 1024 }), writer.stream, { end: false });
              await writer.finish();
              await writer.publish();
            } catch (err) {
              await writer.abort();
              throw err;
            }
            // The checksum goes last: a log without its .sha256 counts as not archived and is copied again.
            await store.put(`${key}.sha256`, checksumLine(sha256, log.file));
          }
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
