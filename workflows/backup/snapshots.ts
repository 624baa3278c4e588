/**
 * EBS snapshots of the tagged volumes and an RDS snapshot, each copied to the DR region; independent of the dump,
 * so they are taken even when it failed. Their retention runs per region, the DR copies too.
 */
import type { ServiceBackupResult } from '../../contract';
import { planRetention } from '../backup-policy';
import { failed, type ServiceBackup } from './context';
import type { Retention } from './retention';

export async function takeSnapshots(b: ServiceBackup): Promise<ServiceBackupResult['snapshots']> {
  const snapshots: ServiceBackupResult['snapshots'] = { volumes: [], rds: null };
  if (!b.input.snapshots) b.steps.skip('snapshots', 'snapshots: false in the input');
  if (b.input.snapshots && b.backup.volumeTags) snapshots.volumes = await snapshotVolumes(b, b.backup.volumeTags);
  if (b.input.snapshots && b.svc.rds) snapshots.rds = await snapshotRds(b, b.svc.rds);
  return snapshots;
}

async function snapshotVolumes(
  b: ServiceBackup,
  tags: NonNullable<ServiceBackup['backup']['volumeTags']>,
): Promise<ServiceBackupResult['snapshots']['volumes']> {
  const { service, backupId, steps, plan } = b;
  const { regions } = plan;
  b.status.phase = 'snapshotting volumes';
  try {
    const taken = await steps.run(
      'snapshotVolumes',
      () => b.primarySide.snapshotVolumes({ service, backupId, region: regions.primary, tags }),
      (s) => s.map((v) => `${v.volumeId}→${v.snapshotId}`).join(', '),
    );
    return await steps.run(
      'copyVolumeSnapshotsToDr',
      () =>
        b.drSide.copyVolumeSnapshotsToDr({
          service,
          backupId,
          sourceRegion: regions.primary,
          drRegion: regions.dr,
          snapshots: taken,
        }),
      (c) => c.map((v) => `${v.snapshotId}→${v.drSnapshotId} (${regions.dr})`).join(', '),
    );
  } catch (err) {
    failed(b, 'EBS snapshots', err);
    return [];
  }
}

async function snapshotRds(b: ServiceBackup, rds: NonNullable<ServiceBackup['svc']['rds']>): Promise<string | null> {
  const { service, backupId, steps } = b;
  b.status.phase = 'snapshotting RDS';
  try {
    const snap = await steps.run(
      'snapshotRdsInstance',
      () => b.primarySide.snapshotRdsInstance({ service, backupId, region: rds.region, instance: rds.instance }),
      (s) => `${s.id} (${s.region}) ${s.status}`,
    );
    const copy = await steps.run(
      'copyRdsSnapshotToDr',
      () => b.drSide.copyRdsSnapshotToDr({ source: snap, drRegion: b.plan.regions.dr }),
      (s) => `${s.id} (${s.region}) ${s.status}`,
    );
    return copy.arn;
  } catch (err) {
    failed(b, 'RDS snapshot', err);
    return null;
  }
}

/** Snapshot retention, per region (the DR copies too): the same policy over the backup ids the snapshots carry. */
export async function applySnapshotRetention(b: ServiceBackup, { anchor }: Pick<Retention, 'anchor'>): Promise<void> {
  const { service, backup, plan, steps } = b;
  if (!b.input.snapshots || !(backup.volumeTags || b.svc.rds)) return;
  const sides = [
    [plan.regions.primary, b.primarySide],
    [plan.regions.dr, b.drSide],
  ] as const;
  for (const [region, side] of sides) {
    try {
      const listed = await steps.run(
        `listSnapshotBackups ${region}`,
        () => side.listSnapshotBackups({ service, region }),
        (l) => `${l.backupIds.length} backups: ${l.ebs.length} EBS, ${l.rds.length} RDS snapshots`,
      );
      const decided = planRetention(
        listed.backupIds.map((id) => ({ id, verified: true })),
        backup.retention,
        Date.now(),
        undefined,
        anchor,
      );
      if (decided.remove.length) {
        await steps.run(
          `applySnapshotRetention ${region}`,
          () => side.deleteSnapshotBackups({ service, region, backupIds: decided.remove }),
          (r) => `deleted ${r.deleted.join(', ')}`,
        );
      }
    } catch (err) {
      failed(b, `snapshot retention (${region})`, err);
    }
  }
}
