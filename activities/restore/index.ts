/**
 * Restore-test steps: pick the backup, read its manifest, prove the object matches it, load it
 * into scratch databases (streamed: storage → SHA-256 → zstd -d → mariadb, no temp copy), validate
 * what was loaded, and drop the scratch databases again. Steps take names (service, destination,
 * backup id, scratch server and databases) and return counts and timings; no data, no credentials.
 *
 * Scratch databases are always named `restore_…`: dropScratchDatabase refuses any other name, so
 * a mistake can never drop a real database.
 */
import { createHash } from 'node:crypto';
import { ErrorType, BACKUP_ID, type BackupDestinationName, type BackupManifest } from '../../contract';
import { failure } from '../errors';
import type { MysqlPools } from '../mysql';
import type { ScratchIsolation } from '../mysql/scratch-isolation';
import { activityContext, heartbeatEvery } from '../process/heartbeat';
import type { BackupStore, BackupStores } from '../storage/destinations';
import { backupRoot, manifestKey, MANIFEST_FILE, serviceRoot, type BackupKind } from '../storage/layout';
import { readVerifiedManifest, requireManifestObject } from '../storage/manifest';
import { cancelledOr, corrupt, scratchDatabases } from './scratch';
import { createScratchLoadActivities } from './scratch-load';
import { createRestoreValidationActivities } from './validate';

export { SCRATCH_DATABASE, type ScratchMapping } from './scratch';
export type { ValidationQuery } from './validate';

/** Where a restore test reads from, in order of preference: the copy operators would reach for first. */
const SOURCE_ORDER: BackupDestinationName[] = ['primary', 'offsite', 'local'];
const HEARTBEAT_MS = 1000;

export interface PickedBackup {
  backupId: string;
  destination: BackupDestinationName;
  /** Where the backup is (s3://.../<service>/<kind>/<backupId>/ or a directory). */
  location: string;
  manifestKey: string;
  /** Verified backups of the service found in that destination. */
  verifiedCount: number;
}

/** Read a stored object to the end, hashing it; heartbeats while it reads. */
async function hashObject(
  store: BackupStore,
  key: string,
  signal?: AbortSignal,
): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const stopBeat = heartbeatEvery(() => ({ phase: 'checksum', bytes }), HEARTBEAT_MS);
  const source = await store.read(key);
  try {
    for await (const chunk of source) {
      if (signal?.aborted) throw new Error('cancelled');
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    return { bytes, sha256: hash.digest('hex') };
  } finally {
    stopBeat();
    source.destroy();
  }
}

export function createRestoreActivities(stores: BackupStores, pools: MysqlPools, isolation: ScratchIsolation) {
  const scratch = scratchDatabases(pools, isolation);
  const { dropDatabases } = scratch;

  return {
    /** The newest verified backup of the service (or the one asked for), from the first destination that holds it. */
    async pickNewestVerifiedBackup({
      service,
      backupId,
      kind = 'logical',
    }: {
      service: string;
      backupId?: string;
      kind?: BackupKind;
    }): Promise<PickedBackup> {
      const all = stores.forService(service);
      const ordered = SOURCE_ORDER.map((n) => all.find((s) => s.name === n)).filter((s): s is BackupStore => !!s);
      const found: { store: BackupStore; ids: string[] }[] = [];
      for (const store of ordered) {
        const ids = (await store.list(serviceRoot(service, kind)))
          .filter((o) => o.key.endsWith(`/${MANIFEST_FILE}`))
          .map((o) => o.key.slice(serviceRoot(service, kind).length).split('/')[0])
          .filter((id) => BACKUP_ID.test(id))
          .sort();
        found.push({ store, ids });
      }
      const wanted =
        backupId ??
        found
          .flatMap((f) => f.ids)
          .sort()
          .pop();
      const from = wanted ? found.find((f) => f.ids.includes(wanted)) : undefined;
      if (!wanted || !from) {
        const missing = backupId
          ? `no verified ${kind} backup ${backupId} of ${service}`
          : `no verified ${kind} backup of ${service} (no manifest.json)`;
        throw failure(ErrorType.NoVerifiedBackup, `${missing} in ${ordered.map((s) => s.label).join(', ')}`, {
          service,
        });
      }
      return {
        backupId: wanted,
        destination: from.store.name,
        location: from.store.location(backupRoot(service, wanted, kind)),
        manifestKey: manifestKey(service, wanted, kind),
        verifiedCount: from.ids.length,
      };
    },

    /**
     * The backup's manifest.json from the destination it will be restored from: its signature verified with the
     * worker's backup-signing keyring (ManifestUnauthenticated otherwise), then checked for shape.
     */
    async fetchManifest({
      service,
      backupId,
      destination,
      kind = 'logical',
    }: {
      service: string;
      backupId: string;
      destination: BackupDestinationName;
      kind?: BackupKind;
    }): Promise<BackupManifest> {
      const store = stores.store(service, destination);
      return (await readVerifiedManifest(store, stores.keyring, service, backupId, kind)).manifest;
    },

    /**
     * Before any restore: the signed manifest read again and authenticated (the size and SHA-256 given must be
     * its own), then the object it names read from storage and compared with them.
     */
    async verifyBackupChecksum({
      service,
      backupId,
      destination,
      size,
      sha256,
    }: {
      service: string;
      backupId: string;
      destination: BackupDestinationName;
      size: number;
      sha256: string;
    }): Promise<{ location: string; bytes: number; sha256: string; seconds: number }> {
      const store = stores.store(service, destination);
      const started = performance.now();
      const verified = await readVerifiedManifest(store, stores.keyring, service, backupId);
      requireManifestObject(verified, store, { size, sha256 });
      const key = verified.objectKey;
      const ctx = activityContext();
      const actual = await hashObject(store, key, ctx?.cancellationSignal).catch((err: unknown) => {
        throw cancelledOr(err, ctx);
      });
      if (actual.bytes !== size || actual.sha256 !== sha256) {
        throw corrupt(
          `${store.location(key)}: ${actual.bytes} bytes with SHA-256 ${actual.sha256}; the manifest says ${size} ` +
            `bytes with SHA-256 ${sha256}`,
          { location: store.location(key), ...actual },
        );
      }
      return { location: store.location(key), ...actual, seconds: (performance.now() - started) / 1000 };
    },

    /** Drop scratch databases (restore_… only), ending any session still using them. Idempotent. */
    async dropScratchDatabase({
      server,
      databases,
    }: {
      server: string;
      databases: string[];
    }): Promise<{ dropped: string[]; absent: string[] }> {
      return dropDatabases(server, databases);
    },
    ...createScratchLoadActivities(stores, pools, isolation, scratch),
    ...createRestoreValidationActivities(scratch),
  };
}

export type RestoreActivities = ReturnType<typeof createRestoreActivities>;
