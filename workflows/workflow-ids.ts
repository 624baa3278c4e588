/**
 * The workflow-id rule as workflows enforce it: a run under another id than workflowIdFor's (contract/names.ts) is
 * refused, and a failover knows its monitor by that id.
 */
import { ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import { ErrorType, workflowIdFor } from '../contract';

/**
 * One runbook of a kind per service at a time: Temporal refuses a second run with the same
 * workflow id, so the id must be `<runbook>-<service>`; a hand-typed other id is refused here.
 */
export function requireWorkflowId(runbook: string, service: string): void {
  const expected = workflowIdFor(runbook, service);
  const actual = workflowInfo().workflowId;
  if (actual !== expected) {
    throw ApplicationFailure.create({
      type: ErrorType.InvalidInput,
      message:
        `a ${runbook} of ${service} must run as workflow id "${expected}" (got "${actual}"), so that only one ` +
        `can run at a time`,
      nonRetryable: true,
    });
  }
}

/**
 * Whether this run is a child of `monitor-<service>` in its own namespace. The SDK names a parent's id,
 * run and namespace, not its type; the id stands for the type because a monitor refuses any other id
 * and the only other workflow that starts failovers (the drill) runs as `drill-<service>`.
 */
export function startedByMonitor(service: string): boolean {
  const { parent, namespace } = workflowInfo();
  return parent?.workflowId === workflowIdFor('monitor', service) && parent.namespace === namespace;
}
