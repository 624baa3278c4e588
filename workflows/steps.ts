/**
 * Step plumbing the runbooks share: people notifications, approval deadlines, steps run together.
 */
import { workflowInfo } from '@temporalio/workflow';
import type { ServicePlan } from '../contract';
import type { RunbookActivities } from './activity-options';

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

export const round1 = (n: number) => Math.round(n * 10) / 10;

/**
 * Run steps together; wait for every one of them, then fail with the first failure (none is left running unreported).
 */
export async function allSteps(steps: (Promise<unknown> | null | void)[]): Promise<void> {
  const results = await Promise.allSettled(steps.filter((s): s is Promise<unknown> => s instanceof Promise));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
