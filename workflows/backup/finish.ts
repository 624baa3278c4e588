/**
 * The end of a service's backup: 3-2-1 and the data-loss window against the tier's RPO (in status, result and
 * metrics), people told of a refused source, a failure or a recovery, then the result or BackupFailed.
 */
import { ApplicationFailure, metricMeter, patched, workflowInfo } from '@temporalio/workflow';
import { ErrorType, type BackupCompliance, type BackupManifest, type ServiceBackupResult } from '../../contract';
import { runbookActivities } from '../activity-options';
import { assessCompliance } from '../backup-policy';
import { recordBackupAge } from '../metrics';
import { notifyPeople } from '../steps';
import { bookkeeping, type ServiceBackup } from './context';
import type { Retention } from './retention';
import { messageOf, publishBackupPage, typeOf } from './status';

/** Failures that mean the live estate refused the source (contract/failures.ts), alerted at once. */
const REFUSED_SOURCE: string[] = [ErrorType.SourceNotWritable, ErrorType.SplitBrain, ErrorType.TopologyUnknown];

export function assessBackup(
  b: ServiceBackup,
  manifest: BackupManifest | null,
  kept: Retention,
  binlogs: ServiceBackupResult['binlogs'],
): BackupCompliance {
  const { service, svc, plan, status } = b;
  const compliance = assessCompliance({
    service,
    tier: svc.tier,
    offlineCopies: kept.offlineCopies,
    copies: manifest?.copies ?? [],
    backupId: manifest ? b.backupId : null,
    endedAtMs: manifest ? Date.parse(manifest.endedAt) : null,
    previousVerifiedId: kept.previousVerifiedId,
    nowMs: Date.now(),
    rpoSeconds: plan.targets.rpoSeconds,
    intervalSeconds: b.input.intervalSeconds,
    newestBinlogClosedAtMs: binlogs?.newestClosedAt ? Date.parse(binlogs.newestClosedAt) : null,
  });
  status.compliance = [compliance];
  status.measured.rpoSeconds = compliance.exposureSeconds;
  const tags = { service, tier: svc.tier };
  metricMeter.createGauge('drbook_backup_rule_321', 'int').set(compliance.rule321 ? 1 : 0, tags);
  metricMeter.createGauge('drbook_backup_rule_3211', 'int').set(compliance.rule3211 ? 1 : 0, tags);
  metricMeter.createGauge('drbook_backup_rpo_met', 'int').set(compliance.rpoMet ? 1 : 0, tags);
  if (compliance.exposureSeconds !== null)
    metricMeter.createGauge('drbook_backup_exposure_seconds', 'int').set(compliance.exposureSeconds, tags);
  metricMeter.createGauge('drbook_backup_bytes', 'int').set(manifest?.object.size ?? 0, tags);
  if (compliance.ageSeconds !== null) recordBackupAge(service, compliance.ageSeconds);
  metricMeter.createCounter('drbook_backup_failures').add(status.failures.length, tags);
  return compliance;
}

/**
 * A source refused for its live role (fenced, no writer, split) is an estate problem, not a flaky backup: said at
 * once. Any other failure (a destination that refused the copy, a failed verify, snapshot, retention) tells people
 * now, with each step and its cause; a success after a failed run tells them it recovered.
 */
export async function tellPeople(
  b: ServiceBackup,
  manifest: BackupManifest | null,
  previousVerifiedId: string | null,
): Promise<void> {
  const { service, backupId, plan, status } = b;
  const alertFailed = (err: unknown) =>
    status.failures.push({ service, type: typeOf(err), reason: `alert: ${messageOf(err)}` });
  const refused = status.failures.filter((f) => REFUSED_SOURCE.includes(f.type));
  if (refused.length && patched('backup-refused-source-alert')) {
    await notifyPeople(
      plan,
      runbookActivities(plan),
      `[drbook] ${service} backup ${backupId} REFUSED its source`,
      refused.map((f) => `${f.reason} [${f.type}]`).join('\n'),
      'backup-source-refused',
    ).catch(alertFailed);
  }
  const others = status.failures.filter((f) => !REFUSED_SOURCE.includes(f.type));
  if (others.length && patched('backup-failure-alert')) {
    const before = previousVerifiedId
      ? [`The newest verified backup of ${service} before this run: ${previousVerifiedId}.`]
      : [];
    await notifyPeople(
      plan,
      runbookActivities(plan),
      `[drbook] ${service} backup ${backupId} FAILED`,
      [...others.map((f) => `${f.reason} [${f.type}]`), ...before].join('\n'),
      'backup-failed',
    ).catch(alertFailed);
  } else if (!status.failures.length && patched('backup-recovery-notice')) {
    await noticeRecovery(b, manifest);
  }
}

/** The run before this one failed: people hear that this one verified. */
async function noticeRecovery(b: ServiceBackup, manifest: BackupManifest | null): Promise<void> {
  const { service, backupId, plan } = b;
  const previous = await bookkeeping.previousServiceBackup({ service, workflowId: workflowInfo().workflowId });
  if (previous?.status === 'FAILED')
    await notifyPeople(
      plan,
      runbookActivities(plan),
      `[drbook] ${service} backup recovered: ${backupId} verified`,
      `${backupId} of ${service} is verified in ${manifest?.copies.length ?? 0} copies; the run before it ` +
        `(${previous.workflowId}, ${previous.closedAt ?? 'unknown time'}) failed: ` +
        `${previous.reason ?? 'unknown cause'}.`,
      'backup-recovered',
    ).catch(() => undefined);
}

export type BackupParts = Omit<
  ServiceBackupResult,
  'service' | 'backupId' | 'manifestKey' | 'size' | 'uncompressedSize' | 'sha256' | 'copies' | 'durationSeconds'
> & { manifest: BackupManifest | null };

/** The run's result; with any failure, BackupFailed naming each (the result in its details). */
export function finish(b: ServiceBackup, parts: BackupParts): ServiceBackupResult {
  const { service, backupId, status } = b;
  const { manifest, fileTrees, ...rest } = parts;
  const result: ServiceBackupResult = {
    service,
    backupId,
    manifestKey: manifest ? `${service}/logical/${backupId}/manifest.json` : '',
    size: manifest?.object.size ?? 0,
    uncompressedSize: manifest?.object.uncompressedSize ?? 0,
    sha256: manifest?.object.sha256 ?? '',
    copies: (manifest?.copies ?? []).map((c) => ({ destination: c.destination, location: c.location })),
    snapshots: rest.snapshots,
    retention: rest.retention,
    compliance: rest.compliance,
    durationSeconds: Math.round((Date.now() - b.startedMs) / 1000),
    physical: rest.physical,
    binlogs: rest.binlogs,
    rdsBackupSettings: rest.rdsBackupSettings,
    ...(fileTrees?.length ? { fileTrees } : {}),
  };
  if (status.failures.length) {
    status.phase = 'failed';
    publishBackupPage(status, `FAILED (${status.failures.length} failures)`);
    const failures = status.failures.map((f) => `${f.reason} [${f.type}]`).join('; ');
    throw ApplicationFailure.create({
      type: ErrorType.BackupFailed,
      message: `${service} backup ${backupId} failed: ${failures}`,
      nonRetryable: true,
      details: [result],
    });
  }
  status.phase = 'done';
  publishBackupPage(status, `done: ${backupId} verified in ${result.copies.length} copies`);
  return result;
}
