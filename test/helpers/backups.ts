/**
 * The sandbox inventory with every service's backups under an S3 prefix and a local directory
 * of the caller's own, so backup, restore and drill runs never touch the estate's real backups,
 * and everything they wrote (objects, files, snapshots) can be removed afterwards.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DeleteSnapshotCommand, DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import { DeleteDBSnapshotCommand } from '@aws-sdk/client-rds';
import {
  DeleteBucketLifecycleCommand,
  GetBucketLifecycleConfigurationCommand,
  PutBucketLifecycleConfigurationCommand,
  type LifecycleRule,
} from '@aws-sdk/client-s3';
import type { LoadedInventory } from '../../config/load';
import { AwsClients, awsConnectionFromInventory, s3ClientFor } from '../../activities/aws/clients';
import { rdsSnapshotId } from '../../activities/aws/snapshots';
import { BackupStores } from '../../activities/storage/destinations';
import { manifestKey } from '../../activities/storage/layout';
import type { Activities } from '../../activities';
import { backupTime, type BackupManifest } from '../../contract';
import { serviceBackup } from '../../workflows';
import type { TemporalHarness } from './stack';

export type IsolatedBackups = ReturnType<typeof isolatedBackups>;

/** `extra` edits the inventory after isolation: a service cloned from an isolated one stays isolated. */
export function isolatedBackups(
  base: LoadedInventory,
  extra: (inv: LoadedInventory['inventory']) => void = () => undefined,
  label = 'drbook-test',
) {
  const inventory = structuredClone(base.inventory);
  const prefix = `${label}-${randomUUID().slice(0, 8)}/`;
  const local = mkdtempSync(path.join(tmpdir(), `${label}-`));
  for (const svc of inventory.services) {
    const d = svc.backup?.destinations;
    if (!d) continue;
    if (d.local) d.local = { path: local };
    if (d.primary) d.primary.prefix = prefix;
    if (d.offsite) d.offsite.prefix = prefix;
  }
  extra(inventory);
  const loaded: LoadedInventory = { ...base, inventory };
  const connection = awsConnectionFromInventory(inventory, base.baseDir);
  const stores = new BackupStores(inventory, base.baseDir, connection);
  return {
    loaded,
    local,
    prefix,
    stores,
    /** Delete the EBS snapshots tagged with `backupId` and the RDS snapshots of `service` it named, in both regions. */
    async removeSnapshots(service: string, backupId: string) {
      const aws = new AwsClients(connection);
      try {
        for (const region of [inventory.regions.primary, inventory.regions.dr]) {
          const snaps = await aws.ec2(region).send(
            new DescribeSnapshotsCommand({
              OwnerIds: ['self'],
              Filters: [{ Name: 'tag:drbook:backup-id', Values: [backupId] }],
            }),
          );
          for (const s of snaps.Snapshots ?? [])
            await aws.ec2(region).send(new DeleteSnapshotCommand({ SnapshotId: s.SnapshotId }));
          await aws
            .rds(region)
            .send(new DeleteDBSnapshotCommand({ DBSnapshotIdentifier: rdsSnapshotId(service, backupId) }))
            .catch(() => undefined);
        }
      } finally {
        aws.destroy();
      }
    },
    /**
     * Note the backup buckets' lifecycle rules (a nightly run rewrites them for the isolated prefix);
     * the returned function puts them back as they were.
     */
    async keepLifecycles(): Promise<() => Promise<void>> {
      const buckets = new Map<string, string>();
      for (const svc of inventory.services)
        for (const d of [svc.backup?.destinations.primary, svc.backup?.destinations.offsite])
          if (d) buckets.set(d.bucket, d.region);
      const kept = new Map<string, LifecycleRule[] | null>();
      for (const [bucket, region] of buckets) {
        const s3 = s3ClientFor({ region }, connection);
        // No rules yet is kept as null (deleted again afterwards); a bucket that cannot be read is left alone.
        await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket })).then(
          (r) => kept.set(bucket, r.Rules ?? null),
          (err: Error) => err.name === 'NoSuchLifecycleConfiguration' && kept.set(bucket, null),
        );
        s3.destroy();
      }
      return async () => {
        for (const [bucket, rules] of kept) {
          const s3 = s3ClientFor({ region: buckets.get(bucket)! }, connection);
          await (rules
            ? s3.send(
                new PutBucketLifecycleConfigurationCommand({
                  Bucket: bucket,
                  LifecycleConfiguration: { Rules: rules },
                }),
              )
            : s3.send(new DeleteBucketLifecycleCommand({ Bucket: bucket })));
          s3.destroy();
        }
      };
    },
    /** Remove everything written under the prefix and the directory (every service, every destination). */
    async cleanUp() {
      for (const svc of inventory.services.filter((s) => s.backup)) {
        for (const store of stores.forService(svc.name)) {
          const objects = await store.list(`${svc.name}/`).catch(() => []);
          await store.remove(objects.map((o) => o.key)).catch(() => undefined);
        }
      }
      rmSync(local, { recursive: true, force: true });
      stores.destroy();
    },
  };
}

