/**
 * Snapshots for the nightly backup: EBS snapshots of a service's tagged volumes and an RDS
 * snapshot, each copied to the DR region, plus the RDS automated-backup settings check.
 * Every call is idempotent: snapshots carry the backup id (a tag for EBS, the identifier
 * for RDS), and an existing one is reused rather than taken again. Waits heartbeat.
 */
import {
  CopySnapshotCommand,
  CreateSnapshotCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  type Snapshot,
  type Tag,
} from '@aws-sdk/client-ec2';
import {
  CopyDBSnapshotCommand,
  CreateDBSnapshotCommand,
  DescribeDBInstancesCommand,
  DescribeDBSnapshotsCommand,
  ModifyDBInstanceCommand,
  type DBSnapshot,
} from '@aws-sdk/client-rds';
import { ErrorType } from '../../contract';
import { aws, awsFailure, failure } from '../errors';
import type { AwsClients } from './clients';
import { tagFilters } from './index';
import { heartbeat } from '../process/heartbeat';

export interface VolumeSnapshot {
  volumeId: string;
  snapshotId: string;
  state: string;
}

export interface RdsSnapshot {
  region: string;
  id: string;
  arn: string;
  status: string;
}

export interface RdsBackupSettings {
  instance: string;
  region: string;
  retentionDays: number;
  window: string | null;
  drift: string[];
  enforced: boolean;
}

const POLL_MS = 5000;
const TAG_BACKUP = 'drbook:backup-id';
const TAG_SERVICE = 'drbook:service';
const TAG_SOURCE = 'drbook:source-snapshot';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** RDS snapshot identifiers: letters, digits, single hyphens, starting with a letter. */
export const rdsSnapshotId = (service: string, backupId: string) => `drbook-${service}-${backupId.toLowerCase()}`;

const asTags = (tags: Record<string, string>): Tag[] => Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));

/**
 * `drKmsKeyId`: a KMS key of the DR region. An encrypted snapshot is copied there re-encrypted with it: a KMS key
 * never leaves its region, and AWS refuses a cross-region copy of an encrypted RDS snapshot without one.
 */
/** Snapshots found by their tags, and waited for until they complete. */
function snapshotReads(clients: AwsClients) {
  async function snapshotsTagged(region: string, tags: Record<string, string>): Promise<Snapshot[]> {
    const out = await aws(`EBS snapshots tagged ${JSON.stringify(tags)} (${region})`, () =>
      clients.ec2(region).send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: tagFilters(tags) })),
    );
    return out.Snapshots ?? [];
  }

  /** Poll until every snapshot is completed; an error state fails the step, naming the snapshot. */
  async function waitForSnapshots(region: string, ids: string[]): Promise<Snapshot[]> {
    for (;;) {
      const out = await aws(`EBS snapshots ${ids.join(', ')} (${region})`, () =>
        clients.ec2(region).send(new DescribeSnapshotsCommand({ SnapshotIds: ids })),
      );
      const snaps = out.Snapshots ?? [];
      const failed = snaps.find((s) => s.State === 'error');
      if (failed)
        throw failure(ErrorType.SnapshotFailed, `EBS snapshot ${failed.SnapshotId} (${region}) is in state error`);
      if (snaps.length === ids.length && snaps.every((s) => s.State === 'completed')) return snaps;
      heartbeat({
        region,
        waiting: snaps.filter((s) => s.State !== 'completed').map((s) => `${s.SnapshotId} ${s.Progress}`),
      });
      await sleep(POLL_MS);
    }
  }

  async function dbSnapshot(region: string, id: string): Promise<DBSnapshot | null> {
    try {
      const out = await clients.rds(region).send(new DescribeDBSnapshotsCommand({ DBSnapshotIdentifier: id }));
      return out.DBSnapshots?.[0] ?? null;
    } catch (err) {
      if (/DBSnapshotNotFound/.test((err as Error).name)) return null;
      throw awsFailure(err, `RDS snapshot ${id} (${region})`);
    }
  }

  async function waitForDbSnapshot(region: string, id: string): Promise<DBSnapshot> {
    for (;;) {
      const snap = await dbSnapshot(region, id);
      if (!snap) throw failure(ErrorType.ResourceNotFound, `RDS snapshot ${id} (${region}) disappeared`);
      if (snap.Status === 'available') return snap;
      if (snap.Status === 'failed' || snap.Status === 'error')
        throw failure(ErrorType.SnapshotFailed, `RDS snapshot ${id} (${region}) is ${snap.Status}`);
      heartbeat({ region, id, status: snap.Status, percent: snap.PercentProgress });
      await sleep(POLL_MS);
    }
  }

  return { snapshotsTagged, waitForSnapshots, dbSnapshot, waitForDbSnapshot };
}

