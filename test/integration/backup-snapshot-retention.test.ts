/**
 * Snapshot retention in the AWS emulator: EBS and RDS snapshots of a synthetic service with a
 * month of backup ids; listing finds exactly drbook's snapshots of that service, the GFS policy
 * decides, deleting removes exactly what it decided (EBS and RDS alike), and the newest stays.
 * Everything the test creates is removed.
 */
import { randomUUID } from 'node:crypto';
import {
  CreateSnapshotCommand,
  CreateVolumeCommand,
  DeleteSnapshotCommand,
  DeleteVolumeCommand,
} from '@aws-sdk/client-ec2';
import { CreateDBSnapshotCommand, DeleteDBSnapshotCommand } from '@aws-sdk/client-rds';
import { AwsClients, awsConnectionFromInventory } from '../../activities/aws/clients';
import { createSnapshotRetentionActivities } from '../../activities/aws/snapshot-retention';
import { rdsSnapshotId } from '../../activities/aws/snapshots';
import { backupIdAt, planRetention } from '../../workflows/backup-policy';
import { sandbox } from '../helpers/stack';

const base = sandbox();
const region = base.inventory.regions.primary;
const rdsInstance = base.inventory.services.find((s) => s.rds)!.rds!.instance;

describe('snapshot retention', () => {
  const clients = new AwsClients(awsConnectionFromInventory(base.inventory, base.baseDir));
  const activities = createSnapshotRetentionActivities(clients);
  const service = `ret-${randomUUID().slice(0, 8)}`;
  const now = Date.now();
  // 20 nightly backups, newest first.
  const ids = Array.from({ length: 20 }, (_, i) => backupIdAt(now - i * 86400000));
  let volumeId = '';
  const ebs = new Map<string, string>();

  beforeAll(async () => {
    const vol = await clients.ec2(region).send(new CreateVolumeCommand({ AvailabilityZone: `${region}a`, Size: 1 }));
    volumeId = vol.VolumeId!;
    for (const id of ids) {
      const s = await clients.ec2(region).send(
        new CreateSnapshotCommand({
          VolumeId: volumeId,
          TagSpecifications: [
            {
              ResourceType: 'snapshot',
              Tags: [
                { Key: 'drbook:backup-id', Value: id },
                { Key: 'drbook:service', Value: service },
              ],
            },
          ],
        }),
      );
      ebs.set(id, s.SnapshotId!);
      await clients.rds(region).send(
        new CreateDBSnapshotCommand({
          DBInstanceIdentifier: rdsInstance,
          DBSnapshotIdentifier: rdsSnapshotId(service, id),
        }),
      );
    }
  });

  afterAll(async () => {
    for (const [, snap] of ebs)
      await clients
        .ec2(region)
        .send(new DeleteSnapshotCommand({ SnapshotId: snap }))
        .catch(() => undefined);
    for (const id of ids)
      await clients
        .rds(region)
        .send(new DeleteDBSnapshotCommand({ DBSnapshotIdentifier: rdsSnapshotId(service, id) }))
        .catch(() => undefined);
    await clients
      .ec2(region)
      .send(new DeleteVolumeCommand({ VolumeId: volumeId }))
      .catch(() => undefined);
    clients.destroy();
  });

  test('keeps what the GFS policy says (the newest always), deletes the rest, EBS and RDS alike', async () => {
    const listed = await activities.listSnapshotBackups({ service, region });
    expect(listed.backupIds).toEqual(ids);
    expect(listed.ebs).toHaveLength(20);
    expect(listed.rds).toHaveLength(20);

    const policy = { daily: 7, weekly: 4, monthly: 12 };
    const decided = planRetention(
      listed.backupIds.map((id) => ({ id, verified: true })),
      policy,
      now,
    );
    expect(decided.remove.length).toBeGreaterThan(0);
    expect(decided.remove).not.toContain(ids[0]);
    const { deleted } = await activities.deleteSnapshotBackups({ service, region, backupIds: decided.remove });
    expect(deleted).toHaveLength(decided.remove.length * 2);

    const after = await activities.listSnapshotBackups({ service, region });
    expect(after.backupIds).toEqual(decided.keep.map((k) => k.id));
    expect(after.rds.map((r) => r.backupId).sort()).toEqual(after.ebs.map((e) => e.backupId).sort());
    // Deleting again is a success (already gone).
    await expect(activities.deleteSnapshotBackups({ service, region, backupIds: decided.remove })).resolves.toEqual({
      region,
      deleted: [],
    });
  });
});

describe('RDS snapshots past the first page', () => {
  // AWS answers DescribeDBSnapshots 100 at a time (the stack's moto too: scripts/moto-server.py); a region with more
  // manual snapshots than that is ordinary, and a service's snapshots can sit on any page.
  const clients = new AwsClients(awsConnectionFromInventory(base.inventory, base.baseDir));
  const activities = createSnapshotRetentionActivities(clients);
  const tag = randomUUID().slice(0, 8);
  const service = `page-${tag}`;
  const fillers = Array.from({ length: 100 }, (_, i) => `drbook-filler-${tag}-${i}`);
  const ids = Array.from({ length: 3 }, (_, i) => backupIdAt(Date.now() - i * 86400000));
  const create = (id: string) =>
    clients
      .rds(region)
      .send(new CreateDBSnapshotCommand({ DBInstanceIdentifier: rdsInstance, DBSnapshotIdentifier: id }));

  beforeAll(async () => {
    // Fillers first: the service's snapshots come after at least 100 others, so never on the first page.
    for (const id of fillers) await create(id);
    for (const id of ids) await create(rdsSnapshotId(service, id));
  });

  afterAll(async () => {
    for (const id of [...fillers, ...ids.map((b) => rdsSnapshotId(service, b))])
      await clients
        .rds(region)
        .send(new DeleteDBSnapshotCommand({ DBSnapshotIdentifier: id }))
        .catch(() => undefined);
    clients.destroy();
  });

  test('are listed and deleted by retention', async () => {
    const listed = await activities.listSnapshotBackups({ service, region });
    expect(listed.rds.map((r) => r.backupId)).toEqual(ids);
    const { deleted } = await activities.deleteSnapshotBackups({ service, region, backupIds: ids.slice(1) });
    expect(deleted.sort()).toEqual(
      ids
        .slice(1)
        .map((b) => rdsSnapshotId(service, b))
        .sort(),
    );
    expect((await activities.listSnapshotBackups({ service, region })).backupIds).toEqual([ids[0]]);
  });
});
