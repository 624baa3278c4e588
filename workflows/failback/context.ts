/** What every step of a failback reads: its input, the service's plan, the run's record, its activities. */
import type { z } from 'zod';
import type { RunbookActivities } from '../activity-options';
import type { Compensations, Fencing } from '../compensations';
import type { failbackInput, FailbackReport, ServicePlan } from '../../contract';
import { DrOutcome } from '../../contract';
import type { RunbookRun } from '../runbook';

export interface Failback {
  input: z.output<typeof failbackInput>;
  plan: ServicePlan;
  svc: ServicePlan['service'];
  run: RunbookRun;
  acts: RunbookActivities;
  /** What to undo if the run stops before the original is promoted. */
  compensations: Compensations;
  /** The DR primary's fence, once it has begun. */
  fencing: Fencing | null;
}

/** The run is done: its outcome tagged and reported. */
export function finish({ run, plan, svc }: Failback, outcome: FailbackReport['outcome']): FailbackReport {
  run.phase = 'done';
  run.tag([{ key: DrOutcome, value: outcome }]);
  return {
    runbook: 'failback',
    service: svc.name,
    outcome,
    measured: run.measured,
    targets: plan.targets,
    steps: run.steps,
    approvals: run.approvals,
    notes: run.notes,
  };
}
