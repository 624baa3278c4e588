/**
 * The run's page in the Temporal Web UI: a small Markdown document (the workflow's "current details")
 * that says what the runbook has done, where it waits, and the exact signal to send from the UI's
 * Send Signal dialog. RunbookRun decides when (state changes, never a timer); runs without a gate
 * (backups, the binlog archive, readiness, the monitor) write a StatusPage the same way (publishStatusPage).
 * setCurrentDetails is served by the SDK's metadata query, not recorded as a command, so writing the
 * page never changes what a run replays.
 */
import { setCurrentDetails } from '@temporalio/workflow';
import {
  APPROVAL_SIGNATURE_NAMESPACE,
  type Approval,
  type BackupCompliance,
  type StepRecord,
  type PageGate,
} from '../contract';

export interface RunbookPage {
  runbook: string;
  service: string;
  workflowId: string;
  mode: string | null;
  reason: string | null;
  phase: string;
  /** done, failed, aborted or null while running. */
  outcome: string | null;
  steps: StepRecord[];
  gate: PageGate | null;
  /** The gate is a child's: approvals sent to this run are relayed to that child run. */
  gateOfChild: string | null;
  /** A child runbook this run waits on; approvals sent here are relayed to it. */
  child: string | null;
  rto: { startedAt: string; usedSeconds: number; targetSeconds: number; measuredSeconds: number | null };
  rpo: { targetSeconds: number; measuredSeconds: number | null };
  aborted: { by: string; reason: string } | null;
  notes: string[];
}

const STEP_ICON: Record<StepRecord['state'], string> = {
  running: '▶',
  waiting: '⏸',
  succeeded: '✔',
  failed: '✖',
  skipped: '–',
  pending: '…',
};

