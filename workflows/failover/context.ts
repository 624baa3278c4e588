/** What every step of a failover reads: its input, the service's plan, the run's record, its activities. */
import type { z } from 'zod';
import type { RunbookActivities } from '../activity-options';
import type { Compensations, Fencing } from '../compensations';
import type { failoverInput, FailoverReport, ServicePlan } from '../../contract';
import type { RunbookRun } from '../runbook';

export interface Failover {
  input: z.output<typeof failoverInput>;
  plan: ServicePlan;
  svc: ServicePlan['service'];
  run: RunbookRun;
  acts: RunbookActivities;
  /** The RTO clock's start: the incident start the monitor passed on, or the run's start. */
  incidentStartedAt: number;
  /** Started by the service's monitor, its parent (only the parent says so since 'failover-unattended-from-parent'). */
  claimedByMonitor: boolean;
  /** What to undo if the run stops before the promotion is done. */
  compensations: Compensations;
  /** The old primary's fence, once it has begun. */
  fencing: Fencing | null;
  /** Set when the run ends: the RTO watch then says nothing. */
  clock: { finished: boolean };
}

/** The database switch's shape: what is promoted and whether from a replica (warm) or a restored backup (cold). */
export interface PromotionTarget {
  db: NonNullable<ServicePlan['service']['database']>;
  server: string;
  cold: boolean;
}

export function reportOf(
  f: Failover,
  outcome: FailoverReport['outcome'],
  extra: Partial<FailoverReport> = {},
): FailoverReport {
  const { run, plan, svc, input } = f;
  return {
    runbook: 'failover',
    service: svc.name,
    mode: input.mode,
    strategy: svc.strategy,
    outcome,
    reason: input.reason,
    incidentStartedAt: new Date(f.incidentStartedAt).toISOString(),
    recoveredAt: null,
    newPrimary: null,
    measured: run.measured,
    targets: plan.targets,
    rtoMet: run.measured.rtoSeconds === null ? null : run.measured.rtoSeconds <= plan.targets.rtoSeconds,
    rpoMet: run.measured.rpoSeconds === null ? null : run.measured.rpoSeconds <= plan.targets.rpoSeconds,
    steps: run.steps,
    approvals: run.approvals,
    notes: run.notes,
    ...extra,
  };
}
