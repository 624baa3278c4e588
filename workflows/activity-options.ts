/**
 * Activity options in one place. Each timeout class is named for the activities it serves; every retry
 * policy is `retry()`: exponential backoff, and the failure table's non-retryable types (NON_RETRYABLE)
 * fail the step at once. Runbooks call activities through the proxies at the end of this file, so every
 * call carries its one-line summary (activity-summaries.ts).
 */
import type { ActivityOptions, Duration, RetryPolicy } from '@temporalio/common';
import {
  ActivityCancellationType,
  proxyActivities,
  workflowInfo,
  type ActivityInterfaceFor,
} from '@temporalio/workflow';
import { type ServicePlan, drTaskQueue, NON_RETRYABLE } from '../contract';
import type { Activities } from '../activities';
import { NO_STEP, withSummaries, type RunSteps } from './activity-summaries';

/** The one retry policy: `maximumAttempts` tries, backoff doubling from `initialInterval`. */
export function retry(
  maximumAttempts: number,
  initialInterval: Duration = '1s',
  maximumInterval?: Duration,
): RetryPolicy {
  return {
    maximumAttempts,
    initialInterval,
    backoffCoefficient: 2,
    ...(maximumInterval ? { maximumInterval } : {}),
    nonRetryableErrorTypes: NON_RETRYABLE,
  };
}

// ------------------------------------------------------------------ failover, failback, resolve, the runbooks' alerts
/** Reading the estate: roles, lag, GTIDs, backups picked, writes verified. */
export const reads = { startToCloseTimeout: '30s', retry: retry(3) } satisfies ActivityOptions;
/** Fencing a primary (read_only, heartbeat off, VIP removed): short, so a dead host does not hold the run. */
export const fencing = { startToCloseTimeout: '20s', retry: retry(2) } satisfies ActivityOptions;
/**
 * Promote, unfence, VIP, re-protect. They heartbeat: a worker that dies mid-change is noticed in 15 s, not after
 * the 2 minutes its retry would otherwise wait (test/chaos/worker-kill.test.ts).
 */
export const topologyChanges = {
  startToCloseTimeout: '2m',
  heartbeatTimeout: '15s',
  retry: retry(5),
} satisfies ActivityOptions;
/** Catch-up, RDS promotion, DR compute, DNS INSYNC, health, restores and re-clones: minutes, heartbeating. */
export const longWaits = {
  startToCloseTimeout: '20m',
  heartbeatTimeout: '30s',
  retry: retry(3),
} satisfies ActivityOptions;
/** Webhooks and people: tried often, never more than 30 s apart. */
export const notifications = { startToCloseTimeout: '30s', retry: retry(10, '1s', '30s') } satisfies ActivityOptions;

// ------------------------------------------------------------------ every runbook's first step, readiness, monitor
/** The service's plan from the worker's inventory. */
export const serviceLookup = { startToCloseTimeout: '30s', retry: retry(5) } satisfies ActivityOptions;
/** A readiness check: read-only, tried twice (a check that fails is the answer). */
export const readinessChecks = { startToCloseTimeout: '30s', retry: retry(2) } satisfies ActivityOptions;
/** The monitor's probe: one try, since a retry would hide exactly the failure being counted. */
export const healthProbes = { startToCloseTimeout: '20s', retry: retry(1) } satisfies ActivityOptions;

// ------------------------------------------------------------------ backups and the binlog archive
/** Dumps, physical copies and file trees: they stream for hours and heartbeat every few seconds. */
export const backupStreams = {
  startToCloseTimeout: '12h',
  heartbeatTimeout: '2m',
  retry: retry(3, '30s'),
} satisfies ActivityOptions;
/** EBS and RDS snapshots and their copies to the DR region. */
export const snapshotCopies = backupStreams;
/** Verify, manifest, retention, compliance: minutes at most. */
export const backupBookkeeping = { startToCloseTimeout: '5m', retry: retry(5, '2s') } satisfies ActivityOptions;
/** Which services keep a binlog archive. */
export const serviceListing = { startToCloseTimeout: '1m', retry: retry(5, '2s') } satisfies ActivityOptions;
/** Flushing and copying closed binlogs to every destination. */
export const binlogArchives = {
  startToCloseTimeout: '1h',
  heartbeatTimeout: '2m',
  retry: retry(3, '10s'),
} satisfies ActivityOptions;

