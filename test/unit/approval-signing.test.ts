/**
 * The signed-approval path a Web UI-only operator takes: the runbook page shows the message and the command that
 * signs it; that exact command, run in a shell with a real key, gives the one line the run's activity accepts (and
 * refuses for another run). Real ssh-keygen, keys made in a private temp dir; no services.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createApprovalActivities } from '../../activities/approvals';
import { type Inventory, approvalMessage, type PageGate } from '../../contract';
import { approvalPayload, renderPage, signCommand } from '../../workflows/page';
import { sandbox } from '../helpers/stack';

const dir = mkdtempSync(path.join(tmpdir(), 'drbook-test-signing-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const key = path.join(dir, 'alice');
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'alice@test', '-f', key]);
const inventory: Inventory = {
  ...sandbox().inventory,
  approvals: { policy: 'signed' },
  approvers: [{ name: 'alice', sshKeys: [readFileSync(`${key}.pub`, 'utf8').trim()] }],
};
const { verifyApprovalSignature } = createApprovalActivities(inventory);

test(
  "the page's command signs the page's message; " + "the run's check accepts it, and refuses it for another run",
  async () => {
    const message = approvalMessage({ workflowId: 'failover-shop', runId: 'run-1', step: 'promote' });
    const gate: PageGate = {
      step: 'promote',
      question: 'fail shop over?',
      needed: 2,
      approvers: ['alice'],
      deadline: '2026-12-02T10:00:00.000Z',
      requireOverrideRpo: false,
      requireUnfencedAck: false,
      approvedBy: [],
      signing: { message },
    };
    const page = renderPage({
      runbook: 'failover',
      service: 'shop',
      workflowId: 'failover-shop',
      mode: 'drill',
      reason: null,
      phase: 'waiting for approval: promote',
      outcome: null,
      steps: [],
      gate,
      gateOfChild: null,
      child: null,
      rto: { startedAt: '2026-12-02T09:00:00.000Z', usedSeconds: 1, targetSeconds: 900, measuredSeconds: null },
      rpo: { targetSeconds: 300, measuredSeconds: null },
      aborted: null,
      notes: [],
    });
    expect(page).toContain('run: run-1\nstep: promote\noverride-rpo: no\nacknowledge-unfenced: no\n```');
    expect(page).toContain(signCommand(message));
    expect(page).toContain('--print-signature');
    expect(approvalPayload(gate)).toMatchObject({ signature: expect.any(String) });

    const line = execFileSync('bash', ['-c', signCommand(message, key)], { encoding: 'utf8' });
    expect(line).toMatch(/^U1NIU0lH[A-Za-z0-9+/=]+$/);
    expect(await verifyApprovalSignature({ approver: 'alice', message, signature: line })).toMatchObject({
      valid: true,
      key: expect.stringMatching(/^SHA256:/),
    });
    const other = approvalMessage({ workflowId: 'failover-shop', runId: 'run-2', step: 'promote' });
    expect(await verifyApprovalSignature({ approver: 'alice', message: other, signature: line })).toMatchObject({
      valid: false,
      reason: expect.stringMatching(/not a signature by a key listed for alice over this run's approval message/),
    });
    expect(await verifyApprovalSignature({ approver: 'alice', message, signature: 'not a signature' })).toEqual({
      valid: false,
      reason: 'the signature is not an SSH signature (ssh-keygen -Y sign)',
    });
  },
);
