/** The approval gate: people approve the failover, or the inventory does for an unattended one from the monitor. */
import { patched } from '@temporalio/workflow';
import type { Approval } from '../../contract';
import { gateApprovals } from '../plan';
import type { RunbookRun } from '../runbook';
import { approvalTimeoutMs, notifyPeople } from '../steps';
import type { Assessment } from './assess';
import type { Failover } from './context';

export interface Approved {
  approvals: Approval[];
  /** Approved by the inventory: nobody is there to acknowledge an unfenced old primary. */
  unattended: boolean;
  /** Expected data loss over the RPO target: the promotion needs an approval that overrides it. */
  overRpo: boolean;
  /** Each later gate (unfenced, fence lost) waits as long as this one. */
  timeoutMs: number;
}

export async function approve(f: Failover, assessment: Assessment): Promise<Approved> {
  const { run, plan, svc, input, acts } = f;
  const overRpo = assessment.expectedRpoSeconds > plan.targets.rpoSeconds;
  const timeoutMs = approvalTimeoutMs(plan.targets.rtoSeconds, f.incidentStartedAt);
  // The inventory may let the monitor fail a service over unattended, but never past its RPO.
  const unattended = f.claimedByMonitor && svc.autoFailover && !overRpo;
  // Since 'unattended-fence': the inventory approves the failover, never an unfenced old primary.
  const approvals: Approval[] = unattended
    ? autoApproval(run, !patched('unattended-fence'))
    : await run.gate('promote', {
        needed: gateApprovals(svc, input.mode),
        requireOverrideRpo: overRpo,
        requireUnfencedAck: Boolean(svc.database) && svc.strategy !== 'hot' && !assessment.primaryReachable,
        timeoutMs,
        question:
          `fail ${svc.name} over to the DR side (${input.mode}): ${assessment.detail}` +
          (overRpo ? ` — expected data loss over the ${plan.targets.rpoSeconds} s RPO: needs overrideRpo` : ''),
        onReminder: () =>
          notifyPeople(
            plan,
            acts,
            `APPROVAL NEEDED: failover of ${svc.name}`,
            `Still waiting for approval: ${assessment.detail}`,
            'reminder',
          ),
      });
  run.startChanging();
  return { approvals, unattended, overRpo, timeoutMs };
}

/**
 * The inventory's autoFailover stands in for the approvers (recorded as such in the report). It
 * approves the failover, not a split-brain risk: an unfenced old primary is fenced through the AWS
 * API or left to a human (runs from before the 'unattended-fence' patch acknowledged it).
 */
function autoApproval(run: RunbookRun, acknowledgeUnfenced: boolean): Approval[] {
  const approval: Approval = {
    step: 'promote',
    approver: 'inventory:autoFailover',
    comment: 'monitor-detected incident; the inventory allows unattended failover',
    acknowledgeUnfenced,
    at: new Date(Date.now()).toISOString(),
  };
  run.approvals.push(approval);
  run.skip('approve-promote', 'unattended: autoFailover in the inventory');
  return [approval];
}
