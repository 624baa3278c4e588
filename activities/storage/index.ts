/**
 * Backup storage steps: read every copy back and check it (size + SHA-256), write the
 * manifest that makes a backup count, list and prune backups, and put the archive
 * lifecycle on the buckets. Steps take names (service, destination, backup id) and
 * return keys and sizes: no data and no credentials pass through workflow history.
 */
import { createHash } from 'node:crypto';
import {
  GetBucketLifecycleConfigurationCommand,
  PutBucketLifecycleConfigurationCommand,
  type LifecycleRule,
} from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { type Inventory, BACKUP_ID, ErrorType, type BackupDestinationName, type BackupManifest } from '../../contract';
import { s3ClientFor, type AwsClients } from '../aws/clients';
import { aws, awsFailure, failure } from '../errors';
import type { BackupStores } from './destinations';
import {
  BACKUP_FILE,
  backupKey,
  checksumLine,
  isBackupObjectKey,
  manifestKey,
  signatureKey,
  MANIFEST_FILE,
  serviceRoot,
  type BackupKind,
} from './layout';
import { heartbeat } from '../process/heartbeat';

export interface VerifiedCopy {
  destination: BackupDestinationName;
  location: string;
  size: number;
  sha256: string;
  verifiedAt: string;
}

export interface ListedBackup {
  id: string;
  /** manifest.json present: every copy was verified when it was written. */
  verified: boolean;
  files: number;
  bytes: number;
}

export interface LifecycleApplied {
  bucket: string;
  region: string;
  rules: string[];
  changed: boolean;
}

function corrupt(message: string, details: Record<string, unknown>): ApplicationFailure {
  return ApplicationFailure.create({
    type: ErrorType.BackupCorrupt,
    message,
    nonRetryable: true,
    details: [details],
  });
}

const DAY = 86400;
const days = (seconds: number) => Math.max(1, Math.ceil(seconds / DAY));

/** The archive rule for one service's backups of one kind in one bucket (`drbook-<service>` for the logical dumps). */
export function archiveRule(
  service: string,
  prefix: string,
  archive: { standardIaAfter: number; glacierAfter: number; deepArchiveAfter: number; expireAfter: number },
  kind: 'logical' | 'physical' | 'binlog' = 'logical',
): LifecycleRule {
  return {
    ID: kind === 'logical' ? `drbook-${service}` : `drbook-${service}-${kind}`,
    Status: 'Enabled',
    Filter: { Prefix: `${prefix}${service}/${kind}/` },
    Transitions: [
      { Days: days(archive.standardIaAfter), StorageClass: 'STANDARD_IA' },
      { Days: days(archive.glacierAfter), StorageClass: 'GLACIER' },
      { Days: days(archive.deepArchiveAfter), StorageClass: 'DEEP_ARCHIVE' },
    ],
    Expiration: { Days: days(archive.expireAfter) },
    // A worker that died mid-upload leaves parts behind; they are billed until aborted.
    AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 },
  };
}