// ------------------------------------------------------------------ restore test
/** Picking, checking and querying a restore. */
export const restoreChecks = { startToCloseTimeout: '2m', retry: retry(3, '2s') } satisfies ActivityOptions;
/** Reading a whole backup (checksums, file trees). */
export const backupReads = {
  startToCloseTimeout: '12h',
  heartbeatTimeout: '30s',
  retry: retry(3, '10s'),
} satisfies ActivityOptions;
/**
 * Loading into scratch. A short heartbeat timeout: a cancellation reaches the loader within seconds; waiting for the
 * activity to finish cancelling means its clients are dead before the scratch database is dropped.
 */
export const restoreLoads = {
  startToCloseTimeout: '12h',
  heartbeatTimeout: '10s',
  retry: retry(2, '10s'),
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
} satisfies ActivityOptions;
/** A binlog replay cannot be repeated onto a half-replayed scratch database: one try, a failure fails the check. */
export const binlogReplays = {
  startToCloseTimeout: '12h',
  heartbeatTimeout: '30s',
  retry: retry(1),
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
} satisfies ActivityOptions;
/** Dropping scratch databases and directories: tried hard, nothing is left behind. */
export const scratchCleanup = { startToCloseTimeout: '5m', retry: retry(10, '2s') } satisfies ActivityOptions;
/** Restoring an RDS snapshot into a new instance on the DR side. */
export const rdsRestores = {
  startToCloseTimeout: '3h',
  heartbeatTimeout: '2m',
  retry: retry(3, '30s'),
} satisfies ActivityOptions;
/** Deleting that instance again. */
export const rdsCleanup = {
  startToCloseTimeout: '1h',
  heartbeatTimeout: '2m',
  retry: retry(10, '10s'),
} satisfies ActivityOptions;

// ------------------------------------------------------------------ drill
/** The drill's reads and small changes on the DR side. */
export const drillChecks = { startToCloseTimeout: '1m', retry: retry(3) } satisfies ActivityOptions;
/** The isolated DR copy: minutes, heartbeating. */
export const drillCopies = {
  startToCloseTimeout: '30m',
  heartbeatTimeout: '1m',
  retry: retry(3),
} satisfies ActivityOptions;
/** Writing the drill report and its charts. */
export const reports = { startToCloseTimeout: '2m', retry: retry(5) } satisfies ActivityOptions;

// ------------------------------------------------------------------ proxies
/** Activities with `options` on this run's task queue; summaries name the run's current step. */
export function activities(options: ActivityOptions, run: RunSteps = NO_STEP): ActivityInterfaceFor<Activities> {
  return withSummaries(proxyActivities<Activities>(options), run);
}

/** The same on the DR side's task queue: in a regional outage the DR region's workers finish the run. */
export function drActivities(
  plan: Pick<ServicePlan, 'regions'>,
  options: ActivityOptions,
  run: RunSteps = NO_STEP,
): ActivityInterfaceFor<Activities> {
  return activities({ ...options, taskQueue: drTaskQueue(workflowInfo().taskQueue, plan.regions.dr) }, run);
}

/** A runbook's step activities by timeout class, all on the DR side (the primary region may be gone). */
export function runbookActivities(plan: Pick<ServicePlan, 'regions'>, run: RunSteps = NO_STEP) {
  return {
    reads: drActivities(plan, reads, run),
    fencing: drActivities(plan, fencing, run),
    topologyChanges: drActivities(plan, topologyChanges, run),
    longWaits: drActivities(plan, longWaits, run),
    notifications: drActivities(plan, notifications, run),
  };
}

export type RunbookActivities = ReturnType<typeof runbookActivities>;
