/**
 * Drivers for runbooks that wait at approval gates, shared by the integration and chaos tests and
 * scripts/record-histories.ts (the replay fixtures): start a runbook under its one id
 * (`<runbook>-<service>`), wait at each gate, (do something there), approve, hand back the outcome.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { runDrctl } from '../../scripts/drctl';
import { failback, failover } from '../../workflows';
import type { Approval, FailoverInput } from '../../workflows/contract';
import type { DrillStatus } from '../../workflows/drill';
import { approveSignal, approveUpdate, statusQuery } from '../../workflows/messages';
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

/** Approve each gate in turn as the run reaches it: by update (drctl's way) or by signal (the Web UI's). */
export async function approveGates(
  handle: WorkflowHandle,
  approvals: Approval[],
  via: 'update' | 'signal' = 'update',
  /** Where to send the approvals, if not to the waiting run itself (a drill relays them to its child). */
  to: WorkflowHandle = handle,
): Promise<void> {
  for (const approval of approvals) {
    await atGate(handle, approval.step);
    if (via === 'update') await to.executeUpdate(approveUpdate, { args: [approval] });
    else await to.signal(approveSignal, approval);
  }
}

/** Start `failover-<service>`, wait at its promote gate, run `atPromoteGate`, approve as `approver`. */
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
  await handle.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver }] });
  return handle;
}

/** Fail a service back (drill mode), approving its switch-back gate as `approver`; returns the report. */
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
        .getHandle(`drill-${service}`)
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