/** What a backup run needs: the services it covers, each copy read back, the manifest written last. */
function createCopyActivities(stores: BackupStores, inventory: Inventory) {
  return {
    /** The services a nightly run covers: the ones asked for (each must exist and have a backup section), or all. */
    /** The services to back up (each with a backup section, or those named); `binlogArchive`: those with it on. */
    async listBackedUpServices({
      services,
      binlogArchive = false,
    }: {
      services?: string[];
      binlogArchive?: boolean;
    }): Promise<string[]> {
      const wanted = (s: Inventory['services'][number]) => !!s.backup && (!binlogArchive || s.backup.binlogArchive);
      if (!services) return inventory.services.filter(wanted).map((s) => s.name);
      const known = new Map(inventory.services.map((s) => [s.name, s]));
      const unknown = services.filter((s) => !known.has(s));
      if (unknown.length)
        throw failure(
          ErrorType.UnknownService,
          `unknown service(s) ${unknown.map((s) => `"${s}"`).join(', ')}; the inventory ` +
            `has: ${[...known.keys()].join(', ')}`,
          { unknown },
        );
      const unconfigured = services.filter((s) => !wanted(known.get(s)!));
      if (unconfigured.length)
        throw failure(
          ErrorType.NotConfigured,
          `no backup section${binlogArchive ? ' with binlogArchive: true' : ''} in the inventory ` +
            `for: ${unconfigured.join(', ')}`,
        );
      return [...new Set(services)];
    },

    /** Read a copy back from storage and check its size and SHA-256, and the .sha256 file beside it. */
    async verifyCopy({
      service,
      backupId,
      destination,
      size,
      sha256,
      kind = 'logical',
      key: asked,
    }: {
      service: string;
      backupId: string;
      destination: BackupDestinationName;
      size: number;
      sha256: string;
      /** Default: the logical dump. */
      kind?: BackupKind;
      /** The attempt's object (the dump's `object.key`); default: the single key of backups from before attempts. */
      key?: string;
    }): Promise<VerifiedCopy> {
      const store = stores.store(service, destination);
      const key = asked ?? backupKey(service, backupId, kind);
      if (!isBackupObjectKey(key, service, backupId, kind))
        throw failure(ErrorType.InvalidInput, `${key} is not an object of ${kind} backup ${service}/${backupId}`);
      const location = store.location(key);
      const hash = createHash('sha256');
      let bytes = 0;
      let last = Date.now();
      for await (const chunk of await store.read(key)) {
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
        if (Date.now() - last > 5000) {
          heartbeat({ verifiedBytes: bytes });
          last = Date.now();
        }
      }
      const actual = hash.digest('hex');
      if (bytes !== size || actual !== sha256) {
        throw corrupt(
          `${location}: read back ${bytes} bytes with SHA-256 ${actual}; written ${size} bytes with SHA-256 ${sha256}`,
          { destination, location, size: bytes, sha256: actual },
        );
      }
      const line = await store.get(`${key}.sha256`);
      if (line !== checksumLine(sha256, BACKUP_FILE[kind])) {
        throw corrupt(`${store.location(`${key}.sha256`)} does not hold ${sha256}: ${JSON.stringify(line)}`, {
          destination,
        });
      }
      return { destination, location, size: bytes, sha256: actual, verifiedAt: new Date().toISOString() };
    },

    /**
     * The last write of a backup: manifest.json, signed (manifest.json.sig, written first), in every destination
     * that holds a verified copy. A manifest already there is never replaced: the same one (a retry) is left as it
     * is, another one fails with BackupExists.
     */
    async writeManifest({ manifest }: { manifest: BackupManifest }): Promise<{ manifestKey: string }> {
      const key = manifestKey(manifest.service, manifest.id, manifest.kind);
      const sigKey = signatureKey(manifest.service, manifest.id, manifest.kind);
      if (!isBackupObjectKey(manifest.object.key, manifest.service, manifest.id, manifest.kind))
        throw failure(
          ErrorType.InvalidInput,
          `manifest object.key ${manifest.object.key} is not an object of this backup`,
        );
      const body = `${JSON.stringify(manifest, null, 2)}\n`;
      const signature = stores.keyring.sign(body);
      for (const copy of manifest.copies) {
        const store = stores.store(manifest.service, copy.destination);
        const existing = await store.get(key);
        if (existing !== null && existing !== body)
          throw ApplicationFailure.create({
            type: ErrorType.BackupExists,
            message:
              `${store.location(key)} already holds another manifest: ${manifest.kind} backup ${manifest.id} ` +
              `of ${manifest.service} is never rewritten`,
            nonRetryable: true,
          });
        if (existing === body && (await store.get(sigKey)) === signature) continue;
        await store.put(sigKey, signature);
        await store.put(key, body);
        if ((await store.get(key)) !== body || (await store.get(sigKey)) !== signature)
          throw failure(ErrorType.ManifestNotStored, `${store.location(key)} did not read back as written`);
      }
      return { manifestKey: key };
    },
  };
}

/** Retention: the backups listed, and those past retention deleted. */
function createRetentionActivities(stores: BackupStores) {
  return {
    /** Every backup of a service in every destination, newest first, and whether its manifest is there. */
    async listBackups({
      service,
      kind = 'logical',
    }: {
      service: string;
      kind?: BackupKind;
    }): Promise<{ destination: BackupDestinationName; backups: ListedBackup[] }[]> {
      const root = serviceRoot(service, kind);
      const out: { destination: BackupDestinationName; backups: ListedBackup[] }[] = [];
      for (const store of stores.forService(service)) {
        const byId = new Map<string, ListedBackup>();
        for (const o of await store.list(root)) {
          const [id, file] = o.key.slice(root.length).split('/');
          if (!BACKUP_ID.test(id)) continue; // not ours: never listed, never pruned
          const b = byId.get(id) ?? { id, verified: false, files: 0, bytes: 0 };
          b.files++;
          b.bytes += o.size;
          if (file === MANIFEST_FILE) b.verified = true;
          byId.set(id, b);
        }
        out.push({ destination: store.name, backups: [...byId.values()].sort((a, b) => b.id.localeCompare(a.id)) });
      }
      return out;
    },

    /** Delete whole backups from one destination. Refuses the newest verified one, whatever it is asked. */
    async deleteBackups({
      service,
      destination,
      ids,
      kind = 'logical',
    }: {
      service: string;
      destination: BackupDestinationName;
      ids: string[];
      kind?: BackupKind;
    }): Promise<{ deleted: string[]; locked?: { id: string; until: string }[] }> {
      const store = stores.store(service, destination);
      const root = serviceRoot(service, kind);
      const objects = await store.list(root);
      const newestVerified = objects
        .filter((o) => o.key.endsWith(`/${MANIFEST_FILE}`))
        .map((o) => o.key.slice(root.length).split('/')[0])
        .filter((id) => BACKUP_ID.test(id))
        .sort()
        .pop();
      if (newestVerified && ids.includes(newestVerified))
        throw failure(
          ErrorType.InvalidInput,
          `refusing to delete ${service} backup ${newestVerified} from ${store.label}: it is the newest verified one`,
        );
      const deleted: string[] = [];
      const locked: { id: string; until: string }[] = [];
      for (const id of ids) {
        if (!BACKUP_ID.test(id)) throw failure(ErrorType.InvalidInput, `"${id}" is not a backup id`);
        // The manifest goes first: a half-deleted backup must not look verified.
        const keys = objects
          .filter((o) => o.key.startsWith(`${root}${id}/`))
          .map((o) => o.key)
          .sort((a, b) => Number(b.endsWith(MANIFEST_FILE)) - Number(a.endsWith(MANIFEST_FILE)));
        // Under Object Lock S3 refuses the delete until the lock ends: keep the whole backup (never half of it)
        // and say until when; a later run removes it.
        const until = await store.lockedUntil(keys, Date.now());
        if (until) {
          locked.push({ id, until });
          continue;
        }
        await store.remove(keys);
        deleted.push(id);
      }
      return locked.length ? { deleted, locked } : { deleted };
    },
  };
}

