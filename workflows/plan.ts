/**
 * The first step of every runbook: look the service up in the worker's inventory. An
 * unknown service fails the run with UnknownService itself (not wrapped in an activity
 * failure), before anything else has happened.
 */
import { ActivityFailure, ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { ServicePlan } from '../activities/inventory';
import type { Activities } from '../workers/adapters';
import { NON_RETRYABLE } from './contract';

const { describeService } = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { maximumAttempts: 5, initialInterval: '1s', nonRetryableErrorTypes: NON_RETRYABLE },
});

export async function planFor(service: string): Promise<ServicePlan> {
  try {
    return await describeService.executeWithOptions({ summary: `plan: describeService ${service}` }, [{ service }]);
  } catch (err) {
    if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) throw err.cause;
    throw err;
  }
}

/** The message an operator should read for a failed step: the activity's own failure, not the wrapper. */
export function reasonOf(err: unknown): string {
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  return cause instanceof Error ? cause.message : String(cause);
}
