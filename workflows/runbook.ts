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
  abortFailure,
  approvalProblem,
  distinct,
  pageGateOf,
  pendingApprovalOf,
  satisfied,
  signatureVerdict,
  unsigned,
  type GateRule,
  type PendingGate,
  type RunPage,
  type SignatureCheck,
} from './approvals';
import {
  type ServicePlan,
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
import { renderPage } from './page';
import { drActivities, reads } from './activity-options';
import { reasonOf } from './plan';

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
  /** Under the inventory's `signed` policy: where signatures are checked (null: `named`, the name counts). */
  private signatures: SignatureCheck | null = null;
  /** What the run's page says besides the steps: the input's mode and reason, the child it waits on, the outcome. */
  private page: RunPage = { mode: null, reason: null, child: null, childGate: null, outcome: null };

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
    return this.pending && pageGateOf(this.pending, this.approvers, Boolean(this.signatures));
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
      pendingApproval: this.pending && pendingApprovalOf(this.pending, this.approvers),
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
    const done = () => this.aborted !== null || (this.pending !== null && satisfied(this.pending));
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
          const waited = Math.round((2 * timeoutMs) / 1000);
          record.detail = `no approval after two deadlines (${waited} s): aborted before ${step}`;
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

  /** Why an approval cannot be accepted now, or null. */
  private checkApproval(a: Approval): string | null {
    const signed = Boolean(this.signatures);
    return approvalProblem(a, { signed, approvers: this.approvers, pending: this.pending, phase: this.phase });
  }

  /**
   * Under `signed`: the signature checked by the activity, then the checks again (other approvals may have come while
   * it ran) and one key once. A refusal is recorded and fails the update with its reason.
   */
  private async acceptSigned(a: Approval): Promise<ApprovalReceipt> {
    const verdict = this.signatures ? await signatureVerdict(this.signatures, a) : null;
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

  /** Abort is honoured before any change; once changes began it waits for the next gate (none is left half-done). */
  private honourAbort(next: string): void {
    if (!this.aborted) return;
    if (!this.changing) throw abortFailure(this.aborted, next);
    this.notes.push(
      `abort requested by ${this.aborted.by} while changing the estate: finishing the run rather than leaving ` +
        `it half-done`,
    );
  }
}