/** Table cells hold one line without pipes; long details are cut so the page stays small. */
function cell(text: string | undefined, max = 140): string {
  const flat = (text ?? '').replace(/\s+/g, ' ').replace(/\|/g, '\\|').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** HH:MM:SS of an ISO time (the page is read during the run; the date is in the run's header). */
const clock = (at: string | undefined) => (at ? at.slice(11, 19) : '');

/** The approval an approver pastes into Send Signal: the step, a name placeholder, the flags this gate needs. */
export function approvalPayload(
  gate: Pick<PageGate, 'step' | 'requireOverrideRpo' | 'requireUnfencedAck' | 'signing'>,
): Approval {
  return {
    step: gate.step,
    approver: '<your name>',
    ...(gate.requireOverrideRpo ? { overrideRpo: true } : {}),
    ...(gate.requireUnfencedAck ? { acknowledgeUnfenced: true } : {}),
    ...(gate.signing ? { signature: '<the one line the command below prints>' } : {}),
  };
}

/** The shell command that signs `message` with the approver's SSH key and prints the signature on one line. */
export function signCommand(message: string, key = '~/.ssh/id_ed25519'): string {
  const printf = message.replace(/\n/g, '\\n');
  return (
    `printf '${printf}' | ssh-keygen -Y sign -n ${APPROVAL_SIGNATURE_NAMESPACE} -f ${key} | sed '1d;$d' | tr ` +
    `-d '\\n'`
  );
}

export function renderPage(p: RunbookPage): string {
  const lines: string[] = [];
  const title = [p.runbook, p.service, p.mode ? `(${p.mode})` : ''].filter(Boolean).join(' ');
  lines.push(`## ${title}: ${p.outcome ?? p.phase}`);
  if (p.reason) lines.push('', `**Reason:** ${cell(p.reason, 300)}`);
  const rto =
    p.rto.measuredSeconds !== null
      ? `**RTO:** measured ${p.rto.measuredSeconds} s of ${p.rto.targetSeconds} s target ` +
        `(${share(p.rto.measuredSeconds, p.rto.targetSeconds)})`
      : `**RTO clock:** ${p.rto.usedSeconds} s used of ${p.rto.targetSeconds} s (since ${p.rto.startedAt})`;
  const rpo =
    p.rpo.measuredSeconds !== null
      ? `**RPO:** measured ${p.rpo.measuredSeconds} s of ${p.rpo.targetSeconds} s target`
      : `**RPO target:** ${p.rpo.targetSeconds} s (not measured yet)`;
  lines.push('', `${rto} · ${rpo}`);

  if (p.gate) lines.push('', ...renderGate(p.workflowId, p.gate, p.gateOfChild));
  if (p.child && !p.gate) {
    lines.push(
      '',
      `### Running child runbook \`${p.child}\``,
      `Its own page shows what it waits for. An \`approve\` signal sent to **this** run is relayed to \`${p.child}\`;`,
      `\`drctl approve ${p.workflowId} --step <step> --as <your name>\` does the same.`,
    );
  }

  lines.push('', ...renderSteps(p.steps));

  if (p.aborted) lines.push('', `**Abort requested** by ${cell(p.aborted.by, 60)}: ${cell(p.aborted.reason, 200)}`);
  else if (!p.outcome)
    lines.push(
      '',
      '### Abort',
      'Send Signal → `abort` with `{"by": "<your name>", "reason": "<why>"}` ' +
        `(or \`drctl abort ${p.workflowId} --as <your name> --reason "<why>"\`). ` +
        'Before the estate changes the run stops at once; after, it stops at the next gate, nothing left half-done.',
    );
  const notes = p.notes.slice(-5);
  if (notes.length) lines.push('', '### Notes', ...notes.map((n) => `- ${cell(n, 300)}`));
  return lines.join('\n');
}

/** The steps so far as a table: state, name, times, what it found or did. */
function renderSteps(steps: StepRecord[]): string[] {
  const lines = ['### Steps', '', '| | step | started | ended | detail |', '|---|---|---|---|---|'];
  for (const s of steps)
    lines.push(
      `| ${STEP_ICON[s.state]} ${s.state} | ${cell(s.name, 60)} | ${clock(s.startedAt)} | ${clock(s.endedAt)} ` +
        `| ${cell(s.detail)} |`,
    );
  if (steps.length === 0) lines.push('| | (none yet) | | | |');
  return lines;
}

/**
 * The page of a run with no gate and no RTO clock (backups, the binlog archive, readiness, the monitor):
 * what it is doing, the facts an operator asks first, its steps, what failed and where to look next.
 */
export interface StatusPage {
  runbook: string;
  /** The service, or the services a fan-out run covers ('*' for all). */
  service: string;
  phase: string;
  /** done, failed, ready, not ready … or null while running. */
  outcome: string | null;
  /** One line each, `label: value`, shown under the title. */
  facts: [string, string][];
  steps: StepRecord[];
  /** What went wrong, one line each (the run's failures or failing checks). */
  problems: string[];
  /** Where to look or what to run next. */
  next: string[];
}

export function renderStatusPage(p: StatusPage): string {
  const lines = [`## ${p.runbook} ${p.service}: ${p.outcome ?? p.phase}`];
  // A fleet run lists each service's facts: the first 30 lines, the rest in the `status` query.
  const facts = p.facts.slice(0, 30).map(([label, value]) => `- **${label}:** ${cell(value, 300)}`);
  if (p.facts.length > 30) facts.push(`- … ${p.facts.length - 30} more in the \`status\` query`);
  if (facts.length) lines.push('', ...facts);
  if (p.problems.length) lines.push('', '### Problems', ...p.problems.slice(-10).map((x) => `- ✖ ${cell(x, 300)}`));
  lines.push('', ...renderSteps(p.steps.slice(-40)));
  if (p.steps.length > 40) lines.push('', `(${p.steps.length - 40} earlier steps: the \`status\` query has them all)`);
  if (p.next.length) lines.push('', '### Next', ...p.next.map((x) => `- ${x}`));
  return lines.join('\n');
}

function renderGate(workflowId: string, g: PageGate, child: string | null): string[] {
  const payload = approvalPayload(g);
  const flags = `${g.requireOverrideRpo ? ' --override-rpo' : ''}${g.requireUnfencedAck ? ' --ack-unfenced' : ''}`;
  return [
    `### ⏸ Waiting for approval: \`${g.step}\``,
    '',
    ...(child ? [`The child runbook \`${child}\` waits; an approval sent to **this** run is relayed to it.`, ''] : []),
    `${cell(g.question, 400)}`,
    '',
    `- **Needs:** ${g.needed} more approver(s)` +
      (g.approvedBy.length ? `; approved so far by ${g.approvedBy.join(', ')}` : ''),
    `- **Who may approve:** ${g.approvers.join(', ')}`,
    `- **Deadline:** ${g.deadline} (a reminder goes out, then the run aborts before \`${g.step}\`)`,
    ...(g.requireOverrideRpo
      ? ['- The expected data loss exceeds the RPO target: one approval must say `overrideRpo`.']
      : []),
    ...(g.requireUnfencedAck
      ? ['- The old primary is not (or may not be) fenced: one approval must say `acknowledgeUnfenced`.']
      : []),
    '',
    'In this page: **More Actions → Send Signal**, signal name `approve`, input (put your name in):',
    '',
    '```json',
    JSON.stringify(payload),
    '```',
    '',
    ...(g.signing
      ? [
          '',
          'Approvals of this service are **signed** (inventory `approvals.policy: signed`): `signature` is your SSH',
          'signature over exactly this message (each line ends with a newline), by a key the inventory lists for you:',
          '',
          '```',
          g.signing.message.trimEnd(),
          '```',
          '',
          'Sign it and print the line to paste (the key may be in ssh-agent: give its `.pub` file):',
          '',
          '```sh',
          signCommand(g.signing.message),
          '```',
          '',
          `or \`drctl approve ${workflowId} --step ${g.step} --as <your name>${flags} --print-signature\` prints ` +
            `the whole input.`,
        ]
      : []),
    '',
    `Or from a terminal: \`drctl approve ${workflowId} --step ${g.step} --as <your name>${flags}\`` +
      (g.signing ? ' (signs with `--key`, default `~/.ssh/id_ed25519`)' : ''),
  ];
}

function share(value: number, target: number): string {
  return target > 0 ? `${Math.round((value / target) * 100)}%` : 'no target';
}

/** Write a gate-less run's page now. Callers do so at state changes only (a step started or ended). */
export function publishStatusPage(p: StatusPage): void {
  setCurrentDetails(renderStatusPage(p));
}

/** A backup run's compliance as page facts: copies, 3-2-1(-1), the data-loss window against the RPO. */
export function complianceFacts(c: BackupCompliance): [string, string][] {
  return [
    [
      `${c.service} copies`,
      `${c.copies} verified (${c.mediaKinds.join(', ') || 'none'})${c.offsite ? ', one off-site' : ''}; ` +
        `3-2-1 ${c.rule321 ? 'met' : 'NOT met'}` +
        (c.rule3211 === undefined ? '' : `, 3-2-1-1 ${c.rule3211 ? 'met' : 'NOT met'}`),
    ],
    [
      `${c.service} RPO`,
      c.exposureSeconds === null
        ? `no verified backup to date the data-loss window (target ${c.rpoSeconds} s)`
        : `data-loss window ${c.exposureSeconds} s of ${c.rpoSeconds} s target: ${c.rpoMet ? 'met' : 'MISSED'}`,
    ],
  ];
}