/** EBS: the tagged volumes snapshotted, and the snapshots copied to the DR region. */
function createVolumeSnapshotActivities(clients: AwsClients, options: { drKmsKeyId?: string } = {}) {
  const { drKmsKeyId } = options;
  const { snapshotsTagged, waitForSnapshots } = snapshotReads(clients);

  return {
    /** Snapshot every volume carrying the service's backup tags (primary region) and wait for them. */
    async snapshotVolumes({
      service,
      backupId,
      region,
      tags,
    }: {
      service: string;
      backupId: string;
      region: string;
      tags: Record<string, string>;
    }): Promise<VolumeSnapshot[]> {
      const vols = await aws(`EBS volumes tagged ${JSON.stringify(tags)} (${region})`, () =>
        clients.ec2(region).send(new DescribeVolumesCommand({ Filters: tagFilters(tags) })),
      );
      const volumeIds = (vols.Volumes ?? []).map((v) => v.VolumeId!).sort();
      if (volumeIds.length === 0)
        throw failure(ErrorType.ResourceNotFound, `no EBS volume tagged ${JSON.stringify(tags)} in ${region}`);
      const existing = await snapshotsTagged(region, { [TAG_BACKUP]: backupId, [TAG_SERVICE]: service });
      const ids: string[] = [];
      for (const volumeId of volumeIds) {
        const found = existing.find((s) => s.VolumeId === volumeId && s.State !== 'error');
        if (found) {
          ids.push(found.SnapshotId!);
          continue;
        }
        const created = await aws(`EBS volume ${volumeId} (${region})`, () =>
          clients.ec2(region).send(
            new CreateSnapshotCommand({
              VolumeId: volumeId,
              Description: `drbook ${service} backup ${backupId}`,
              TagSpecifications: [
                { ResourceType: 'snapshot', Tags: asTags({ [TAG_BACKUP]: backupId, [TAG_SERVICE]: service }) },
              ],
            }),
          ),
        );
        ids.push(created.SnapshotId!);
      }
      const done = await waitForSnapshots(region, ids);
      return done
        .map((s) => ({ volumeId: s.VolumeId!, snapshotId: s.SnapshotId!, state: s.State! }))
        .sort((a, b) => a.volumeId.localeCompare(b.volumeId));
    },

    /** Copy volume snapshots into the DR region (called there: CopySnapshot runs in the destination region). */
    async copyVolumeSnapshotsToDr({
      service,
      backupId,
      sourceRegion,
      drRegion,
      snapshots,
    }: {
      service: string;
      backupId: string;
      sourceRegion: string;
      drRegion: string;
      snapshots: VolumeSnapshot[];
    }): Promise<{ volumeId: string; snapshotId: string; drSnapshotId: string }[]> {
      const existing = await snapshotsTagged(drRegion, { [TAG_BACKUP]: backupId, [TAG_SERVICE]: service });
      const copies: { volumeId: string; snapshotId: string; drSnapshotId: string }[] = [];
      // Encrypted sources are copied re-encrypted with the DR region's key (else AWS picks that region's aws/ebs).
      const toCopy = snapshots.filter(
        (s) => !existing.some((c) => c.Tags?.some((t) => t.Key === TAG_SOURCE && t.Value === s.snapshotId)),
      );
      const encrypted = new Set(
        toCopy.length && drKmsKeyId
          ? (
              await aws(`EBS snapshots in ${sourceRegion}`, () =>
                clients
                  .ec2(sourceRegion)
                  .send(new DescribeSnapshotsCommand({ SnapshotIds: toCopy.map((s) => s.snapshotId) })),
              )
            ).Snapshots?.filter((s) => s.Encrypted).map((s) => s.SnapshotId)
          : [],
      );
      for (const s of snapshots) {
        const found = existing.find(
          (c) => c.Tags?.some((t) => t.Key === TAG_SOURCE && t.Value === s.snapshotId) && c.State !== 'error',
        );
        const drSnapshotId =
          found?.SnapshotId ??
          (
            await aws(`EBS snapshot ${s.snapshotId} copy to ${drRegion}`, () =>
              clients.ec2(drRegion).send(
                new CopySnapshotCommand({
                  SourceRegion: sourceRegion,
                  SourceSnapshotId: s.snapshotId,
                  ...(encrypted.has(s.snapshotId) ? { Encrypted: true, KmsKeyId: drKmsKeyId } : {}),
                  Description: `drbook ${service} backup ${backupId} (from ${sourceRegion})`,
                  TagSpecifications: [
                    {
                      ResourceType: 'snapshot',
                      Tags: asTags({ [TAG_BACKUP]: backupId, [TAG_SERVICE]: service, [TAG_SOURCE]: s.snapshotId }),
                    },
                  ],
                }),
              ),
            )
          ).SnapshotId!;
        copies.push({ volumeId: s.volumeId, snapshotId: s.snapshotId, drSnapshotId });
      }
      await waitForSnapshots(
        drRegion,
        copies.map((c) => c.drSnapshotId),
      );
      return copies;
    },
  };
}

