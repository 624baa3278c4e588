/**
 * Step plumbing the failover and failback runbooks share: activity proxies per kind of
 * step (all on the DR side's task queue), people notifications, approval deadlines.
 */
import type { RetryPolicy } from '@temporalio/common';
import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { ServicePlan } from '../activities/inventory';
import type { Activities } from '../workers/adapters';
import { drTaskQueue, NON_RETRYABLE } from './contract';

const retry = (maximumAttempts: number): RetryPolicy => ({
  maximumAttempts,
  initialInterval: '1s',
  backoffCoefficient: 2,
  nonRetryableErrorTypes: NON_RETRYABLE,
});

export type StepActivities = ReturnType<typeof drSteps>;

/** Activities per kind of step, all on the DR side's task queue (the primary region may be gone). */
export function drSteps(plan: ServicePlan) {
  const taskQueue = drTaskQueue(workflowInfo().taskQueue, plan.regions.dr);
  return {
    quick: proxyActivities<Activities>({ taskQueue, startToCloseTimeout: '30s', retry: retry(3) }),
    fence: proxyActivities<Activities>({ taskQueue, startToCloseTimeout: '20s', retry: retry(2) }),
    // Changes heartbeat: a worker that dies mid-change (promote, VIP) is noticed in 15 s, not after
    // the 2 minutes its retry would otherwise wait (test/chaos/worker-kill.test.ts).
    change: proxyActivities<Activities>({
      taskQueue,
      startToCloseTimeout: '2m',
      heartbeatTimeout: '15s',
      retry: retry(5),
    }),
    wait: proxyActivities<Activities>({
      taskQueue,
      startToCloseTimeout: '20m',
      heartbeatTimeout: '30s',
      retry: retry(3),
    }),
    notify: proxyActivities<Activities>({
      taskQueue,
      startToCloseTimeout: '30s',
      retry: { ...retry(10), maximumInterval: '30s' },
    }),
  };
}

/** Each approval deadline is a quarter of the RTO budget left (at least 2 minutes): reminder plus abort use half. */
export function approvalTimeoutMs(rtoSeconds: number, clockStart: number): number {
  const leftMs = rtoSeconds * 1000 - (Date.now() - clockStart);
  return Math.max(120_000, Math.floor(leftMs / 4));
}

export async function notifyPeople(
  plan: ServicePlan,
  acts: StepActivities,
  subject: string,
  message: string,
  event: string,
): Promise<void> {
  const key = `${workflowInfo().workflowId}/${workflowInfo().runId}/${event}`;
  await Promise.all(
    plan.notificationTargets.map((target) =>
      acts.notify.notifyTarget({ target, subject, message, idempotencyKey: `${key}/${target}` }),
    ),
  );
}

export const round1 = (n: number) => Math.round(n * 10) / 10;

/** Run steps together; wait for every one of them, then fail with the first failure (none is left running unreported). */
export async function allSteps(steps: (Promise<unknown> | null | void)[]): Promise<void> {
  const results = await Promise.allSettled(steps.filter((s): s is Promise<unknown> => s instanceof Promise));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
