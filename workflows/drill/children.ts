/**
 * The child runbooks a switchover drill runs: each is one drill step, visible in `status`; approvals and aborts
 * sent to the drill are relayed to the child that waits, and its report is folded into the drill's.
 */
import { getExternalWorkflowHandle, setHandler } from '@temporalio/workflow';
import {
  abortSignal,
  approveSignal,
  approveUpdate,
  childGateSignal,
  statusQuery,
  workflowIdFor,
  type Approval,
  type DrillStatus,
  type FailbackReport,
  type FailoverReport,
} from '../../contract';
import type { Drill } from './context';

/** The drill's own messages: `status` lists its children; approve and abort go to the child that waits. */
export function relayMessagesToChildren(d: Drill): void {
  const { run, input, children } = d;
  setHandler(statusQuery, (): DrillStatus => ({
    ...run.status(),
    scope: input.scope,
    children,
    activeChild: d.activeChild,
  }));
  setHandler(approveSignal, async (approval: Approval) => {
    if (!d.activeChild) {
      run.rejectedApprovals.push({ approval, reason: `no child runbook is waiting (phase: ${run.phase})` });
      return;
    }
    run.notes.push(`approval of ${approval.step} by ${approval.approver} relayed to ${d.activeChild}`);
    await getExternalWorkflowHandle(d.activeChild).signal(approveSignal, approval);
  });
  // The waiting child says where it waits: this run's page shows that gate and the signal to paste here.
  setHandler(childGateSignal, (gate) => run.showChildGate(gate));
  // The update cannot answer for the child's gate from here: drctl sends it to the child itself.
  setHandler(approveUpdate, undefined);
  setHandler(abortSignal, async (req) => {
    run.aborted ??= req;
    if (d.activeChild) await getExternalWorkflowHandle(d.activeChild).signal(abortSignal, req);
  });
}

/** Run a child runbook as one drill step, visible in `status` and reachable for approvals. */
export async function runChild<T>(d: Drill, runbook: string, start: () => Promise<T>): Promise<T> {
  const { run, svc } = d;
  const workflowId = workflowIdFor(runbook, svc.name);
  const entry: DrillStatus['children'][number] = { runbook, workflowId, state: 'running' };
  d.children.push(entry);
  d.activeChild = workflowId;
  run.waitingOnChild(workflowId);
  try {
    const result = await run.step(runbook, start, () => `${workflowId} completed`);
    entry.state = 'completed';
    return result;
  } catch (err) {
    entry.state = 'failed';
    if (runbook === 'failover')
      d.findings.push({
        severity: 'critical',
        text:
          `the estate may be half switched: check \`drctl status ${svc.name}\` ` +
          `and run \`drctl failback ${svc.name}\` when the cause is fixed`,
      });
    throw err;
  } finally {
    d.activeChild = null;
    run.waitingOnChild(null);
  }
}

/** A child's steps, approvals and notes become the drill's (a note of a breach or a miss is a critical finding). */
export function absorb(d: Drill, runbook: string, r: FailoverReport | FailbackReport): void {
  d.steps.push(...r.steps.map((s) => ({ ...s, runbook })));
  d.approvals.push(...r.approvals.map((a) => ({ ...a, runbook })));
  for (const n of r.notes)
    d.findings.push({ severity: /breach|missed/i.test(n) ? 'critical' : 'info', text: `${runbook}: ${n}` });
}
