/**
 * Cold failover's restore: the newest verified backup into the DR database server under the
 * databases' own names (the dump carries its CREATE DATABASE / USE lines). Standard tools only,
 * as an operator would do it by hand; the password goes through a 0600 defaults file.
 *
 *   storage object ─▶ SHA-256 ─▶ private file (0600)      checked against the manifest, then
 *   private file ─▶ zstd -d ─▶ mariadb --binary-mode --sandbox ─▶ DR server
 *
 * Verify first, then load: the DR server is about to serve traffic, so nothing of a stream whose
 * digest does not match may reach it (not even into staging databases: the SQL chooses which
 * databases it writes, and MariaDB cannot rename a database with its views, triggers and routines).
 * The object is spooled to the worker's disk while it is hashed, and exactly the bytes that were
 * checked are loaded: a second read from storage could differ from the first. The cost is the
 * compressed size on the worker's disk and a download that no longer overlaps the load.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { type Inventory, ErrorType, type BackupDestinationName } from '../../contract';
import { failure } from '../errors';
import type { MysqlPools } from '../mysql';
import type { ScratchIsolation } from '../mysql/scratch-isolation';
import type { BackupStores } from '../storage/destinations';
import { readVerifiedManifest, requireManifestObject } from '../storage/manifest';
import { privateWorkDir } from '../workdirs';
import { collect, exitOf } from '../process/child';
import { writeClientDefaults } from '../process/defaults-file';
import { heartbeatEvery } from '../process/heartbeat';
import { loaderOptions, REFUSED_CLIENT_COMMAND } from '../process/mysql-client';
import { quoteIdentifier } from '../process/quote';
import { Digest } from '../process/streams';
import { startUnzstd } from '../process/zstd';

/** Line `n` (1-based) of a zstd-compressed file, cut to 200 characters: the statement the client refused. */
async function lineOf(file: string, n: number): Promise<string | null> {
  const zstd = startUnzstd({ file, stderr: 'ignore' });
  try {
    let i = 0;
    for await (const line of createInterface({ input: zstd.child.stdout!, crlfDelay: Infinity }))
      if (++i === n) return line.slice(0, 200);
    return null;
  } finally {
    zstd.child.kill('SIGKILL');
  }
}

export function createColdRestoreActivities(
  inventory: Inventory,
  stores: BackupStores,
  pools: MysqlPools,
  isolation: ScratchIsolation,
) {
  return {
    async restoreIntoDrServer({
      service,
      backupId,
      destination,
      sha256,
    }: {
      service: string;
      backupId: string;
      destination: BackupDestinationName;
      sha256: string;
    }): Promise<{ server: string; databases: string[]; bytes: number; seconds: number }> {
      const svc = inventory.services.find((s) => s.name === service);
      const server = svc?.database?.drServer;
      const databases = svc?.backup?.databases ?? [];
      if (!svc?.database || !server)
        throw failure(ErrorType.NotConfigured, `${service} has no database.drServer to restore into`);
      // The DR server's copies of these databases are replaced: never on the primary itself.
      if (server === svc.database.primary)
        throw failure(ErrorType.NotConfigured, `${service}: drServer is the primary; refusing to restore over it`);
      const started = Date.now();
      // ... nor on any server that is live or another member, whatever the inventory calls it (read from the server).
      await isolation.requireColdTarget(service, server);
      // The signed manifest names the object and its digest: a rewritten manifest is refused before anything changes.
      const store = stores.store(service, destination);
      const verified = await readVerifiedManifest(store, stores.keyring, service, backupId);
      requireManifestObject(verified, store, { sha256 });
      const work = await privateWorkDir('cold');
      const spooled = path.join(work, 'dump.sql.zst');
      let defaults: { dir: string; file: string } | null = null;
      const digest = new Digest();
      const stopBeat = heartbeatEvery(() => ({ bytes: digest.bytes }));
      try {
        // 1. Verify: the whole object through SHA-256 into a private file; the DR server is not touched yet.
        const source = await store.read(verified.objectKey);
        await pipeline(source, digest, createWriteStream(spooled, { mode: 0o600 })).catch((err: Error) => {
          throw failure(ErrorType.RestoreFailed, `fetching ${backupId}: ${err.message}`, { server });
        });
        const got = digest.hex();
        if (got !== sha256) {
          throw failure(
            ErrorType.BackupCorrupt,
            `backup ${backupId} of ${service}: SHA-256 ${got} does not match the manifest's ${sha256}; nothing ` +
              `was loaded into ${server}`,
            { backupId, server },
          );
        }

        // 2. Load exactly the bytes just checked.
        // Not logged: the DR server's binlog must hold no transactions of its own. A private session, so the pool
        // never hands out a connection whose writes skip the binlog.
        await pools.withPrivateSession(server, async (conn) => {
          await conn.query('SET SESSION sql_log_bin = 0');
          for (const db of databases) await conn.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(db)}`);
        });
        defaults = await writeClientDefaults(pools.target(server));
        // Everything awaited before the first spawn: between a spawn and its exitOf() nothing may yield to the
        // event loop. A small dump lets zstd exit and close while an await runs (the first loaderOptions() runs
        // `mariadb --help`), and a 'close' listener attached after that waits forever.
        const clientOptions = await loaderOptions();
        const zstd = startUnzstd({ file: spooled });
        const load = spawn(
          'mariadb',
          [`--defaults-extra-file=${defaults.file}`, ...clientOptions, '--init-command=SET SESSION sql_log_bin=0'],
          { stdio: ['pipe', 'ignore', 'pipe'] },
        );
        const loadErr = collect(load.stderr);
        const [z, l, down] = await Promise.allSettled([
          zstd.exit,
          exitOf(load, 'mariadb'),
          pipeline(zstd.child.stdout!, load.stdin),
        ]);
        // The loader's own failure first: a broken pipe upstream is only its consequence.
        if (l.status === 'rejected') throw l.reason;
        if (l.value.code !== 0) {
          const refused = REFUSED_CLIENT_COMMAND.exec(loadErr());
          if (refused) {
            const line = await lineOf(spooled, Number(refused[1])).catch(() => null);
            throw failure(
              ErrorType.RestoreRefused,
              `backup ${backupId} of ${service}: line ${refused[1]} of the dump is a mariadb client command, ` +
                `refused (a restore never runs one)${line === null ? '' : `: ${JSON.stringify(line)}`}; ` +
                `mariadb: ${loadErr()}`,
              { backupId, server, line: Number(refused[1]) },
            );
          }
          throw failure(ErrorType.RestoreFailed, `mariadb into ${server} exited ${l.value.code}: ${loadErr()}`, {
            server,
          });
        }
        if (z.status === 'rejected') throw z.reason;
        if (z.value.code !== 0)
          throw failure(ErrorType.RestoreFailed, `zstd -d exited ${z.value.code}: ${zstd.stderr()}`, { server });
        if (down.status === 'rejected')
          throw failure(ErrorType.RestoreFailed, `streaming ${backupId}: ${(down.reason as Error).message}`, {
            server,
          });
      } finally {
        stopBeat();
        await rm(work, { recursive: true, force: true });
        if (defaults) await rm(defaults.dir, { recursive: true, force: true });
      }
      return { server, databases, bytes: digest.bytes, seconds: (Date.now() - started) / 1000 };
    },
  };
}

export type ColdRestoreActivities = ReturnType<typeof createColdRestoreActivities>;
