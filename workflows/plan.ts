/**
 * The first step of every runbook: look the service up in the worker's inventory. An
 * unknown service fails the run with UnknownService itself (not wrapped in an activity
 * failure), before anything else has happened.
 */
import { ActivityFailure, ApplicationFailure, patched } from '@temporalio/workflow';
import type { ServicePlan } from '../contract';
import { activities, serviceLookup } from './activity-options';

const { describeService } = activities(serviceLookup);

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

/**
 * Distinct approvers a gate before a change to production needs: two for a critical service, one otherwise. A drill
 * switchover fences, promotes and moves DNS on production just as a real failover does, so no mode lowers it.
 */
export function productionApprovals(svc: Pick<ServicePlan['service'], 'tier'>): number {
  return svc.tier === 'critical' ? 2 : 1;
}

/**
 * What a gate asks for: the production rule since 'production-approvals'. A run that passed a gate before the change
 * replays with the count it asked for then: by mode at failover's and failback's own gates (two only for a real
 * failover of a critical service), one at the others (no `modeBefore`).
 */
export function gateApprovals(svc: Pick<ServicePlan['service'], 'tier'>, modeBefore?: 'real' | 'drill'): number {
  if (patched('production-approvals')) return productionApprovals(svc);
  return modeBefore === 'real' ? productionApprovals(svc) : 1;
}
