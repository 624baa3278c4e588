/** drctl approve, abort: answer the gate a run waits at (a drill: its waiting child), or stop the run. */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { Command } from 'commander';
import {
  APPROVAL_SIGNATURE_NAMESPACE,
  approvalMessage,
  type Approval,
  type RunbookStatus,
  type DrillStatus,
  abortSignal,
  approveUpdate,
  statusQuery,
} from '../../contract';
import { OperatorError, type DrctlContext } from '../context';

interface ApproveOptions {
  step: string;
  as: string;
  comment?: string;
  overrideRpo?: boolean;
  ackUnfenced?: boolean;
  json?: boolean;
  key?: string;
  printSignature?: boolean;
}

export function registerApproveCommands(program: Command, ctx: DrctlContext): void {
  program
    .command('approve <workflowId>')
    .description('approve the step a run waits at (a drill: the child runbook that waits)')
    .requiredOption('--step <step>', 'the step waiting for approval (see drctl status)')
    .requiredOption('--as <approver>', 'your name, as listed in the inventory')
    .option('--comment <text>')
    .option('--override-rpo', 'promote although the expected data loss exceeds the RPO')
    .option('--ack-unfenced', 'accept that the old primary could not be fenced')
    .option('--json', 'print the receipt as JSON')
    .option(
      '--key <file>',
      'SSH key that signs the approval (signed policy; default ~/.ssh/id_ed25519, or its .pub with ssh-agent)',
    )
    .option('--print-signature', "print the signed approval as JSON for the Web UI's Send Signal dialog; send nothing")
    .action((workflowId: string, o: ApproveOptions) => approve(ctx, workflowId, o));
  program
    .command('abort <workflowId>')
    .description('abort a run: before any change it stops at once; once changing, at the next gate')
    .requiredOption('--as <name>', 'who aborts')
    .requiredOption('--reason <text>', 'why')
    .action(async (workflowId: string, o: { as: string; reason: string }) => {
      const { handle, info } = await ctx.handleFor(workflowId);
      if (info.status.name !== 'RUNNING') throw new OperatorError(`${workflowId} is not running (${info.status.name})`);
      await handle.signal(abortSignal, { by: o.as, reason: o.reason });
      ctx.print(`abort sent to ${workflowId} by ${o.as}: ${o.reason}`);
    });
}

async function approve(ctx: DrctlContext, workflowId: string, o: ApproveOptions): Promise<void> {
  const inv = ctx.inventory();
  const approvers = inv.approvers.map((a) => a.name);
  if (!approvers.includes(o.as))
    throw new OperatorError(`"${o.as}" is not an approver in the inventory (${approvers.join(', ')})`);
  const target = await waitingRun(ctx, workflowId);
  const pending = target.status.pendingApproval;
  if (!pending)
    throw new OperatorError(`${target.workflowId} is not waiting for an approval (phase: ${target.status.phase})`);
  if (pending.step !== o.step)
    throw new OperatorError(`${target.workflowId} waits for approval of step "${pending.step}", not "${o.step}"`);
  const approval: Approval = {
    step: o.step,
    approver: o.as,
    ...(o.comment ? { comment: o.comment } : {}),
    ...(o.overrideRpo ? { overrideRpo: true } : {}),
    ...(o.ackUnfenced ? { acknowledgeUnfenced: true } : {}),
  };
  // Signed: over this run (the waiting child's, for a drill) and gate, with the user's own key; the key is a
  // path on the command line, never its contents.
  if (inv.approvals.policy === 'signed' || o.key || o.printSignature) {
    const message = approvalMessage({ workflowId: target.workflowId, runId: target.runId, ...approval });
    approval.signature = signApproval(message, o.key ?? path.join(os.homedir(), '.ssh', 'id_ed25519'));
  }
  if (o.printSignature) {
    // One line: what the Send Signal dialog takes (the signature's base64 without its armor lines).
    const oneLine = approval
      .signature!.split('\n')
      .filter((l) => l && !l.startsWith('-----'))
      .join('');
    return ctx.print(JSON.stringify({ ...approval, signature: oneLine }));
  }
  try {
    const receipt = await target.handle.executeUpdate(approveUpdate, { args: [approval] });
    if (o.json) return ctx.json({ workflowId: target.workflowId, ...receipt });
    ctx.print(
      `approved ${receipt.step} of ${target.workflowId} as ${receipt.approver}: ` +
        (receipt.stillNeeded ? `${receipt.stillNeeded} more approver(s) needed` : 'the run continues'),
    );
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError)
      throw new OperatorError(`refused: ${err.cause?.message ?? err.message}`);
    throw err;
  }
}

/** The run that waits for approvals: the run itself, or the drill's active child. */
async function waitingRun(ctx: DrctlContext, workflowId: string) {
  const { handle, info } = await ctx.handleFor(workflowId);
  if (info.status.name !== 'RUNNING') throw new OperatorError(`${workflowId} is not running (${info.status.name})`);
  const status = (await handle.query(statusQuery)) as DrillStatus;
  if (status.activeChild) {
    const child = await ctx.handleFor(status.activeChild);
    return {
      workflowId: status.activeChild,
      runId: child.info.runId,
      handle: child.handle,
      status: await child.handle.query(statusQuery),
    };
  }
  return { workflowId, runId: info.runId, handle, status: status as RunbookStatus };
}

/** `ssh-keygen -Y sign` of `message` (on stdin) with the key at `key`: the armored signature. */
function signApproval(message: string, key: string): string {
  const r = spawnSync('ssh-keygen', ['-Y', 'sign', '-n', APPROVAL_SIGNATURE_NAMESPACE, '-f', key], {
    input: message,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  if (r.status !== 0 || !r.stdout.includes('BEGIN SSH SIGNATURE'))
    throw new OperatorError(`could not sign with ${key}: ${(r.stderr || r.error?.message || '').trim()}`);
  return r.stdout;
}
