/**
 * What a backup run shows while it runs: its named steps with timings (the `status` query), the page in the Web UI
 * (current details) and, for a failure, the type and message an operator reads. Shared by the backup runbooks and
 * the binlog archive.
 */
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure, workflowInfo } from '@temporalio/workflow';
import type { BackupStatus, RunbookStatus, StepRecord } from '../../contract';
import { complianceFacts, publishStatusPage } from '../page';
import { reasonOf } from '../plan';

export const iso = (ms: number) => new Date(ms).toISOString();

/** Named steps with timings, for `status`; a failed step records the activity's own message. */
export class Steps {
  readonly list: StepRecord[] = [];
  /** Called when a step starts or ends: the run's page is rewritten then (state changes, never a timer). */
  onChange: () => void = () => undefined;
  async run<T>(name: string, fn: () => Promise<T>, detail?: (r: T) => string): Promise<T> {
    const rec: StepRecord = { name, state: 'running', startedAt: iso(Date.now()), attempts: 1 };
    this.list.push(rec);
    this.onChange();
    try {
      const r = await fn();
      rec.state = 'succeeded';
      rec.detail = detail?.(r);
      return r;
    } catch (err) {
      rec.state = 'failed';
      rec.detail = reasonOf(err);
      throw err;
    } finally {
      rec.endedAt = iso(Date.now());
      this.onChange();
    }
  }
  skip(name: string, why: string): void {
    this.list.push({ name, state: 'skipped', attempts: 0, detail: why });
    this.onChange();
  }
}

/** The RunbookStatus fields of a run without a gate or a running RTO clock (a backup), targets until it has a plan. */
export function gateless(): Omit<RunbookStatus, 'runbook' | 'service' | 'phase' | 'steps'> {
  return {
    pendingApproval: null,
    measured: { rtoSeconds: null, rpoSeconds: null },
    targets: { rtoSeconds: 0, rpoSeconds: 0 },
    rtoClock: { startedAt: '', usedSeconds: 0, leftSeconds: 0 },
    approvals: [],
    rejectedApprovals: [],
    aborted: null,
    notes: [],
  };
}

/**
 * A backup run's page in the Web UI (its current details), from its `status`: the backup id, each service's
 * copies and data-loss window once known, what failed, the steps. `outcome` is set once the run has ended.
 */
export function publishBackupPage(status: BackupStatus, outcome: string | null = null): void {
  const facts: [string, string][] = [];
  if (status.backupId) facts.push(['Backup id', status.backupId]);
  if (status.targets.rpoSeconds) facts.push(['RPO target', `${status.targets.rpoSeconds} s`]);
  publishStatusPage({
    runbook: status.runbook,
    service: status.service,
    phase: status.phase,
    outcome,
    facts: [...facts, ...status.compliance.flatMap(complianceFacts)],
    steps: status.steps,
    problems: status.failures.map((f) => `${f.service}: ${f.reason} [${f.type}]`),
    next: [
      `Step by step, as JSON: \`drctl status ${workflowInfo().workflowId}\` (or the \`status\` query)`,
      `A service's runbooks and newest verified backup: \`drctl status <service>\``,
    ],
  });
}

/** The failure type an operator reads: the activity's or child's own, not the wrapper's. */
export function typeOf(err: unknown): string {
  let e = err;
  while ((e instanceof ActivityFailure || e instanceof ChildWorkflowFailure) && e.cause) e = e.cause;
  return e instanceof ApplicationFailure ? (e.type ?? 'Error') : e instanceof Error ? e.name : 'Error';
}

export function messageOf(err: unknown): string {
  let e = err;
  while ((e instanceof ActivityFailure || e instanceof ChildWorkflowFailure) && e.cause) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}
