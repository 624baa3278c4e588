/** The `status` query's shapes: every runbook's steps, gate and measured RTO/RPO. */
import type { Approval, PendingApproval } from './approvals';
import type { BackupCompliance } from './backup';
import type { DrillInput } from './inputs';
import type { Topology } from './topology';

export type StepState = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'waiting';

export interface StepRecord {
  name: string;
  state: StepState;
  startedAt?: string;
  endedAt?: string;
  attempts: number;
  detail?: string;
}

export interface RunbookStatus {
  runbook: string;
  service: string;
  phase: string;
  steps: StepRecord[];
  pendingApproval: PendingApproval | null;
  measured: { rtoSeconds: number | null; rpoSeconds: number | null };
  targets: { rtoSeconds: number; rpoSeconds: number };
  /** Time used and left against the RTO target, from the incident start. */
  rtoClock: { startedAt: string; usedSeconds: number; leftSeconds: number };
  approvals: Approval[];
  rejectedApprovals: { approval: Approval; reason: string }[];
  aborted: { by: string; reason: string } | null;
  notes: string[];
  /** The live roles the run read (its `topology` step), when it has read them. */
  topology?: Topology;
}

/**
 * `status` of a backup run (nightlyBackup, serviceBackup, binlogArchive): a RunbookStatus, so the one `status` query
 * serves it, plus what a backup has to say. A backup has no gate and recovers nothing: it never has approvals, and
 * its RTO clock does not run (as the monitor's).
 */
export type BackupStatus = RunbookStatus & {
  backupId: string;
  compliance: BackupCompliance[];
  failures: { service: string; type: string; reason: string }[];
};

/** `status` of a drill: the operator contract's fields, plus the child runbooks and which one waits. */
export type DrillStatus = RunbookStatus & {
  scope: DrillInput['scope'];
  children: { runbook: string; workflowId: string; state: 'running' | 'completed' | 'failed' }[];
  /** The child run approvals go to now (drctl approve sends its update there). */
  activeChild: string | null;
};

export interface MonitorState {
  service: string;
  consecutiveFailures: number;
  firstFailedAt: string | null;
  lastHealthyAt: string | null;
  lastCheck: { at: string; ok: boolean; detail: string } | null;
  cooldownUntil: string | null;
  incidents: { detectedAt: string; incidentStartedAt: string; failover: string; started: boolean; detail: string }[];
}

export interface ServiceLockState {
  service: string;
  /** The workflow id of the run that holds the lock. */
  holder: string;
  since: string;
}
