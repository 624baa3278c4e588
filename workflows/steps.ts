/**
 * Step plumbing the failover and failback runbooks share: activity proxies per kind of
 * step (all on the DR side's task queue), people notifications, approval deadlines.
 */
import type { ActivityOptions, RetryPolicy } from '@temporalio/common';
import { proxyActivities, workflowInfo, type ActivityInterfaceFor } from '@temporalio/workflow';
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
export function drSteps(plan: ServicePlan, run?: { readonly currentStep: string | null }) {
  const taskQueue = drTaskQueue(workflowInfo().taskQueue, plan.regions.dr);
  const summarized = (acts: ActivityInterfaceFor<Activities>) => withSummaries(acts, run ?? NO_STEP);
  return {
    quick: summarized(proxyActivities<Activities>({ taskQueue, startToCloseTimeout: '30s', retry: retry(3) })),
    fence: summarized(proxyActivities<Activities>({ taskQueue, startToCloseTimeout: '20s', retry: retry(2) })),
    // Changes heartbeat: a worker that dies mid-change (promote, VIP) is noticed in 15 s, not after
    // the 2 minutes its retry would otherwise wait (test/chaos/worker-kill.test.ts).
    change: summarized(
      proxyActivities<Activities>({
        taskQueue,
        startToCloseTimeout: '2m',
        heartbeatTimeout: '15s',
        retry: retry(5),
      }),
    ),
    wait: summarized(
      proxyActivities<Activities>({
        taskQueue,
        startToCloseTimeout: '20m',
        heartbeatTimeout: '30s',
        retry: retry(3),
      }),
    ),
    notify: summarized(
      proxyActivities<Activities>({
        taskQueue,
        startToCloseTimeout: '30s',
        retry: { ...retry(10), maximumInterval: '30s' },
      }),
    ),
  };
}

/** A run without named steps: its summaries say the activity and its target. */
const NO_STEP = { currentStep: null } as const;

/**
 * proxyActivities whose every call carries its one-line summary (withSummaries); `run` gives the step's name
 * where the runbook has named steps.
 */
export function summarizedActivities(
  options: ActivityOptions,
  run: { readonly currentStep: string | null } = NO_STEP,
): ActivityInterfaceFor<Activities> {
  return withSummaries(proxyActivities<Activities>(options), run);
}

/**
 * The same activities, each call carrying a one-line summary (the Web UI's timeline and event history show it
 * instead of the bare activity type): the runbook step, the activity, and its target. The summary is user
 * metadata on the schedule command, which replay does not compare (test/unit/replay.test.ts replays the fixtures).
 */
export function withSummaries<A extends object>(
  acts: ActivityInterfaceFor<A>,
  run: { readonly currentStep: string | null },
): ActivityInterfaceFor<A> {
  return new Proxy(acts, {
    get(target, name, receiver) {
      const activity: unknown = Reflect.get(target, name, receiver);
      if (typeof name !== 'string' || typeof activity !== 'function') return activity;
      const withOptions = activity as unknown as {
        executeWithOptions: (o: { summary: string }, args: unknown[]) => Promise<unknown>;
      };
      const call = (...args: unknown[]) =>
        withOptions.executeWithOptions({ summary: activitySummary(run.currentStep, name, args[0]) }, args);
      return Object.assign(call, { executeWithOptions: withOptions.executeWithOptions });
    },
  });
}

/** An activity call in one line: "fence: fencePrimary db-primary", "switch-dns: switchDnsRecord a → b". */
export function activitySummary(step: string | null, activity: string, arg: unknown): string {
  const a = (arg ?? {}) as Record<string, unknown>;
  const text = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? String(v) : null);
  const target =
    a.name && a.value
      ? `${text(a.name)} → ${text(a.value)}`
      : a.source && a.server
        ? `${text(a.server)} from ${text(a.source)}`
        : a.primary && a.replica
          ? `${text(a.replica)} behind ${text(a.primary)}`
          : (text(a.server) ??
            text(a.replica) ??
            text(a.instance) ??
            (a.host && a.address ? `${text(a.address)} on ${text(a.host)}` : null) ??
            text(a.target) ??
            (typeof a.url === 'string' ? bareUrl(a.url) : null) ??
            text(a.service) ??
            (Array.isArray(a.servers) ? a.servers.filter((s) => typeof s === 'string').join(', ') : null) ??
            text(a.region));
  const line = `${step ? `${step}: ` : ''}${activity}${target ? ` ${target}` : ''}`;
  return line.length > 120 ? `${line.slice(0, 119)}…` : line;
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

/** A URL without credentials, query or fragment: a webhook's token never lands in a summary. */
const bareUrl = (url: string) => url.replace(/\/\/[^/@]*@/, '//').replace(/[?#].*$/, '');
