/**
 * Signed approvals (inventory `approvals.policy: signed`) on the real dev server, with real SSH keys made by
 * ssh-keygen in a private temp dir. The sandbox stays `named`: this test derives a loaded inventory with the policy
 * set and each approver's public key listed, plus `alice-alt`, a second name listing alice's key. shop (critical)
 * needs two approvals; the drill failover is aborted at its gate, so the estate ends as it began.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { LoadedInventory } from '../../config/load';
import { failover } from '../../workflows';
import {
  APPROVAL_SIGNATURE_NAMESPACE,
  approvalMessage,
  type Approval,
  abortSignal,
  approveSignal,
  approveUpdate,
  statusQuery,
} from '../../contract';
import { drctlOn, startRunbook } from '../helpers/drive';
import { readEstate } from '../helpers/estate';
import {
  atGate,
  buildAdapters,
  eventually,
  failureType,
  sandbox,
  temporal,
  type TemporalHarness,
} from '../helpers/stack';

jest.setTimeout(240_000);

describe('signed approvals: an SSH signature over the run and gate, by a key listed for the approver', () => {
  const keys = mkdtempSync(path.join(tmpdir(), 'drbook-test-approval-keys-'));
  const keyOf = (name: string) => path.join(keys, name);
  for (const name of ['alice', 'bob', 'carol'])
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}@test`, '-f', keyOf(name)]);
  const pub = (name: string) => readFileSync(`${keyOf(name)}.pub`, 'utf8').trim();
  const base = sandbox();
  const loaded: LoadedInventory = {
    ...base,
    inventory: {
      ...base.inventory,
      approvals: { policy: 'signed' },
      approvers: [
        { name: 'alice', sshKeys: [pub('alice')] },
        { name: 'bob', sshKeys: [pub('bob')] },
        { name: 'carol', sshKeys: [pub('carol')] },
        { name: 'alice-alt', sshKeys: [pub('alice')] }, // one person, two names
      ],
    },
  };
  const adapters = buildAdapters(loaded);
  let t: TemporalHarness;
  const sign = (message: string, name: string) =>
    execFileSync('ssh-keygen', ['-Y', 'sign', '-n', APPROVAL_SIGNATURE_NAMESPACE, '-f', keyOf(name)], {
      input: message,
      encoding: 'utf8',
    });

  beforeAll(async () => {
    t = await temporal(loaded);
  });
  afterEach(() => t.terminate(['failover-shop', 'lock-shop']));
  afterAll(async () => {
    await t.close();
    await adapters.close();
    rmSync(keys, { recursive: true, force: true });
  });

  test(
    'unsigned, replayed from another run, by an unlisted key, ' + 'or by a key that already approved: refused',
    async () => {
      const before = await readEstate(loaded, adapters);
      const err = await t.withWorkers(adapters.activities, async () => {
        const handle = await startRunbook(t, failover, { service: 'shop', mode: 'drill', reason: 'signed approvals' });
        expect((await atGate(handle, 'promote')).pendingApproval).toMatchObject({ needed: 2 });
        const { runId } = await handle.describe();
        const message = (over: { runId?: string } = {}) =>
          approvalMessage({ workflowId: 'failover-shop', runId, step: 'promote', ...over });
        const update = (approval: Approval) =>
          handle.executeUpdate(approveUpdate, { args: [approval] }).then(
            () => {
              throw new Error(`the approval by ${approval.approver} was accepted`);
            },
            (e: unknown) => e as WorkflowUpdateFailedError,
          );
        const status = () => handle.query(statusQuery);

        // Unsigned: the validator refuses the update; the signal is recorded as rejected.
        const unsigned = await update({ step: 'promote', approver: 'bob' });
        expect(unsigned).toBeInstanceOf(WorkflowUpdateFailedError);
        expect(unsigned.cause?.message).toMatch(/policy is "signed": an approval needs a signature by bob's SSH key/);
        await handle.signal(approveSignal, { step: 'promote', approver: 'bob' });
        await eventually(
          async () => (await status()).rejectedApprovals.length === 1,
          30_000,
          'unsigned signal refused',
        );

        // A good signature, made by drctl with alice's key: accepted, and the gate still needs a second key.
        expect(
          await drctlOn(t, 'approve', 'failover-shop', '--step', 'promote', '--as', 'alice', '--key', keyOf('alice')),
        ).toMatchObject({ code: 0, out: expect.stringMatching(/approved promote of failover-shop as alice: 1 more/) });
        const accepted = await status();
        expect(accepted.approvals).toEqual([
          expect.objectContaining({ approver: 'alice', signedWith: expect.stringMatching(/^SHA256:/) }),
        ]);
        expect(accepted.approvals[0]).not.toHaveProperty('signature');
        expect(accepted.pendingApproval).toMatchObject({ step: 'promote', needed: 1 });

        // An approval bob signed for another run of the same workflow id (a replay): refused and recorded.
        const replayed = await update({
          step: 'promote',
          approver: 'bob',
          signature: sign(message({ runId: 'r-1' }), 'bob'),
        });
        expect(failureType(replayed.cause)).toBe('ApprovalRejected');
        expect(replayed.cause?.message).toMatch(
          /not a signature by a key listed for bob over this run's approval message/,
        );

        // Signed as bob with carol's key, through drctl: refused with the reason.
        const wrongKey = await drctlOn(
          t,
          'approve',
          'failover-shop',
          '--step',
          'promote',
          '--as',
          'bob',
          '--key',
          keyOf('carol'),
        );
        expect(wrongKey).toMatchObject({
          code: 1,
          err: expect.stringMatching(/refused: not a signature by a key listed for bob/),
        });

        // alice's key under a second name counts once.
        const twice = await update({ step: 'promote', approver: 'alice-alt', signature: sign(message(), 'alice') });
        expect(twice.cause?.message).toMatch(/already approved promote \(as alice\): one key counts once/);

        // The Web UI's way: drctl prints the signed input to paste and sends nothing; it verifies for this run.
        const printed = await drctlOn(
          t,
          'approve',
          'failover-shop',
          '--step',
          'promote',
          '--as',
          'bob',
          '--key',
          keyOf('bob'),
          '--print-signature',
        );
        expect(printed.code).toBe(0);
        const paste = JSON.parse(printed.out) as Approval;
        expect(paste).toMatchObject({
          step: 'promote',
          approver: 'bob',
          signature: expect.stringMatching(/^U1NIU0lH\S+$/),
        });
        expect(
          await adapters.activities.verifyApprovalSignature({
            approver: 'bob',
            message: message(),
            signature: paste.signature!,
          }),
        ).toMatchObject({ valid: true });

        const final = await status();
        expect(final.pendingApproval).toMatchObject({ step: 'promote', needed: 1 });
        expect(final.approvals.map((a) => a.approver)).toEqual(['alice']);
        expect(final.rejectedApprovals.map((r) => [r.approval.approver, r.reason])).toEqual([
          ['bob', expect.stringMatching(/needs a signature/)],
          ['bob', expect.stringMatching(/not a signature by a key listed for bob/)],
          ['bob', expect.stringMatching(/not a signature by a key listed for bob/)],
          ['alice-alt', expect.stringMatching(/one key counts once/)],
        ]);
        await handle.signal(abortSignal, { by: 'carol', reason: 'test over' });
        return handle.result().catch((e: unknown) => e);
      });
      expect(failureType((err as WorkflowFailedError).cause)).toBe('Aborted');
      expect(await readEstate(loaded, adapters)).toEqual(before);
    },
  );
});
