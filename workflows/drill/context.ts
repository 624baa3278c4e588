/** What every step of a drill reads: its input, the service's plan, the run's record, what the report gathers. */
import { ChildWorkflowFailure } from '@temporalio/workflow';
import type { z } from 'zod';
import type { DrillFinding, drillInput, DrillReport, DrillStatus, ServicePlan } from '../../contract';
import { activities, drActivities, drillChecks, drillCopies, reports } from '../activity-options';
import type { Compensations } from '../compensations';
import { reasonOf } from '../plan';
import type { RunbookRun } from '../runbook';

export interface Drill {
  input: z.output<typeof drillInput>;
  plan: ServicePlan;
  svc: ServicePlan['service'];
  run: RunbookRun;
  startedAt: number;
  /** Sorts by time; safe in object keys and database names. */
  drillId: string;
  acts: DrillActivities;
  findings: DrillFinding[];
  /** The children's steps and approvals, each marked with the runbook it came from. */
  steps: DrillReport['steps'];
  approvals: DrillReport['approvals'];
  children: DrillStatus['children'];
  /** The child runbook running now: approvals and aborts sent to the drill go to it. */
  activeChild: string | null;
  /** What an isolated drill brought up, taken down last-first when it ends (even cancelled). */
  teardown: Compensations;
}

export type DrillActivities = ReturnType<typeof drillActivities>;

/** The drill's checks and its copy on the DR side's task queue; the report on the run's own. */
export function drillActivities(plan: ServicePlan, run: RunbookRun) {
  return {
    quick: drActivities(plan, drillChecks, run),
    slow: drActivities(plan, drillCopies, run),
    reporting: activities(reports, run),
  };
}

export const iso = (ms: number) => new Date(ms).toISOString();

/** A drill id that sorts by time and is safe in object keys and database names. */
export const drillIdAt = (ms: number) =>
  iso(ms)
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');

/** The message an operator should read: the child's or activity's own failure, not its wrappers. */
export function messageOf(err: unknown): string {
  let e = err;
  while (e instanceof ChildWorkflowFailure && e.cause) e = e.cause;
  return reasonOf(e);
}
