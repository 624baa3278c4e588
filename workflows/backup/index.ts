/**
 * serviceBackup({ service }): the runbook for one service —
 *   dump (streamed to every destination) → verify each copy → manifest (the backup now counts)
 *   → physical copy, binlog archive, RDS settings (where configured) → file trees (backup.paths: full, differential
 *   or incremental by policy) → EBS + RDS snapshots, copied to the DR region → retention (GFS) → 3-2-1 / RPO
 *   compliance → people told of a failure or a recovery.
 * A part that fails is recorded and the others go on; the run then fails with BackupFailed naming each.
 * Only names, keys, sizes and checksums pass through history; the data never does.
 *
 * nightlyBackup({ services? }): one child `serviceBackup` per service, `concurrency` at a time; a failed service
 * never stops the others, and the summary names every failure and why. Every `batchSize` services the run
 * continues as new, so no history grows with the fleet.
 */
import { continueAsNew } from '@temporalio/workflow';
import {
  nightlyBackupInput,
  parseInput,
  serviceBackupInput,
  type NightlyBackupProgress,
  type NightlyBackupSummary,
  type ServiceBackupResult,
} from '../../contract';
import { begin } from './context';
import { archiveBinlogs, enforceRdsBackupSettings, logicalBackup, physicalBackup } from './database';
import { backupFileTrees } from './file-trees';
import { assessBackup, finish, tellPeople } from './finish';
import { announceContinuation, backUpBatch, beginNightly, listServicesAndBuckets, summarize } from './nightly';
import { applyRetention } from './retention';
import { applySnapshotRetention, takeSnapshots } from './snapshots';

export async function serviceBackup(rawInput: unknown): Promise<ServiceBackupResult> {
  const b = await begin(parseInput(serviceBackupInput, rawInput));
  const manifest = await logicalBackup(b);
  const physical = await physicalBackup(b);
  const binlogs = await archiveBinlogs(b);
  const rdsBackupSettings = await enforceRdsBackupSettings(b);
  const fileTrees = await backupFileTrees(b);
  const snapshots = await takeSnapshots(b);
  const kept = await applyRetention(b);
  await applySnapshotRetention(b, kept);
  const compliance = assessBackup(b, manifest, kept, binlogs);
  await tellPeople(b, manifest, kept.previousVerifiedId);
  const { retention } = kept;
  return finish(b, { manifest, physical, binlogs, rdsBackupSettings, fileTrees, snapshots, retention, compliance });
}

export async function nightlyBackup(rawInput: unknown, carried?: NightlyBackupProgress): Promise<NightlyBackupSummary> {
  const n = beginNightly(parseInput(nightlyBackupInput, rawInput), carried);
  if (n.progress.remaining === null) await listServicesAndBuckets(n);
  const rest = await backUpBatch(n, serviceBackup);
  if (rest.length) {
    announceContinuation(n, rest);
    await continueAsNew<typeof nightlyBackup>(rawInput, { ...n.progress, remaining: rest });
  }
  return summarize(n);
}