/** The S3 lifecycle rules that move older backups to colder storage, applied. */
function createArchiveActivities(stores: BackupStores, inventory: Inventory, awsClients: AwsClients) {
  return {
    /**
     * The archive lifecycle (Standard-IA, Glacier, Deep Archive, expiry; abort stale uploads) on every
     * backup bucket, one rule per service, other rules left alone. Bucket configuration is an AWS API
     * call, so it goes to AWS (the emulator locally), not to an S3-compatible data endpoint.
     */
    async applyArchiveLifecycles(): Promise<LifecycleApplied[]> {
      const buckets = new Map<string, { region: string; bucket: string; rules: LifecycleRule[] }>();
      for (const svc of inventory.services) {
        if (!svc.backup) continue;
        for (const d of [svc.backup.destinations.primary, svc.backup.destinations.offsite]) {
          if (!d) continue;
          const id = `${d.region}/${d.bucket}`;
          const entry = buckets.get(id) ?? { region: d.region, bucket: d.bucket, rules: [] };
          entry.rules.push(archiveRule(svc.name, d.prefix, svc.backup.archive));
          if (svc.backup.physical) entry.rules.push(archiveRule(svc.name, d.prefix, svc.backup.archive, 'physical'));
          if (svc.backup.binlogArchive) entry.rules.push(archiveRule(svc.name, d.prefix, svc.backup.archive, 'binlog'));
          buckets.set(id, entry);
        }
      }
      const applied: LifecycleApplied[] = [];
      for (const { region, bucket, rules } of buckets.values()) {
        const s3 = s3ClientFor({ region }, awsClients.connection);
        try {
          const resource = `S3 bucket ${bucket} (${region}) lifecycle`;
          let existing: LifecycleRule[] = [];
          try {
            existing = (await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }))).Rules ?? [];
          } catch (err) {
            if ((err as Error).name !== 'NoSuchLifecycleConfiguration') throw awsFailure(err, resource);
          }
          const others = existing.filter((r) => !r.ID?.startsWith('drbook-'));
          const wanted = [...others, ...rules];
          const same = JSON.stringify(existing.map(comparable)) === JSON.stringify(wanted.map(comparable));
          if (!same) {
            await aws(resource, () =>
              s3.send(
                new PutBucketLifecycleConfigurationCommand({
                  Bucket: bucket,
                  LifecycleConfiguration: { Rules: wanted },
                }),
              ),
            );
          }
          applied.push({ bucket, region, rules: rules.map((r) => r.ID!), changed: !same });
        } finally {
          s3.destroy();
        }
      }
      return applied;
    },
  };
}

export function createStorageActivities(stores: BackupStores, inventory: Inventory, awsClients: AwsClients) {
  return {
    ...createCopyActivities(stores, inventory),
    ...createRetentionActivities(stores),
    ...createArchiveActivities(stores, inventory, awsClients),
  };
}

/** A rule as read back, without the fields S3 fills in itself, for "already applied?". */
function comparable(r: LifecycleRule) {
  return {
    id: r.ID,
    status: r.Status,
    prefix: r.Filter?.Prefix ?? r.Prefix,
    transitions: (r.Transitions ?? []).map((t) => `${t.Days}:${t.StorageClass}`),
    expiration: r.Expiration?.Days,
    abort: r.AbortIncompleteMultipartUpload?.DaysAfterInitiation,
  };
}

export type StorageActivities = ReturnType<typeof createStorageActivities>;
