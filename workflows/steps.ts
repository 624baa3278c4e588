/**
 * Step plumbing the runbooks share: people notifications (a stopped run's included), approval deadlines, steps run
 * together.
 */
import { workflowInfo } from '@temporalio/workflow';
import { DrOutcome, type ServicePlan } from '../contract';
import type { RunbookActivities } from './activity-options';
import type { RunbookRun } from './runbook';

/** Each approval deadline is a quarter of the RTO budget left (at least 2 minutes): reminder plus abort use half. */
export function approvalTimeoutMs(rtoSeconds: number, clockStart: number): number {
  const leftMs = rtoSeconds * 1000 - (Date.now() - clockStart);
  return Math.max(120_000, Math.floor(leftMs / 4));
}

export async function notifyPeople(
  plan: ServicePlan,
  acts: Pick<RunbookActivities, 'notifications'>,
  subject: string,
  message: string,
  event: string,
): Promise<void> {
  const key = `${workflowInfo().workflowId}/${workflowInfo().runId}/${event}`;
  await Promise.all(
    plan.notificationTargets.map((target) =>
      acts.notifications.notifyTarget({ target, subject, message, idempotencyKey: `${key}/${target}` }),
    ),
  );
}

/**
 * A runbook that stopped (after its compensations ran): its page and search attributes say failed, and people hear
 * which step failed and why. A notification that cannot be sent does not hide the run's own failure.
 */
export async function notifyStopped(
  run: RunbookRun,
  plan: ServicePlan,
  acts: Pick<RunbookActivities, 'notifications'>,
  err: unknown,
): Promise<void> {
  run.phase = 'failed';
  run.tag([{ key: DrOutcome, value: 'failed' }]);
  await notifyPeople(
    plan,
    acts,
    `${run.runbook.toUpperCase()} OF ${plan.service.name} STOPPED`,
    `${(err as Error).message}\nsteps: ${run.steps.map((s) => `${s.name}=${s.state}`).join(', ')}`,
    'stopped',
  ).catch(() => undefined);
}

export const round1 = (n: number) => Math.round(n * 10) / 10;

/**
 * Run steps together; wait for every one of them, then fail with the first failure (none is left running unreported).
 */
export async function allSteps(steps: (Promise<unknown> | null | void)[]): Promise<void> {
  const results = await Promise.allSettled(steps.filter((s): s is Promise<unknown> => s instanceof Promise));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
