/**
 * Drive a runbook as an operator does: start it under its one id (`<runbook>-<service>`),
 * approve each gate when the run reaches it, wait for its result. Used by the integration
 * tests and by scripts/record-histories.ts, which records the replay fixtures from real runs.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { Approval } from '../../workflows/contract';
import { approveSignal, approveUpdate } from '../../workflows/messages';
import { atGate, type TemporalHarness } from './stack';

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

/** Start `runbook`, approve its gates in order, and return its result (call inside `t.withWorkers`). */
export async function runApproved<I extends { service: string }, R>(
  t: TemporalHarness,
  runbook: Runbook<I, R>,
  input: I,
  approvals: Approval[],
): Promise<R> {
  const handle = await startRunbook(t, runbook, input);
  await approveGates(handle, approvals);
  return handle.result();
}
