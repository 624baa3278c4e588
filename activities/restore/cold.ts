/**
 * Cold failover's restore: the newest verified backup, streamed from storage through
 * SHA-256 and `zstd -d` into the DR database server under the databases' own names (the
 * dump carries its CREATE DATABASE / USE lines). Standard tools only, as an operator
 * would do it by hand; the password goes through a 0600 defaults file.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { heartbeat } from '@temporalio/activity';
import type { Inventory } from '../../config/inventory';
import { ErrorType, type BackupDestinationName } from '../../workflows/contract';
import { failure } from '../errors';
import { collect, exitOf, writeClientDefaults } from '../mysql/dump';
import type { MysqlPools } from '../mysql';
import type { BackupStores } from '../storage/destinations';
import { readVerifiedManifest, requireManifestObject } from '../storage/manifest';

export function createColdRestoreActivities(inventory: Inventory, stores: BackupStores, pools: MysqlPools) {
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
      // The signed manifest names the object and its digest: a rewritten manifest is refused before anything changes.
      const store = stores.store(service, destination);
      const verified = await readVerifiedManifest(store, stores.keyring, service, backupId);
      requireManifestObject(verified, store, { sha256 });
      // Not logged: the DR server's binlog must hold no transactions of its own. A private session, so the pool
      // never hands out a connection whose writes skip the binlog.
      await pools.withPrivateSession(server, async (conn) => {
        await conn.query('SET SESSION sql_log_bin = 0');
        for (const db of databases) await conn.query(`DROP DATABASE IF EXISTS \`${db.replace(/`/g, '``')}\``);
      });
      const source = await store.read(verified.objectKey);
      const defaults = await writeClientDefaults(pools.target(server));
      const digest = createHash('sha256');
      let bytes = 0;
      const hashing = new Transform({
        transform(chunk: Buffer, _enc, done) {
          digest.update(chunk);
          bytes += chunk.length;
          done(null, chunk);
        },
      });
      const zstd = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
      const load = spawn(
        'mariadb',
        [`--defaults-extra-file=${defaults.file}`, '--init-command=SET SESSION sql_log_bin=0'],
        {
          stdio: ['pipe', 'ignore', 'pipe'],
        },
      );
      const zstdErr = collect(zstd.stderr);
      const loadErr = collect(load.stderr);
      const beat = setInterval(() => heartbeat({ bytes }), 2000);
      try {
        const [z, l, up, down] = await Promise.allSettled([
          exitOf(zstd, 'zstd'),
          exitOf(load, 'mariadb'),
          pipeline(source, hashing, zstd.stdin),
          pipeline(zstd.stdout, load.stdin),
        ]);
        // The loader's own failure first: a broken pipe upstream is only its consequence.
        if (l.status === 'rejected') throw l.reason;
        if (l.value.code !== 0)
          throw failure('RestoreFailed', `mariadb into ${server} exited ${l.value.code}: ${loadErr()}`, { server });
        if (z.status === 'rejected') throw z.reason;
        if (z.value.code !== 0)
          throw failure('RestoreFailed', `zstd -d exited ${z.value.code}: ${zstdErr()}`, { server });
        for (const p of [up, down])
          if (p.status === 'rejected')
            throw failure('RestoreFailed', `streaming ${backupId}: ${(p.reason as Error).message}`, { server });
      } finally {
        clearInterval(beat);
        await rm(defaults.dir, { recursive: true, force: true });
      }
      const got = digest.digest('hex');
      if (got !== sha256) {
        throw failure(
          'BackupCorrupt',
          `backup ${backupId} of ${service}: SHA-256 ${got} does not match the manifest's ${sha256}`,
          { backupId },
        );
      }
      return { server, databases, bytes, seconds: (Date.now() - started) / 1000 };
    },
  };
}

export type ColdRestoreActivities = ReturnType<typeof createColdRestoreActivities>;
