/**
 * Approvals on the real dev server, each sent by a client with a known identity: the approver list
 * is enforced (an unlisted approver's signal is refused and recorded as such, its update rejected),
 * and `drctl report` shows, for each approval, the approver named in it and the client identity
 * Temporal recorded for the signal or update — read from the run's event history. The hot service
 * `catalog` (DNS only) fails over and back, so the estate ends as it began.
 */
import { Client, WorkflowUpdateFailedError } from '@temporalio/client';
import { runDrctl } from '../../cli/drctl';
import { failback, failover } from '../../workflows';
import { approveSignal, approveUpdate, statusQuery } from '../../contract';
import { readEstate } from '../helpers/estate';
import { atGate, buildAdapters, eventually, sandbox, temporal, type TemporalHarness } from '../helpers/stack';

jest.setTimeout(240_000);

const ALICE = 'drctl:alice@ops-laptop-17';
const BOB = 'webui:bob@sso.example';
const MALLORY = 'unknown-client@10.9.8.7';

describe('approvals: the approver list and the identity Temporal recorded', () => {
  const loaded = sandbox();
  const adapters = buildAdapters(loaded);
  let t: TemporalHarness;
  const as = (identity: string) =>
    new Client({ connection: t.client.connection, namespace: t.client.options.namespace, identity });

  beforeAll(async () => {
    t = await temporal(loaded);
  });
  afterEach(() => t.terminate(['failover-catalog', 'failback-catalog']));
  afterAll(async () => {
    await t.close();
    await adapters.close();
  });

  async function report(workflowId: string): Promise<string> {
    let out = '';
    const err: string[] = [];
    const code = await runDrctl(['report', workflowId, '--md'], {
      client: t.client,
      io: { out: (s) => (out += s), err: (s) => err.push(s) },
    });
    expect({ code, err }).toEqual({ code: 0, err: [] });
    return out;
  }
  const rowOf = (md: string, approver: string) =>
    md.split('\n').find((l) => l.startsWith('|') && l.split('|').map((c) => c.trim())[3] === approver);

  test(
    'an unlisted approver is refused; ' + 'the report names each approver and the client identity that sent it',
    async () => {
      const before = await readEstate(loaded, adapters);
      await t.withWorkers(adapters.activities, async () => {
        const handle = await t.client.workflow.start(failover, {
          taskQueue: t.taskQueue,
          workflowId: 'failover-catalog',
          args: [{ service: 'catalog', mode: 'drill', reason: 'approval identity test' }],
        });
        await atGate(handle, 'promote');
        const byMallory = as(MALLORY).workflow.getHandle('failover-catalog');
        // The update's validator refuses an approver outside the inventory; nothing is recorded.
        const refused = await byMallory
          .executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'mallory' }] })
          .catch((e: unknown) => e);
        expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
        expect((refused as WorkflowUpdateFailedError).cause?.message).toMatch(/"mallory" is not an approver/);
        // A signal cannot be refused on arrival: it is recorded, and the run rejects it.
        await byMallory.signal(approveSignal, { step: 'promote', approver: 'mallory' });
        await eventually(
          async () => (await handle.query(statusQuery)).rejectedApprovals.length === 1,
          30_000,
          'rejected approval',
        );
        expect((await handle.query(statusQuery)).pendingApproval?.step).toBe('promote');
        await as(ALICE)
          .workflow.getHandle('failover-catalog')
          .executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'alice', comment: 'go' }] });
        expect((await handle.result()).outcome).toBe('completed');

        const back = await t.client.workflow.start(failback, {
          taskQueue: t.taskQueue,
          workflowId: 'failback-catalog',
          args: [{ service: 'catalog', mode: 'drill' }],
        });
        await atGate(back, 'switch-back');
        await as(BOB)
          .workflow.getHandle('failback-catalog')
          .signal(approveSignal, { step: 'switch-back', approver: 'bob' });
        expect((await back.result()).outcome).toBe('completed');
      });
      expect(await readEstate(loaded, adapters)).toEqual(before);

      const fo = await report('failover-catalog');
      const alice = rowOf(fo, 'alice')!
        .split('|')
        .map((c) => c.trim());
      expect(alice.slice(1, 6)).toEqual(['failover', 'promote', 'alice', ALICE, 'update']);
      // The refused signal is in the history, with who sent it.
      const refusedRow = fo.split('\n').find((l) => l.includes('| mallory |'));
      expect(refusedRow).toContain(MALLORY);
      expect(fo).toMatch(/Approval messages not accepted/);

      const fb = await report('failback-catalog');
      const bob = rowOf(fb, 'bob')!
        .split('|')
        .map((c) => c.trim());
      expect(bob.slice(1, 6)).toEqual(['failback', 'switch-back', 'bob', BOB, 'signal']);
      expect(fb).not.toMatch(/not accepted/);
    },
  );
});
