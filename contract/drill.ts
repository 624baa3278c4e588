/** The quarterly DR drill: its report, findings and trend. */
import type { Approval } from './approvals';
import type { StepRecord } from './status';

// ------------------------------------------------------------------ quarterly DR drill
// Reports, in the service's primary backup destination (or a local reports directory):
//   <prefix><service>/reports/drill/<drillId>.{json,md,html}
// Trend = the earlier JSON drill reports listed from there.

export interface DrillFinding {
  severity: 'info' | 'warning' | 'critical';
  text: string;
}

/** One point of the drill trend: a drill's measured RTO/RPO against the targets it had then. */
export interface DrillTrendPoint {
  id: string;
  scope: 'isolated' | 'switchover';
  at: string;
  outcome: 'passed' | 'failed';
  rtoSeconds: number | null;
  rpoSeconds: number | null;
  rtoTargetSeconds: number;
  rpoTargetSeconds: number;
}

export interface DrillReport {
  format: 'drbook-drill/1';
  id: string;
  service: string;
  tier: string;
  strategy: string;
  scope: 'isolated' | 'switchover';
  reason: string;
  outcome: 'passed' | 'failed';
  startedAt: string;
  endedAt: string;
  /** Every step of the drill and of its child runbooks, with the runbook it belongs to (the timeline's lanes). */
  steps: (StepRecord & { runbook: string })[];
  /**
   * identity/via: the client identity Temporal recorded for each approval (read from history when the report is
   * published).
   */
  approvals: (Approval & { runbook: string; identity?: string | null; via?: string | null })[];
  measured: { rtoSeconds: number | null; rpoSeconds: number | null };
  targets: { rtoSeconds: number; rpoSeconds: number };
  rtoMet: boolean | null;
  rpoMet: boolean | null;
  findings: DrillFinding[];
  children: { runbook: string; workflowId: string; outcome: string }[];
  /** Earlier drills of the service (oldest first) and this one last. */
  trend: DrillTrendPoint[];
  links: { json: string; markdown: string; html: string } | null;
}
