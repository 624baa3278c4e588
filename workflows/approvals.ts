/**
 * The rules of an approval gate, apart from the run that keeps it (runbook.ts): what a gate asks for, who may approve
 * and when, when it is satisfied, what `status` and the run's page say about it, and how a signature is checked.
 */
import { ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  APPROVAL_SIGNATURE_MAX,
  approvalMessage,
  ErrorType,
  type AbortRequest,
  type Approval,
  type ChildGate,
  type PageGate,
  type RunbookStatus,
} from '../contract';

export interface GateRule {
  /** Distinct approvers needed (productionApprovals: 2 for a critical service, whatever the mode). */
  needed: number;
  /** Expected data loss exceeds the RPO target: one approval must say overrideRpo. */
  requireOverrideRpo?: boolean;
  /** The old primary is (or may be) unfenced: one approval must say acknowledgeUnfenced. */
  requireUnfencedAck?: boolean;
  /** How long to wait before the reminder, and again before aborting. */
  timeoutMs: number;
  /** Called once when the first deadline passes (notify again). */
  onReminder?: () => Promise<void>;
  /** What the approvers are asked, shown in `status`. */
  question: string;
}

export interface PendingGate extends GateRule {
  step: string;
  deadline: number;
  approvals: Approval[];
}

/** What the run's page says besides the steps: the input's mode and reason, the child it waits on, the outcome. */
export interface RunPage {
  mode: string | null;
  reason: string | null;
  child: string | null;
  /** The gate the child waits at, as the child told this run (drill). */
  childGate: ChildGate | null;
  outcome: string | null;
}

/** Under the inventory's `signed` policy: where signatures are checked. */
export type SignatureCheck = { verifyApprovalSignature: Activities['verifyApprovalSignature'] };

const iso = (ms: number) => new Date(ms).toISOString();

/** Why approval `a` cannot be accepted now, or null. */
export function approvalProblem(
  a: Approval,
  run: { signed: boolean; approvers: string[]; pending: PendingGate | null; phase: string },
): string | null {
  const { signed, approvers, pending } = run;
  if (!a || typeof a.approver !== 'string' || typeof a.step !== 'string') return 'an approval needs { step, approver }';
  if (signed && (typeof a.signature !== 'string' || !a.signature.trim()))
    return (
      `the approval policy is "signed": an approval needs a signature by ${a.approver}'s SSH key over this run's ` +
      "approval message (drctl approve signs; the run's page shows the message)"
    );
  if (signed && a.signature!.length > APPROVAL_SIGNATURE_MAX)
    return `the signature is longer than ${APPROVAL_SIGNATURE_MAX} characters`;
  if (!approvers.includes(a.approver)) {
    return (
      `${ErrorType.ApproverNotAllowed}: "${a.approver}" is not an approver in the inventory ` +
      `(${approvers.join(', ')})`
    );
  }
  if (!pending) return `no approval is pending (phase: ${run.phase})`;
  if (a.step !== pending.step) return `the pending approval is for step "${pending.step}", not "${a.step}"`;
  if (pending.approvals.some((x) => x.approver === a.approver)) return `${a.approver} has already approved ${a.step}`;
  return null;
}

export function satisfied(p: PendingGate): boolean {
  return (
    distinct(p.approvals) >= p.needed &&
    (!p.requireOverrideRpo || p.approvals.some((a) => a.overrideRpo)) &&
    (!p.requireUnfencedAck || p.approvals.some((a) => a.acknowledgeUnfenced))
  );
}

/** The pending gate as `status` shows it. */
export function pendingApprovalOf(p: PendingGate, approvers: string[]): RunbookStatus['pendingApproval'] {
  return {
    step: p.step,
    needed: p.needed - distinct(p.approvals),
    approvers,
    deadline: iso(p.deadline),
    question: p.question,
    requireOverrideRpo: Boolean(p.requireOverrideRpo),
    requireUnfencedAck: Boolean(p.requireUnfencedAck),
  };
}

/** The pending gate as the run's page shows it, with the message to sign under `signed`. */
export function pageGateOf(p: PendingGate, approvers: string[], signed: boolean): PageGate {
  return {
    step: p.step,
    question: p.question,
    needed: Math.max(0, p.needed - distinct(p.approvals)),
    approvers,
    deadline: iso(p.deadline),
    requireOverrideRpo: Boolean(p.requireOverrideRpo),
    requireUnfencedAck: Boolean(p.requireUnfencedAck),
    approvedBy: p.approvals.map((a) => a.approver),
    signing: signed
      ? {
          message: approvalMessage({
            workflowId: workflowInfo().workflowId,
            runId: workflowInfo().runId,
            step: p.step,
            overrideRpo: Boolean(p.requireOverrideRpo),
            acknowledgeUnfenced: Boolean(p.requireUnfencedAck),
          }),
        }
      : null,
  };
}

/**
 * The signing key's fingerprint, or why the signature does not count (wrong run, step or flags, a key not listed for
 * the approver). A key that already approved is refused by the caller.
 */
export async function signatureVerdict(signatures: SignatureCheck, a: Approval): Promise<{ key: string } | string> {
  const { workflowId, runId } = workflowInfo();
  const message = approvalMessage({ workflowId, runId, ...a });
  const verdict = await signatures.verifyApprovalSignature({
    approver: a.approver,
    message,
    signature: a.signature ?? '',
  });
  if (!verdict.valid) return verdict.reason;
  return { key: verdict.key };
}

/** An approval without its signature (checked once; status, page and reports keep the key's fingerprint instead). */
export function unsigned(a: Approval): Approval {
  if (!a || typeof a !== 'object' || !('signature' in a)) return a;
  const rest = { ...a };
  delete rest.signature;
  return rest;
}

export function distinct(approvals: Approval[]): number {
  return new Set(approvals.map((a) => a.approver)).size;
}

export function abortFailure(req: AbortRequest, before: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: ErrorType.Aborted,
    message: `aborted by ${req.by} before ${before}: ${req.reason}`,
    nonRetryable: true,
  });
}
