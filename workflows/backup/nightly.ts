/**
 * The fleet's nightly backup: one child `serviceBackup` per service, `concurrency` at a time; a failed service never
 * stops the others, and the summary names every failure and why.
 */
import { ActivityFailure, ApplicationFailure, executeChild, setHandler, workflowInfo } from '@temporalio/workflow';
import type { z } from 'zod';
import {
  statusQuery,
  type BackupCompliance,
  type BackupStatus,
  type nightlyBackupInput,
  type NightlyBackupProgress,
  type NightlyBackupSummary,
  type ServiceBackupResult,
  type StepRecord,
} from '../../contract';
import { backupIdAt } from '../backup-policy';
import { bookkeeping } from './context';
import { gateless, iso, messageOf, publishBackupPage, Steps, typeOf } from './status';

export interface NightlyBackup {
  input: z.output<typeof nightlyBackupInput>;
  progress: NightlyBackupProgress;
  steps: Steps;
  compliance: BackupCompliance[];
  status: BackupStatus;
}

/** This run's status and page, with the progress a continued run was handed (none: the night starts here). */
export function beginNightly(input: NightlyBackup['input'], carried?: NightlyBackupProgress): NightlyBackup {
  const progress: NightlyBackupProgress = carried
    ? { ...carried, runs: carried.runs + 1 }
    : { backupId: backupIdAt(Date.now()), remaining: null, requested: 0, succeeded: [], failed: [], runs: 1 };
  const steps = new Steps();
  const compliance: BackupCompliance[] = [];
  const status: BackupStatus = {
    runbook: 'nightlyBackup',
    service: input.services?.join(',') ?? '*',
    phase: 'listing services',
    steps: steps.list,
    ...gateless(),
    backupId: progress.backupId,
    compliance,
    failures: progress.failed,
  };
  setHandler(statusQuery, () => status);
  steps.onChange = () => publishBackupPage(status);
  publishBackupPage(status);
  return { input, progress, steps, compliance, status };
}

/** The night's services (an unknown one fails the run before anything is backed up), then the buckets' lifecycles. */
export async function listServicesAndBuckets(n: NightlyBackup): Promise<void> {
  const { progress } = n;
  try {
    progress.remaining = await bookkeeping.listBackedUpServices({ services: n.input.services });
  } catch (err) {
    if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) throw err.cause;
    throw err;
  }
  progress.requested = progress.remaining.length;
  // Once per night, before the fan-out: one call per bucket, so services sharing a bucket never race.
  try {
    await n.steps.run(
      'applyArchiveLifecycles',
      () => bookkeeping.applyArchiveLifecycles(),
      (r) => r.map((b) => `${b.bucket} (${b.region}) ${b.changed ? 'updated' : 'unchanged'}`).join(', '),
    );
  } catch (err) {
    progress.failed.push({ service: '(buckets)', type: typeOf(err), reason: `archive lifecycle: ${messageOf(err)}` });
  }
}

/** One child per service of this run's batch, `concurrency` at a time; the services left for the next run. */
export async function backUpBatch(
  n: NightlyBackup,
  serviceBackup: (input: unknown) => Promise<ServiceBackupResult>,
): Promise<string[]> {
  const { input } = n;
  const remaining = n.progress.remaining ?? [];
  const batch = remaining.slice(0, input.batchSize);
  n.status.phase = `backing up ${batch.length} services, ${input.concurrency} at a time`;
  const queue = [...batch];
  const running = new Set<Promise<void>>();
  while (queue.length || running.size) {
    while (queue.length && running.size < input.concurrency) {
      const p: Promise<void> = backUp(n, queue.shift()!, serviceBackup).finally(() => running.delete(p));
      running.add(p);
    }
    await Promise.race(running);
  }
  return remaining.slice(input.batchSize);
}

async function backUp(
  n: NightlyBackup,
  service: string,
  serviceBackup: (input: unknown) => Promise<ServiceBackupResult>,
): Promise<void> {
  const { input, progress, steps } = n;
  const rec: StepRecord = { name: service, state: 'running', startedAt: iso(Date.now()), attempts: 1 };
  steps.list.push(rec);
  steps.onChange();
  try {
    const r = await executeChild(serviceBackup, {
      args: [
        { service, backupId: progress.backupId, snapshots: input.snapshots, intervalSeconds: input.intervalSeconds },
      ],
      workflowId: `backup-${service}-${progress.backupId}`,
      staticSummary: `backup ${service} ${progress.backupId}: part of ${workflowInfo().workflowId}`,
    });
    rec.state = 'succeeded';
    rec.detail =
      `${r.size} bytes, ${r.copies.length} copies, 3-2-1 ${r.compliance.rule321 ? 'yes' : 'no'}, ` +
      `RPO ${r.compliance.rpoMet ? 'met' : 'missed'}`;
    n.compliance.push(r.compliance);
    progress.succeeded.push({
      service,
      size: r.size,
      durationSeconds: r.durationSeconds,
      rule321: r.compliance.rule321,
      rpoMet: r.compliance.rpoMet,
    });
  } catch (err) {
    rec.state = 'failed';
    rec.detail = messageOf(err);
    progress.failed.push({ service, type: typeOf(err), reason: messageOf(err) });
  } finally {
    rec.endedAt = iso(Date.now());
    steps.onChange();
  }
}

/** More services than one run's batch: the run continues as new with them, so no history grows with the fleet. */
export function announceContinuation(n: NightlyBackup, rest: string[]): void {
  n.status.phase = `continuing with ${rest.length} more services`;
  publishBackupPage(n.status);
}

/** The night's summary: every service backed up or failed, and why. */
export function summarize(n: NightlyBackup): NightlyBackupSummary {
  const { progress, status } = n;
  status.phase = progress.failed.length ? `done, ${progress.failed.length} failed` : 'done';
  publishBackupPage(
    status,
    `${progress.succeeded.length} of ${progress.requested} services backed up` +
      (progress.failed.length ? `, ${progress.failed.length} FAILED` : ''),
  );
  return {
    backupId: progress.backupId,
    requested: progress.requested,
    succeeded: progress.succeeded,
    failed: progress.failed,
    runs: progress.runs,
  };
}