/** RDS: the instance snapshotted, the snapshot copied to the DR region, the backup settings enforced. */
function createRdsSnapshotActivities(clients: AwsClients, options: { drKmsKeyId?: string } = {}) {
  const { drKmsKeyId } = options;
  const { dbSnapshot, waitForDbSnapshot } = snapshotReads(clients);

  return {
    /** A manual RDS snapshot named after the backup, waited for until available. */
    async snapshotRdsInstance({
      service,
      backupId,
      region,
      instance,
    }: {
      service: string;
      backupId: string;
      region: string;
      instance: string;
    }): Promise<RdsSnapshot> {
      const id = rdsSnapshotId(service, backupId);
      if (!(await dbSnapshot(region, id))) {
        await aws(`RDS instance ${instance} (${region})`, () =>
          clients.rds(region).send(
            new CreateDBSnapshotCommand({
              DBInstanceIdentifier: instance,
              DBSnapshotIdentifier: id,
              Tags: asTags({ [TAG_BACKUP]: backupId, [TAG_SERVICE]: service }),
            }),
          ),
        );
      }
      const snap = await waitForDbSnapshot(region, id);
      return { region, id, arn: snap.DBSnapshotArn!, status: snap.Status! };
    },

    /** Copy the RDS snapshot into the DR region (called there), tags included. */
    async copyRdsSnapshotToDr({ source, drRegion }: { source: RdsSnapshot; drRegion: string }): Promise<RdsSnapshot> {
      if (!(await dbSnapshot(drRegion, source.id))) {
        const encrypted = (await dbSnapshot(source.region, source.id))?.Encrypted === true;
        if (encrypted && !drKmsKeyId)
          throw failure(
            ErrorType.NotConfigured,
            `RDS snapshot ${source.id} (${source.region}) is encrypted: copying it to ${drRegion} needs a KMS key ` +
              `of ${drRegion} (regions.drKmsKeyId in the inventory); AWS refuses the copy without one`,
            { snapshot: source.id, region: drRegion },
          );
        await aws(`RDS snapshot ${source.id} copy to ${drRegion}`, () =>
          clients.rds(drRegion).send(
            new CopyDBSnapshotCommand({
              // Cross-region: the source is named by ARN; an encrypted one is re-encrypted with the DR region's key.
              SourceDBSnapshotIdentifier: source.arn,
              TargetDBSnapshotIdentifier: source.id,
              ...(encrypted ? { KmsKeyId: drKmsKeyId } : {}),
              CopyTags: true,
            }),
          ),
        );
      }
      const snap = await waitForDbSnapshot(drRegion, source.id);
      return { region: drRegion, id: source.id, arn: snap.DBSnapshotArn!, status: snap.Status! };
    },

    /**
     * RDS automated backups: compare the retention period and backup window with what the
     * inventory asks for, report the drift, and (enforce) fix it with ModifyDBInstance.
     */
    async enforceRdsBackupSettings({
      region,
      instance,
      retentionDays,
      window,
      enforce,
    }: {
      region: string;
      instance: string;
      retentionDays: number;
      window?: string;
      enforce: boolean;
    }): Promise<RdsBackupSettings> {
      const resource = `RDS instance ${instance} (${region})`;
      const out = await aws(resource, () =>
        clients.rds(region).send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: instance })),
      );
      const db = out.DBInstances?.[0];
      if (!db) throw failure(ErrorType.ResourceNotFound, `${resource} does not exist`);
      const drift: string[] = [];
      if ((db.BackupRetentionPeriod ?? 0) !== retentionDays)
        drift.push(`backup retention ${db.BackupRetentionPeriod ?? 0} d, inventory says ${retentionDays} d`);
      if (window && db.PreferredBackupWindow !== window)
        drift.push(`backup window ${db.PreferredBackupWindow ?? 'unset'}, inventory says ${window}`);
      if (drift.length && enforce) {
        await aws(resource, () =>
          clients.rds(region).send(
            new ModifyDBInstanceCommand({
              DBInstanceIdentifier: instance,
              BackupRetentionPeriod: retentionDays,
              PreferredBackupWindow: window,
              ApplyImmediately: true,
            }),
          ),
        );
      }
      return {
        instance,
        region,
        retentionDays: db.BackupRetentionPeriod ?? 0,
        window: db.PreferredBackupWindow ?? null,
        drift,
        enforced: drift.length > 0 && enforce,
      };
    },
  };
}

export function createSnapshotActivities(clients: AwsClients, options: { drKmsKeyId?: string } = {}) {
  return {
    ...createVolumeSnapshotActivities(clients, options),
    ...createRdsSnapshotActivities(clients, options),
  };
}

export type SnapshotActivities = ReturnType<typeof createSnapshotActivities>;
