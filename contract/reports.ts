/** What failover, failback and resolveSplit return: what they did, the measured RTO/RPO, steps and approvals. */
import type { Approval } from './approvals';
import type { ReadinessReport, Topology } from './topology';
import type { StepRecord } from './status';

export interface FailoverReport {
  runbook: 'failover';
  service: string;
  mode: 'real' | 'drill';
  strategy: string;
  outcome: 'completed' | 'dry-run';
  reason: string;
  incidentStartedAt: string;
  recoveredAt: string | null;
  newPrimary: string | null;
  measured: { rtoSeconds: number | null; rpoSeconds: number | null };
  targets: { rtoSeconds: number; rpoSeconds: number };
  rtoMet: boolean | null;
  rpoMet: boolean | null;
  steps: StepRecord[];
  approvals: Approval[];
  notes: string[];
  readiness?: ReadinessReport;
}

export interface FailbackReport {
  runbook: 'failback';
  service: string;
  outcome: 'completed' | 'already-in-place';
  measured: { rtoSeconds: number | null; rpoSeconds: number | null };
  targets: { rtoSeconds: number; rpoSeconds: number };
  steps: StepRecord[];
  approvals: Approval[];
  notes: string[];
}

export interface ResolveSplitReport {
  runbook: 'resolve';
  service: string;
  kept: string;
  fenced: string[];
  /** Per fenced member: transactions it holds that the kept writer lacks (not replicated, not discarded). */
  divergence: Record<string, number>;
  topology: Topology;
  steps: StepRecord[];
  approvals: Approval[];
  notes: string[];
}
