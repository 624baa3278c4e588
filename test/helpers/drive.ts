/**
 * Drivers for runbooks that wait at approval gates, shared by the integration and chaos tests:
 * start, wait at the gate, (do something there), approve, and hand back the outcome.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { failback, failover } from '../../workflows';
import type { FailoverInput } from '../../workflows/contract';
import { approveUpdate } from '../../workflows/messages';
import { atGate, type TemporalHarness } from './stack';

/** Start `failover-<service>`, wait at its promote gate, run `atPromoteGate`, approve as `approver`. */
export async function approvedFailover(
  t: TemporalHarness,
  input: FailoverInput,
  {
    approver = 'carol',
    atPromoteGate,
  }: { approver?: string; atPromoteGate?: (handle: WorkflowHandle<typeof failover>) => Promise<void> | void } = {},
) {
  const handle = await t.client.workflow.start(failover, {
    taskQueue: t.taskQueue,
    workflowId: `failover-${input.service}`,
    args: [input],
  });
  await atGate(handle, 'promote');
  await atPromoteGate?.(handle);
  await handle.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver }] });
  return handle;
}

/** Fail a service back (drill mode), approving its switch-back gate as `approver`; returns the report. */
export async function approvedFailback(t: TemporalHarness, service: string, approver = 'carol') {
  const handle = await t.client.workflow.start(failback, {
    taskQueue: t.taskQueue,
    workflowId: `failback-${service}`,
    args: [{ service, mode: 'drill' }],
  });
  await atGate(handle, 'switch-back');
  await handle.executeUpdate(approveUpdate, { args: [{ step: 'switch-back', approver }] });
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
