/**
 * A logical backup streamed into fresh scratch databases, with no temp copy:
 *
 *   storage object ─▶ SHA-256 ─▶ zstd -d ─▶ DumpRouter (load.ts) ─▶ N × `mariadb` client sessions
 *
 * The object's digest is compared with the signed manifest's once the stream has ended: bytes that changed since
 * verifyBackupChecksum fail the step as BackupCorrupt, and the workflow drops what was loaded.
 */
import { pipeline } from 'node:stream/promises';
import { ErrorType, type BackupDestinationName } from '../../contract';
import { failure } from '../errors';
import type { MysqlPools } from '../mysql';
import type { ScratchIsolation } from '../mysql/scratch-isolation';
import { writeClientDefaults } from '../process/defaults-file';
import { activityContext, heartbeatEvery } from '../process/heartbeat';
import { loaderOptions } from '../process/mysql-client';
import { Digest } from '../process/streams';
import { startUnzstd, type Zstd } from '../process/zstd';
import type { BackupStores } from '../storage/destinations';
import { readVerifiedManifest, requireManifestObject } from '../storage/manifest';
import { DumpRouter, sessionPrelude } from './load';
import { cancelledOr, corrupt, requireScratchNames, type ScratchDatabases, type ScratchMapping } from './scratch';
import { rm } from 'node:fs/promises';

const HEARTBEAT_MS = 1000;

export interface RestoredIntoScratch {
  server: string;
  databases: ScratchMapping[];
  /** Compressed bytes read from storage, and their SHA-256 (checked against the manifest again). */
  bytesRead: number;
  sha256: string;
  /** Decompressed dump bytes loaded. */
  bytesLoaded: number;
  statements: number;
  tables: number;
  /** Secondary keys built after their table's rows instead of row by row (activities/restore/deferred-keys.ts). */
  deferredKeys: number;
  parallel: number;
  seconds: number;
}

/**
 * Which failure a finished load reports: the object not what the manifest names (changed, or cut short in transit)
 * first; then zstd's own complaint (a corrupt frame); then the loader's; a zstd that lost its reader last.
 */
function loadOutcome(
  results: PromiseSettledResult<unknown>[],
  zstd: Zstd,
  meter: Digest,
  expected: { size: number; sha256: string; location: string },
): { digest: string } {
  const [read, load, exit] = results as [
    PromiseSettledResult<void>,
    PromiseSettledResult<void>,
    PromiseSettledResult<{ code: number | null }>,
  ];
  if (exit.status === 'rejected') throw exit.reason;
  const code = exit.value.code;
  const digest = meter.hex();
  if (read.status === 'fulfilled' && (meter.bytes !== expected.size || digest !== expected.sha256)) {
    throw corrupt(
      `${expected.location} read ${meter.bytes} bytes with SHA-256 ${digest} while restoring; the manifest ` +
        `says ${expected.size} bytes with SHA-256 ${expected.sha256}`,
      { location: expected.location },
    );
  }
  const zstdFailed = () =>
    failure(ErrorType.RestoreFailed, `zstd -d of ${expected.location} exited ${code}: ${zstd.stderr()}`);
  const lostReader = /Write error|Broken pipe|Connection reset/i.test(zstd.stderr());
  if (code !== 0 && code !== null && !lostReader) throw zstdFailed();
  if (load.status === 'rejected') throw load.reason;
  if (read.status === 'rejected') throw read.reason;
  if (code !== 0) throw zstdFailed();
  return { digest };
}

export function createScratchLoadActivities(
  stores: BackupStores,
  pools: MysqlPools,
  isolation: ScratchIsolation,
  { dropDatabases }: ScratchDatabases,
) {
  return {
    /**
     * Stream the dump into fresh scratch databases on the scratch server. Retry-safe: scratch
     * databases left by an earlier attempt are dropped first. Cancellable: the clients are killed
     * and the activity reports cancellation (the workflow then drops what was loaded).
     */
    async restoreIntoScratch({
      service,
      backupId,
      destination,
      server,
      databases,
      size,
      sha256,
      parallel = 4,
    }: {
      service: string;
      backupId: string;
      destination: BackupDestinationName;
      server: string;
      databases: ScratchMapping[];
      size: number;
      sha256: string;
      parallel?: number;
    }): Promise<RestoredIntoScratch> {
      requireScratchNames(databases.map((d) => d.scratch));
      const started = performance.now();
      // The server is read before anything is written to it: never a replica, a source or a production member.
      await isolation.requireScratch(server, 'restoring into it');
      const store = stores.store(service, destination);
      const verified = await readVerifiedManifest(store, stores.keyring, service, backupId);
      requireManifestObject(verified, store, { size, sha256 });
      const key = verified.objectKey;
      const ctx = activityContext();
      await dropDatabases(
        server,
        databases.map((d) => d.scratch),
        true,
      );

      const defaults = await writeClientDefaults(pools.target(server));
      const abort = new AbortController();
      const onCancel = () => abort.abort(new Error('cancelled'));
      ctx?.cancellationSignal.addEventListener('abort', onCancel);
      const router = new DumpRouter(
        new Map(databases.map((d) => [d.source, d.scratch])),
        Math.max(1, Math.min(16, parallel)),
        defaults.file,
        sessionPrelude(),
        await loaderOptions(),
      );
      const zstd = startUnzstd();
      abort.signal.addEventListener('abort', () => {
        router.abort();
        zstd.child.kill('SIGKILL');
      });
      const meter = new Digest();
      const stopBeat = heartbeatEvery(
        () => ({
          phase: 'restoring',
          readBytes: meter.bytes,
          loadedBytes: router.progress.bytes,
          tables: router.progress.tables,
        }),
        HEARTBEAT_MS,
      );
      try {
        const source = await store.read(key);
        const results = await Promise.allSettled([
          pipeline(source, meter, zstd.child.stdin!, { signal: abort.signal }),
          pipeline(zstd.child.stdout!, router, { signal: abort.signal }),
          zstd.exit,
        ]);
        if (ctx?.cancellationSignal.aborted) throw cancelledOr(null, ctx);
        const { digest } = loadOutcome(results, zstd, meter, { size, sha256, location: store.location(key) });
        const missing = databases.filter((d) => !router.seen.includes(d.source)).map((d) => d.source);
        if (missing.length)
          throw failure(ErrorType.RestoreFailed, `the dump holds no database ${missing.join(', ')}`, {
            missing,
          });
        return {
          server,
          databases,
          bytesRead: meter.bytes,
          sha256: digest,
          bytesLoaded: router.progress.bytes,
          statements: router.progress.statements,
          tables: router.progress.tables,
          deferredKeys: router.progress.deferredKeys,
          parallel: router.sessions.length,
          seconds: (performance.now() - started) / 1000,
        };
      } catch (err) {
        abort.abort(err);
        throw cancelledOr(err, ctx);
      } finally {
        stopBeat();
        ctx?.cancellationSignal.removeEventListener('abort', onCancel);
        router.abort();
        if (zstd.child.exitCode === null && zstd.child.signalCode === null) zstd.child.kill('SIGKILL');
        await rm(defaults.dir, { recursive: true, force: true });
      }
    },
  };
}
