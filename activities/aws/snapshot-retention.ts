/**
 * Retention of the nightly backup's EBS and RDS snapshots (and their DR-region copies): the
 * same grandfather-father-son policy as the dumps, decided in the workflow (planRetention) over
 * the backup ids the snapshots carry (EBS: the drbook:backup-id tag; RDS: the identifier
 * drbook-<service>-<backupId>). Only snapshots drbook took for the service are ever listed, so
 * nothing else can be deleted; deleting one that is already gone is a success.
 */
import { DeleteSnapshotCommand, DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import { DeleteDBSnapshotCommand, DescribeDBSnapshotsCommand } from '@aws-sdk/client-rds';
import { BACKUP_ID } from '../../contract';
import { aws, awsFailure } from '../errors';
import type { AwsClients } from './clients';
import { rdsSnapshotId } from './snapshots';

const TAG_BACKUP = 'drbook:backup-id';
const TAG_SERVICE = 'drbook:service';

export interface SnapshotBackups {
  region: string;
  /** Backup ids with at least one snapshot in this region, newest first. */
  backupIds: string[];
  ebs: { snapshotId: string; backupId: string }[];
  rds: { id: string; backupId: string }[];
}

export function createSnapshotRetentionActivities(clients: AwsClients) {
  async function list(service: string, region: string): Promise<SnapshotBackups> {
    const ebs: SnapshotBackups['ebs'] = [];
    let token: string | undefined;
    do {
      const out = await aws(`EBS snapshots of ${service} (${region})`, () =>
        clients.ec2(region).send(
          new DescribeSnapshotsCommand({
            OwnerIds: ['self'],
            Filters: [{ Name: `tag:${TAG_SERVICE}`, Values: [service] }],
            NextToken: token,
          }),
        ),
      );
      for (const s of out.Snapshots ?? []) {
        const backupId = s.Tags?.find((t) => t.Key === TAG_BACKUP)?.Value;
        if (backupId && BACKUP_ID.test(backupId)) ebs.push({ snapshotId: s.SnapshotId!, backupId });
      }
      token = out.NextToken;
    } while (token);
    const rds: SnapshotBackups['rds'] = [];
    const prefix = `drbook-${service}-`;
    let marker: string | undefined;
    do {
      const out = await aws(`RDS snapshots of ${service} (${region})`, () =>
        clients.rds(region).send(new DescribeDBSnapshotsCommand({ SnapshotType: 'manual', Marker: marker })),
      );
      for (const s of out.DBSnapshots ?? []) {
        const id = s.DBSnapshotIdentifier ?? '';
        const backupId = id.startsWith(prefix) ? id.slice(prefix.length).toUpperCase() : '';
        if (BACKUP_ID.test(backupId) && rdsSnapshotId(service, backupId) === id) rds.push({ id, backupId });
      }
      marker = out.Marker;
    } while (marker);
    const backupIds = [...new Set([...ebs, ...rds].map((s) => s.backupId))].sort().reverse();
    return { region, backupIds, ebs, rds };
  }

  return {
    /** The backup ids a service's snapshots carry in one region (for planRetention in the workflow). */
    async listSnapshotBackups({ service, region }: { service: string; region: string }): Promise<SnapshotBackups> {
      return list(service, region);
    },

    /** Delete every EBS and RDS snapshot of the given backups in one region. */
    async deleteSnapshotBackups({
      service,
      region,
      backupIds,
    }: {
      service: string;
      region: string;
      backupIds: string[];
    }): Promise<{ region: string; deleted: string[] }> {
      const doomed = new Set(backupIds);
      const found = await list(service, region);
      const deleted: string[] = [];
      for (const s of found.ebs.filter((x) => doomed.has(x.backupId))) {
        try {
          await clients.ec2(region).send(new DeleteSnapshotCommand({ SnapshotId: s.snapshotId }));
        } catch (err) {
          if (!/NotFound/.test((err as Error).name)) throw awsFailure(err, `EBS snapshot ${s.snapshotId} (${region})`);
        }
        deleted.push(s.snapshotId);
      }
      for (const s of found.rds.filter((x) => doomed.has(x.backupId))) {
        try {
          await clients.rds(region).send(new DeleteDBSnapshotCommand({ DBSnapshotIdentifier: s.id }));
        } catch (err) {
          if (!/NotFound/.test((err as Error).name)) throw awsFailure(err, `RDS snapshot ${s.id} (${region})`);
        }
        deleted.push(s.id);
      }
      return { region, deleted };
    },
  };
}

export type SnapshotRetentionActivities = ReturnType<typeof createSnapshotRetentionActivities>;
