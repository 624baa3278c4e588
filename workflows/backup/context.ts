/** What every step of a service's backup reads: its input, the service's plan, the run's steps and status. */
import { ApplicationFailure, setHandler } from '@temporalio/workflow';
import type { z } from 'zod';
import { ErrorType, statusQuery, type BackupStatus, type serviceBackupInput, type ServicePlan } from '../../contract';
import { backupIdAt } from '../backup-policy';
import { planFor } from '../plan';
import { activities, backupBookkeeping, backupStreams, drActivities, snapshotCopies } from '../activity-options';
import { gateless, messageOf, publishBackupPage, Steps, typeOf } from './status';

// Streaming steps heartbeat every few seconds; a dead worker is noticed in two minutes, not hours.
export const streaming = activities(backupStreams);
export const bookkeeping = activities(backupBookkeeping);

export interface ServiceBackup {
  input: z.output<typeof serviceBackupInput>;
  plan: ServicePlan;
  svc: ServicePlan['service'];
  /** The service's backup section (a service without one is refused before any step). */
  backup: NonNullable<ServicePlan['service']['backup']>;
  service: string;
  backupId: string;
  startedMs: number;
  steps: Steps;
  status: BackupStatus;
  /** Snapshots and their copies: taken in the primary region, copied by the DR side's workers. */
  primarySide: ReturnType<typeof activities>;
  drSide: ReturnType<typeof drActivities>;
}

/** The run's status and page, then the service's plan: a service without a backup section is refused. */
export async function begin(input: ServiceBackup['input']): Promise<ServiceBackup> {
  const startedMs = Date.now();
  const backupId = input.backupId ?? backupIdAt(startedMs);
  const steps = new Steps();
  const status: BackupStatus = {
    runbook: 'serviceBackup',
    service: input.service,
    phase: 'planning',
    steps: steps.list,
    ...gateless(),
    backupId,
    compliance: [],
    failures: [],
  };
  setHandler(statusQuery, () => status);
  steps.onChange = () => publishBackupPage(status);
  publishBackupPage(status);

  const plan = await planFor(input.service);
  status.targets = plan.targets;
  status.rtoClock.leftSeconds = plan.targets.rtoSeconds;
  const svc = plan.service;
  const backup = svc.backup;
  if (!backup) {
    throw ApplicationFailure.create({
      type: ErrorType.NotConfigured,
      message: `service ${svc.name} has no backup section in the inventory`,
      nonRetryable: true,
    });
  }
  const primarySide = activities(snapshotCopies);
  const drSide = drActivities(plan, snapshotCopies);
  return { input, plan, svc, backup, service: svc.name, backupId, startedMs, steps, status, primarySide, drSide };
}

/** A part of the backup failed: recorded with the step and its cause; the other parts go on. */
export function failed(b: ServiceBackup, step: string, err: unknown): void {
  b.status.failures.push({ service: b.service, type: typeOf(err), reason: `${step}: ${messageOf(err)}` });
}
