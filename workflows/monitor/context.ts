/** What every step of the monitor reads and keeps between checks: the service's plan and the detector's state. */
import type { MonitorState, ServicePlan } from '../../contract';
import { activities, healthProbes } from '../activity-options';

export interface Monitor {
  plan: ServicePlan;
  svc: ServicePlan['service'];
  /** What the `monitorState` query answers; carried into the next run only as its cooldown. */
  state: MonitorState;
  /** Since when the checks pass (null before the first, and after an incident): the page says so. */
  healthySince: string | null;
  /** The page last written: an unchanged one is not written again. */
  lastPage: string;
  /** People heard of a split already (once per run). */
  splitAlerted: boolean;
}

/** One check's verdict: `split` when two members are writable (then no failover is started). */
export interface CheckResult {
  ok: boolean;
  detail: string;
  split?: boolean;
}

// One probe per check: a retry would hide exactly the failure being counted.
export const probe = activities(healthProbes);
