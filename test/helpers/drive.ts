/**
 * Drivers for runbooks that wait at approval gates, shared by the integration and chaos tests and
 * scripts/record-histories.ts (the replay fixtures): start a runbook under its one id
 * (`<runbook>-<service>`), wait at each gate, (do something there), approve, hand back the outcome.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { runDrctl } from '../../cli/drctl';
import { failback, failover } from '../../workflows';
import {
  type Approval,
  type FailoverInput,
  type RunbookStatus,
  type DrillStatus,
  approveSignal,
  approveUpdate,
  statusQuery,
  workflowIdFor,
} from '../../contract';
import { atGate, eventually, type TemporalHarness } from './stack';

type Runbook<I extends { service: string }, R> = (input: I) => Promise<R>;

/** Start `runbook` for `input.service` as `<runbook>-<service>` (unless told otherwise) on the harness's queue. */
export function startRunbook<I extends { service: string }, R>(
  t: TemporalHarness,
  runbook: Runbook<I, R>,
  input: I,
  workflowId = `${runbook.name}-${input.service}`,
): Promise<WorkflowHandle<Runbook<I, R>>> {
  return t.client.workflow.start(runbook, { taskQueue: t.taskQueue, workflowId, args: [input] });
}

/**
 * Approve each gate in turn as the run reaches it: by update (drctl's way) or by signal (the Web UI's). After the
 * last approval given for a gate, further DISTINCT approvers (from the gate's own list) approve while the gate still
 * needs them: production gates of a critical service need two in any mode (productionApprovals).
 */
export async function approveGates(
  handle: WorkflowHandle,
  approvals: Approval[],
  via: 'update' | 'signal' = 'update',
  /** Where to send the approvals, if not to the waiting run itself (a drill relays them to its child). */
  to: WorkflowHandle = handle,
): Promise<void> {
  for (const [i, approval] of approvals.entries()) {
    await atGate(handle, approval.step);
    if (approvals[i + 1]?.step === approval.step) await sendApproval(handle, approval, via, to);
    else await approveFully(handle, approval, via, to);
  }
}

/**
 * Send `approval` to a run waiting at its gate, then approvals by other listed approvers (without the first one's
 * flags) until the gate needs none. Returns who approved.
 */
export async function approveFully(
  handle: WorkflowHandle,
  approval: Approval,
  via: 'update' | 'signal' = 'update',
  to: WorkflowHandle = handle,
): Promise<string[]> {
  const sent: string[] = [];
  for (let next: Approval | null = approval; next;) {
    const s = await sendApproval(handle, next, via, to);
    sent.push(next.approver);
    const gate = s.pendingApproval?.step === approval.step ? s.pendingApproval : null;
    const done = new Set([...sent, ...s.approvals.filter((a) => a.step === approval.step).map((a) => a.approver)]);
    const by = gate && gate.needed > 0 ? gate.approvers.find((a) => !done.has(a)) : undefined;
    next = by ? { step: approval.step, approver: by } : null;
  }
  return sent;
}

/** Send one approval and wait until the run's status shows it (accepted, refused, or the gate passed). */
async function sendApproval(
  handle: WorkflowHandle,
  approval: Approval,
  via: 'update' | 'signal',
  to: WorkflowHandle,
): Promise<RunbookStatus> {
  if (via === 'update') await to.executeUpdate(approveUpdate, { args: [approval] });
  else await to.signal(approveSignal, approval);
  const mine = (a: Approval) => a.step === approval.step && a.approver === approval.approver;
  return eventually(
    async () => {
      const s = await handle.query(statusQuery);
      const seen =
        s.pendingApproval?.step !== approval.step ||
        s.approvals.some(mine) ||
        s.rejectedApprovals.some((r) => mine(r.approval));
      return seen ? s : null;
    },
    60_000,
    `approval of ${approval.step} by ${approval.approver}`,
  );
}

/** Start `failover-<service>`, wait at its promote gate, run `atPromoteGate`, approve as `approver` (and others). */
export async function approvedFailover(
  t: TemporalHarness,
  input: FailoverInput,
  {
    approver = 'carol',
    atPromoteGate,
  }: { approver?: string; atPromoteGate?: (handle: WorkflowHandle<typeof failover>) => Promise<void> | void } = {},
) {
  const handle = await startRunbook(t, failover, input);
  await atGate(handle, 'promote');
  await atPromoteGate?.(handle);
  await approveFully(handle, { step: 'promote', approver });
  return handle;
}

/** Fail a service back (drill mode), approving its switch-back gate as `approver` (and others); returns the report. */
export async function approvedFailback(t: TemporalHarness, service: string, approver = 'carol') {
  const handle = await startRunbook(t, failback, { service, mode: 'drill' });
  await approveGates(handle, [{ step: 'switch-back', approver }]);
  return handle.result();
}

/**
 * Activity attempts after the first in a run's history (of one activity type, if named): the retries
 * that carried a run through a fault. Only attempts that started are in history.
 */
export async function activityRetries(handle: WorkflowHandle, activityType?: string): Promise<number> {
  const events = (await handle.fetchHistory()).events ?? [];
  const typeOf = new Map<string, string>();
  for (const e of events) {
    const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
    if (name) typeOf.set(String(e.eventId), name);
  }
  return events.filter((e) => {
    const started = e.activityTaskStartedEventAttributes;
    if (!started || (started.attempt ?? 1) <= 1) return false;
    return !activityType || typeOf.get(String(started.scheduledEventId)) === activityType;
  }).length;
}

/** Wait until `drill-<service>`'s active child (`<runbook>-<service>`) waits for approval at `step`. */
export async function drillChildAtGate(
  t: Pick<TemporalHarness, 'client'>,
  service: string,
  runbook: string,
  step: string,
  timeoutMs: number,
): Promise<void> {
  await eventually(
    async () => {
      const s = (await t.client.workflow
        .getHandle(workflowIdFor('drill', service))
        .query(statusQuery)
        .catch(() => null)) as DrillStatus | null;
      if (s?.activeChild !== `${runbook}-${service}`) return null;
      const child = await t.client.workflow
        .getHandle(s.activeChild)
        .query(statusQuery)
        .catch(() => null);
      return child?.pendingApproval?.step === step ? child : null;
    },
    timeoutMs,
    `${runbook} waiting at ${step}`,
  );
}

/** drctl in this process, against the harness's task queue and client: exit code and what it printed. */
export async function drctlOn(t: TemporalHarness, ...args: string[]) {
  let out = '';
  let err = '';
  const code = await runDrctl(['--task-queue', t.taskQueue, ...args], {
    client: t.client,
    io: { out: (s) => (out += s), err: (s) => (err += s) },
    watchIntervalMs: 200,
  });
  return { code, out, err };
}
