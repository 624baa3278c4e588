/**
 * The bookkeeping every runbook shares: named steps with timings (the `status` query),
 * approval gates (the `approve` signal and update, deadlines, reminders), `abort`, the
 * RTO clock, and the search attributes. Runbook files stay a list of named steps.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  getExternalWorkflowHandle,
  patched,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import {
  type ServicePlan,
  APPROVAL_SIGNATURE_MAX,
  approvalMessage,
  ErrorType,
  type Approval,
  type RunbookStatus,
  type StepRecord,
  type Topology,
  abortSignal,
  approveSignal,
  approveUpdate,
  childGateSignal,
  statusQuery,
  type AbortRequest,
  type ApprovalReceipt,
  type ChildGate,
  type PageGate,
} from '../contract';
import type { Activities } from '../activities';
import { renderPage } from './page';
import { drActivities, reads } from './activity-options';
import { reasonOf } from './plan';

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

interface PendingGate extends GateRule {
  step: string;
  deadline: number;
  approvals: Approval[];
}

const iso = (ms: number) => new Date(ms).toISOString();

export class RunbookRun {
  readonly steps: StepRecord[] = [];
  readonly approvals: Approval[] = [];
  readonly rejectedApprovals: { approval: Approval; reason: string }[] = [];
  readonly notes: string[] = [];
  private phaseNow = 'starting';
  private abortedBy: AbortRequest | null = null;
  measured: RunbookStatus['measured'] = { rtoSeconds: null, rpoSeconds: null };
  /** The live roles, once the run has read them (shown by `status`). */
  topology: Topology | null = null;
  private pending: PendingGate | null = null;
  /** Set once the run starts changing the estate: from then on abort waits for a gate. */
  private changing = false;
  /** Steps running now, in start order (several run together in places). */
  private readonly running: string[] = [];
  /** Under the inventory's `signed` policy: where signatures are checked (null: `named`, the approver's name counts). */
  private signatures: { verifyApprovalSignature: Activities['verifyApprovalSignature'] } | null = null;
  /** What the run's page says besides the steps: the input's mode and reason, the child it waits on, the outcome. */
  private page: {
    mode: string | null;
    reason: string | null;
    child: string | null;
    /** The gate the child waits at, as the child told this run (drill). */
    childGate: ChildGate | null;
    outcome: string | null;
  } = {
    mode: null,
    reason: null,
    child: null,
    childGate: null,
    outcome: null,
  };

  constructor(
    readonly runbook: string,
    readonly service: string,
    readonly targets: { rtoSeconds: number; rpoSeconds: number },
    readonly approvers: string[],
    /** The RTO clock's start: the incident start, or the moment the run started. */
    readonly clockStartedAt: number,
  ) {
    setHandler(statusQuery, () => this.status());
    setHandler(abortSignal, (req) => {
      this.aborted ??= req;
    });
    setHandler(approveSignal, (approval) => {
      const problem = this.checkApproval(approval);
      if (problem) this.rejectedApprovals.push({ approval: unsigned(approval), reason: problem });
      else if (!this.signatures) this.accept(approval);
      // A refused signed approval is recorded by acceptSigned; a signal has no caller to tell.
      else
        return this.acceptSigned(approval).then(
          () => undefined,
          () => undefined,
        );
      return undefined;
    });
    this.publish();
    // The validator makes the cheap checks (no history for a refused update). Under `signed` the signature is then
    // checked by an activity, in the handler, and a bad one is recorded as rejected.
    setHandler(approveUpdate, (approval) => (this.signatures ? this.acceptSigned(approval) : this.accept(approval)), {
      validator: (approval: Approval) => {
        const problem = this.checkApproval(approval);
        if (problem) {
          const type = problem.startsWith(ErrorType.ApproverNotAllowed)
            ? ErrorType.ApproverNotAllowed
            : 'ApprovalRejected';
          throw ApplicationFailure.create({ type, message: problem, nonRetryable: true });
        }
      },
    });
  }

  /**
   * The inventory's `signed` policy: from now on an approval counts only with a valid SSH signature by a key listed
   * for its approver, checked by an activity on the DR side's queue (the primary region may be gone). Plans recorded
   * before the policy existed have none: `named`, and no new command on replay.
   */
  requireSignedApprovals(plan: Pick<ServicePlan, 'approvalPolicy' | 'regions'>): void {
    if (plan.approvalPolicy !== 'signed') return;
    this.signatures = drActivities(plan, reads, this);
    this.publish();
  }

  /** Search attributes (service, runbook, mode, outcome) for filtering runs in the Web UI; the page shows them too. */
  tag(pairs: SearchAttributeUpdatePair[]): void {
    upsertSearchAttributes(pairs);
    for (const { key, value } of pairs) {
      if (key.name === 'DrMode' && typeof value === 'string') this.page.mode ??= value;
      if (key.name === 'DrOutcome' && typeof value === 'string') this.page.outcome = value;
    }
    this.publish();
  }

  /** What the operator asked for (shown on the run's page): the reason, and the mode where tag() does not say it. */
  describe(about: { mode?: string; reason?: string }): void {
    if (about.mode) this.page.mode = about.mode;
    if (about.reason) this.page.reason = about.reason;
    this.publish();
  }

  /** The child runbook this run waits on (null when none): its page says what to approve. */
  waitingOnChild(workflowId: string | null): void {
    this.page.child = workflowId;
    if (this.page.childGate?.child !== workflowId) this.page.childGate = null;
    this.publish();
  }

  /** The gate the child this run waits on has opened, changed or closed (null): shown on this run's page. */
  showChildGate(gate: ChildGate | null): void {
    this.page.childGate = gate && gate.child === this.page.child ? gate : null;
    this.publish();
  }

  /**
   * A drill's child tells the drill about its gate when it opens, changes or closes, so the drill's page shows
   * the step, who may approve and the signal to paste (the drill relays what it receives).
   */
  private async tellParentDrill(): Promise<void> {
    const parent = workflowInfo().parent;
    if (!parent?.workflowId.startsWith('drill-') || !patched('gate-on-drill-page')) return;
    const gate = this.pageGate();
    await getExternalWorkflowHandle(parent.workflowId, parent.runId)
      .signal(childGateSignal, gate ? { ...gate, child: workflowInfo().workflowId } : null)
      .catch(() => undefined); // the drill has ended: nobody reads its page any more
  }

  private pageGate(): PageGate | null {
    const p = this.pending;
    return p
      ? {
          step: p.step,
          question: p.question,
          needed: Math.max(0, p.needed - distinct(p.approvals)),
          approvers: this.approvers,
          deadline: iso(p.deadline),
          requireOverrideRpo: Boolean(p.requireOverrideRpo),
          requireUnfencedAck: Boolean(p.requireUnfencedAck),
          approvedBy: p.approvals.map((a) => a.approver),
          signing: this.signatures
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
        }
      : null;
  }

  get phase(): string {
    return this.phaseNow;
  }

  set phase(phase: string) {
    this.phaseNow = phase;
    this.publish();
  }

  get aborted(): AbortRequest | null {
    return this.abortedBy;
  }

  set aborted(req: AbortRequest | null) {
    this.abortedBy = req;
    this.publish();
  }

  /**
   * Write the run's page (the workflow's current details, Markdown in the Web UI). Called at state changes
   * only; it is not a command, so it never changes what a run replays.
   */
  publish(): void {
    const now = Date.now();
    const own = this.pageGate();
    setCurrentDetails(
      renderPage({
        runbook: this.runbook,
        service: this.service,
        workflowId: workflowInfo().workflowId,
        mode: this.page.mode,
        reason: this.page.reason,
        phase: this.phaseNow,
        outcome: this.page.outcome,
        steps: this.steps,
        gate: own ?? this.page.childGate,
        gateOfChild: own ? null : (this.page.childGate?.child ?? null),
        child: this.page.child,
        rto: {
          startedAt: iso(this.clockStartedAt),
          usedSeconds: Math.round((now - this.clockStartedAt) / 1000),
          targetSeconds: this.targets.rtoSeconds,
          measuredSeconds: this.measured.rtoSeconds,
        },
        rpo: { targetSeconds: this.targets.rpoSeconds, measuredSeconds: this.measured.rpoSeconds },
        aborted: this.abortedBy,
        notes: this.notes,
      }),
    );
  }

  status(): RunbookStatus {
    const now = Date.now();
    const used = Math.round((now - this.clockStartedAt) / 1000);
    return {
      runbook: this.runbook,
      service: this.service,
      phase: this.phase,
      steps: this.steps.map((s) => ({ ...s })),
      pendingApproval: this.pending
        ? {
            step: this.pending.step,
            needed: this.pending.needed - distinct(this.pending.approvals),
            approvers: this.approvers,
            deadline: iso(this.pending.deadline),
            question: this.pending.question,
            requireOverrideRpo: Boolean(this.pending.requireOverrideRpo),
            requireUnfencedAck: Boolean(this.pending.requireUnfencedAck),
          }
        : null,
      measured: { ...this.measured },
      targets: this.targets,
      rtoClock: { startedAt: iso(this.clockStartedAt), usedSeconds: used, leftSeconds: this.targets.rtoSeconds - used },
      approvals: [...this.approvals],
      rejectedApprovals: [...this.rejectedApprovals],
      aborted: this.aborted,
      notes: [...this.notes],
      ...(this.topology ? { topology: this.topology } : {}),
    };
  }

  /** Run one named step, recording its timing and outcome; a failure fails the run with the step named. */
  async step<T>(name: string, work: () => Promise<T>, describe: (result: T) => string = () => ''): Promise<T> {
    this.honourAbort(name);
    const record: StepRecord = { name, state: 'running', startedAt: iso(Date.now()), attempts: 1 };
    this.steps.push(record);
    this.running.push(name);
    this.phase = name;
    try {
      const result = await work();
      record.state = 'succeeded';
      record.detail = describe(result);
      return result;
    } catch (err) {
      record.state = 'failed';
      record.detail = reasonOf(err);
      // Surface the typed failure (the activity's own, or the step's), named by step, so operators see the cause first.
      const cause = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause : err;
      if (cause instanceof ApplicationFailure && !cause.message.startsWith('step ')) {
        throw ApplicationFailure.create({
          type: cause.type ?? ErrorType.StepFailed,
          message: `step ${name} failed: ${cause.message}`,
          nonRetryable: true,
          details: [{ step: name }],
        });
      }
      throw err;
    } finally {
      record.endedAt = iso(Date.now());
      this.running.splice(this.running.lastIndexOf(name), 1);
      this.publish();
    }
  }

  /** The step most recently started and still running: activity summaries name it. */
  get currentStep(): string | null {
    return this.running.length ? this.running[this.running.length - 1] : null;
  }

  skip(name: string, why: string): void {
    const now = iso(Date.now());
    this.steps.push({ name, state: 'skipped', startedAt: now, endedAt: now, attempts: 0, detail: why });
    this.publish();
  }

  /** From here on the run changes the estate. */
  startChanging(): void {
    this.changing = true;
  }

  /**
   * Wait for approval. The first deadline sends a reminder; the second aborts cleanly
   * (nothing after the gate has run). `abort` ends the wait at once.
   */
  async gate(step: string, rule: GateRule): Promise<Approval[]> {
    const { timeoutMs } = rule;
    this.pending = { ...rule, step, deadline: Date.now() + timeoutMs, approvals: [] };
    const record: StepRecord = {
      name: `approve-${step}`,
      state: 'waiting',
      startedAt: iso(Date.now()),
      attempts: 1,
      detail: rule.question,
    };
    this.steps.push(record);
    this.phase = `waiting for approval: ${step}`;
    const done = () => this.aborted !== null || this.satisfied();
    try {
      await this.tellParentDrill();
      if (!(await condition(done, timeoutMs))) {
        record.detail = `no approval by ${iso(this.pending.deadline)}: reminded`;
        this.pending.deadline = Date.now() + timeoutMs;
        this.publish();
        await this.tellParentDrill();
        if (rule.onReminder) await rule.onReminder();
        if (!(await condition(done, timeoutMs))) {
          record.state = 'failed';
          record.detail = `no approval after two deadlines (${Math.round((2 * timeoutMs) / 1000)} s): aborted before ${step}`;
          throw ApplicationFailure.create({
            type: ErrorType.ApprovalTimedOut,
            message: record.detail,
            nonRetryable: true,
          });
        }
      }
      if (this.aborted) {
        record.state = 'failed';
        record.detail = `aborted by ${this.aborted.by}: ${this.aborted.reason}`;
        throw abortFailure(this.aborted, step);
      }
      record.state = 'succeeded';
      record.detail = this.pending.approvals.map((a) => a.approver).join(' + ');
      return this.pending.approvals;
    } finally {
      record.endedAt = iso(Date.now());
      this.pending = null;
      this.publish();
      await this.tellParentDrill();
    }
  }

  private satisfied(): boolean {
    const p = this.pending;
    if (!p) return false;
    return (
      distinct(p.approvals) >= p.needed &&
      (!p.requireOverrideRpo || p.approvals.some((a) => a.overrideRpo)) &&
      (!p.requireUnfencedAck || p.approvals.some((a) => a.acknowledgeUnfenced))
    );
  }

  /** Why an approval cannot be accepted now, or null. */
  private checkApproval(a: Approval): string | null {
    if (!a || typeof a.approver !== 'string' || typeof a.step !== 'string')
      return 'an approval needs { step, approver }';
    if (this.signatures && (typeof a.signature !== 'string' || !a.signature.trim()))
      return `the approval policy is "signed": an approval needs a signature by ${a.approver}'s SSH key over this run's approval message (drctl approve signs; the run's page shows the message)`;
    if (this.signatures && a.signature!.length > APPROVAL_SIGNATURE_MAX)
      return `the signature is longer than ${APPROVAL_SIGNATURE_MAX} characters`;
    if (!this.approvers.includes(a.approver)) {
      return `${ErrorType.ApproverNotAllowed}: "${a.approver}" is not an approver in the inventory (${this.approvers.join(', ')})`;
    }
    if (!this.pending) return `no approval is pending (phase: ${this.phase})`;
    if (a.step !== this.pending.step) return `the pending approval is for step "${this.pending.step}", not "${a.step}"`;
    if (this.pending.approvals.some((x) => x.approver === a.approver))
      return `${a.approver} has already approved ${a.step}`;
    return null;
  }

  /**
   * Under `signed`: the signature checked by the activity, then the checks again (other approvals may have come while
   * it ran) and one key once. A refusal is recorded and fails the update with its reason.
   */
  private async acceptSigned(a: Approval): Promise<ApprovalReceipt> {
    const verdict = await this.checkSignature(a);
    // Checked here, with no await before accept(): two approvals signed by one key and verified at the same time
    // must not both count.
    const same =
      typeof verdict === 'object' && verdict ? this.pending?.approvals.find((x) => x.signedWith === verdict.key) : null;
    const problem =
      typeof verdict === 'string'
        ? verdict
        : same
          ? `the key ${same.signedWith} already approved ${a.step} (as ${same.approver}): one key counts once`
          : this.checkApproval(a);
    if (problem !== null) {
      this.rejectedApprovals.push({ approval: unsigned(a), reason: problem });
      this.publish();
      throw ApplicationFailure.create({ type: ErrorType.ApprovalRejected, message: problem, nonRetryable: true });
    }
    return this.accept(a, typeof verdict === 'object' && verdict ? verdict.key : undefined);
  }

  /**
   * Under `signed`: the signing key's fingerprint, or why the signature does not count (wrong run, step or flags, a
   * key not listed for the approver). Null under `named`. A key that already approved is refused by the caller.
   */
  private async checkSignature(a: Approval): Promise<{ key: string } | string | null> {
    if (!this.signatures) return null;
    const { workflowId, runId } = workflowInfo();
    const message = approvalMessage({ workflowId, runId, ...a });
    const verdict = await this.signatures.verifyApprovalSignature({
      approver: a.approver,
      message,
      signature: a.signature ?? '',
    });
    if (!verdict.valid) return verdict.reason;
    return { key: verdict.key };
  }

  private accept(a: Approval, signedWith?: string): ApprovalReceipt {
    const approval = { ...unsigned(a), ...(signedWith ? { signedWith } : {}), at: iso(Date.now()) };
    this.pending!.approvals.push(approval);
    this.approvals.push(approval);
    this.publish();
    void this.tellParentDrill(); // the drill's page shows who approved so far
    return {
      accepted: true,
      step: a.step,
      approver: a.approver,
      stillNeeded: Math.max(0, this.pending!.needed - distinct(this.pending!.approvals)),
    };
  }

  /** Abort is honoured before any change; once changes have begun it waits for the next gate (none is left half-done). */
  private honourAbort(next: string): void {
    if (!this.aborted) return;
    if (!this.changing) throw abortFailure(this.aborted, next);
    this.notes.push(
      `abort requested by ${this.aborted.by} while changing the estate: finishing the run rather than leaving it half-done`,
    );
  }
}

/** An approval without its signature (checked once; status, page and reports keep the key's fingerprint instead). */
function unsigned(a: Approval): Approval {
  if (!a || typeof a !== 'object' || !('signature' in a)) return a;
  const rest = { ...a };
  delete rest.signature;
  return rest;
}

function distinct(approvals: Approval[]): number {
  return new Set(approvals.map((a) => a.approver)).size;
}

function abortFailure(req: AbortRequest, before: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: ErrorType.Aborted,
    message: `aborted by ${req.by} before ${before}: ${req.reason}`,
    nonRetryable: true,
  });
}

export function workflowIdFor(runbook: string, service: string): string {
  return `${runbook}-${service}`;
}

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
      message: `a ${runbook} of ${service} must run as workflow id "${expected}" (got "${actual}"), so that only one can run at a time`,
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