/**
 * Readiness (and so a drill, and a failover's dry run) wants a recent verified backup of a
 * service with a backup section. Tests that need a ready estate call this first: it takes a real
 * backup through serviceBackup (logical dump only) when the newest verified one is missing or old.
 */
export async function ensureRecentBackup(
  t: TemporalHarness,
  activities: Activities,
  service: string,
  maxAgeSeconds = 6 * 3600,
): Promise<string> {
  const newest = await activities.pickNewestVerifiedBackup({ service }).catch(() => null);
  if (newest && Date.now() - backupTime(newest.backupId) < maxAgeSeconds * 1000) return newest.backupId;
  const result = await t.withWorkers(activities, () =>
    t.client.workflow.execute(serviceBackup, {
      args: [{ service, snapshots: false }],
      taskQueue: t.taskQueue,
      workflowId: `test-backup-${service}-${randomUUID().slice(0, 8)}`,
    }),
  );
  return result.backupId;
}

/**
 * What serviceBackup does after a dump (logical or physical): every copy read back and verified, then the
 * signed manifest written. Returns the manifest, as the restore steps will read it.
 */
export async function publishBackup(
  activities: Activities,
  taken: Awaited<ReturnType<Activities['dumpDatabase']>> | Awaited<ReturnType<Activities['takePhysicalBackup']>>,
  kind: 'logical' | 'physical' = 'logical',
): Promise<BackupManifest> {
  const verified = await Promise.all(
    taken.copies.map((c) =>
      activities.verifyCopy({
        service: taken.service,
        backupId: taken.backupId,
        destination: c.destination,
        size: taken.object.size,
        sha256: taken.object.sha256,
        kind,
        key: taken.object.key,
      }),
    ),
  );
  const manifest: BackupManifest = {
    format: 'drbook-backup/1',
    id: taken.backupId,
    service: taken.service,
    kind,
    startedAt: taken.startedAt,
    endedAt: taken.endedAt,
    source: { server: taken.server, engine: taken.engine, version: taken.version },
    position: taken.position,
    databases: taken.databases,
    tables: 'tables' in taken ? taken.tables : [],
    rowCounts:
      'rowCounts' in taken ? taken.rowCounts : { exact: false, method: 'not counted: a physical copy (mariabackup)' },
    object: taken.object,
    copies: taken.copies.map((c, i) => ({ ...c, ...verified[i] })),
    tools: taken.tools,
    verified: true,
  };
  await activities.writeManifest({ manifest });
  return manifest;
}

/**
 * What someone who can write the backup buckets can do: replace a verified backup's dump in every
 * copy with `edit(sql)` (decompressed, edited, compressed again with zstd). `reseal: true` also
 * rewrites the manifest (through writeManifest, as the backup runbook writes
 * it) with the new size and SHA-256, so the backup still verifies: only what the SQL does can stop
 * it. `reseal: false` leaves the manifest naming the original bytes (a tampered object).
 */
export async function tamperWithDump(
  stores: BackupStores,
  activities: Pick<Activities, 'writeManifest'>,
  service: string,
  backupId: string,
  edit: (sql: string) => string,
  { reseal }: { reseal: boolean },
): Promise<BackupManifest> {
  const first = stores.forService(service)[0];
  const manifest = JSON.parse((await first.get(manifestKey(service, backupId)))!) as BackupManifest;
  const chunks: Buffer[] = [];
  for await (const c of await first.read(manifest.object.key)) chunks.push(c as Buffer);
  const sql = execFileSync('zstd', ['-d', '-q', '-c'], { input: Buffer.concat(chunks), maxBuffer: 1 << 30 });
  const edited = execFileSync('zstd', ['-q', '-c'], { input: edit(sql.toString('latin1')), maxBuffer: 1 << 30 });
  const sha256 = createHash('sha256').update(edited).digest('hex');
  for (const copy of manifest.copies) {
    const store = stores.store(service, copy.destination);
    const w = store.openWriter(manifest.object.key, () => undefined);
    w.stream.end(Buffer.from(edited));
    await w.finish();
    await w.publish();
  }
  if (!reseal) return manifest;
  const resealed: BackupManifest = {
    ...manifest,
    object: { ...manifest.object, size: edited.length, sha256 },
    copies: manifest.copies.map((c) => ({ ...c, size: edited.length, sha256 })),
  };
  for (const copy of manifest.copies)
    await stores.store(service, copy.destination).remove([manifestKey(service, backupId)]);
  await activities.writeManifest({ manifest: resealed });
  return resealed;
}
