/**
 * Drive the sandbox service `shop` through a drill failover and back, on whatever workers
 * serve `taskQueue` (in-process or child processes): the tests that fail it over share these.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import { failback, failover } from '../../workflows';
import { approveUpdate } from '../../workflows/messages';
import { atGate } from './stack';

/** Start a drill failover of shop (one approver); it waits at the `promote` gate. */
export function startShopFailover(client: Client, taskQueue: string, reason: string) {
  return client.workflow.start(failover, {
    taskQueue,
    workflowId: 'failover-shop',
    args: [{ service: 'shop', mode: 'drill', reason }],
  });
}

/** Wait for the gate `step`, then approve it as `approver`. */
export async function approveAt(handle: WorkflowHandle, step: string, approver: string): Promise<void> {
  await atGate(handle, step);
  await handle.executeUpdate(approveUpdate, { args: [{ step, approver }] });
}

/** Fail shop back to the original topology (drill: one approval) and return the report. */
export async function failBackShop(client: Client, taskQueue: string) {
  const handle = await client.workflow.start(failback, {
    taskQueue,
    workflowId: 'failback-shop',
    args: [{ service: 'shop', mode: 'drill' }],
  });
  await approveAt(handle, 'switch-back', 'bob');
  return handle.result();
}
