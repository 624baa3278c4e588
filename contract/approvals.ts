/** Approvals: what an approver sends, what a run asks for at a gate, and what a signed approval covers. */

export interface Approval {
  step: string;
  approver: string;
  comment?: string;
  /** Promote although the expected data loss exceeds the tier's RPO. */
  overrideRpo?: boolean;
  /** The old primary could not be fenced; the approver accepts the split-brain risk. */
  acknowledgeUnfenced?: boolean;
  /**
   * Under the inventory's `signed` policy: the approver's SSH signature (`ssh-keygen -Y sign -n drbook-approval`,
   * armored or its base64 on one line) over approvalMessage() of this run and gate. Not kept once checked.
   */
  signature?: string;
  /** Set by the run when it accepts a signed approval: the fingerprint of the key that signed it. */
  signedWith?: string;
  at?: string;
}

/** The SSH signature namespace of approvals: a signature made for anything else (git, files) never verifies. */
export const APPROVAL_SIGNATURE_NAMESPACE = 'drbook-approval';
/** The longest signature an approval may carry (an RSA-4096 SSHSIG is about 1,100 characters). */
export const APPROVAL_SIGNATURE_MAX = 8192;

/**
 * The exact text an approver signs under the `signed` policy: this run (workflow id AND run id, so an approval
 * cannot be replayed into another run of the same id) and this gate, with the flags the approver sets.
 */
export function approvalMessage(a: {
  workflowId: string;
  runId: string;
  step: string;
  overrideRpo?: boolean;
  acknowledgeUnfenced?: boolean;
}): string {
  return [
    'drbook-approval/1',
    `workflow: ${a.workflowId}`,
    `run: ${a.runId}`,
    `step: ${a.step}`,
    `override-rpo: ${a.overrideRpo ? 'yes' : 'no'}`,
    `acknowledge-unfenced: ${a.acknowledgeUnfenced ? 'yes' : 'no'}`,
    '',
  ].join('\n');
}

/**
 * An approval's signature as ssh-keygen reads it: the armored block, whether it came armored or as its base64 on
 * one line (what fits a JSON field in the Web UI). Null when it is neither.
 */
export function armorSshSignature(signature: string): string | null {
  const body = signature
    .replace('-----BEGIN SSH SIGNATURE-----', '')
    .replace('-----END SSH SIGNATURE-----', '')
    .replace(/\s+/g, '');
  if (!/^U1NIU0lH[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length > APPROVAL_SIGNATURE_MAX) return null; // "SSHSIG"
  const lines = body.match(/.{1,70}/g) ?? [];
  return ['-----BEGIN SSH SIGNATURE-----', ...lines, '-----END SSH SIGNATURE-----', ''].join('\n');
}

export interface PendingApproval {
  step: string;
  /** Distinct approvers still needed. */
  needed: number;
  approvers: string[];
  deadline: string;
  question: string;
  requireOverrideRpo: boolean;
  requireUnfencedAck: boolean;
}

export interface ApprovalReceipt {
  accepted: true;
  step: string;
  approver: string;
  /** Distinct approvers still needed at this gate after this one. */
  stillNeeded: number;
}

export interface AbortRequest {
  by: string;
  reason: string;
}

export interface PageGate {
  step: string;
  question: string;
  /** Distinct approvers still needed. */
  needed: number;
  approvers: string[];
  deadline: string;
  requireOverrideRpo: boolean;
  requireUnfencedAck: boolean;
  approvedBy: string[];
  /** Under the inventory's `signed` policy: the exact message an approval's signature covers (approvalMessage). */
  signing?: { message: string } | null;
}

/** A child runbook's gate as its parent (the drill) shows it: approvals sent to the parent are relayed there. */
export interface ChildGate extends PageGate {
  child: string;
}
