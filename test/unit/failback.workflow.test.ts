/**
 * The failback runbook's stop path with stubbed activities, on the time-skipping test server: a failback whose
 * switch fails after the DR primary was fenced puts the DR primary back (as a failover puts its old primary back)
 * and tells people it stopped. The real components are exercised in test/integration/failover.test.ts.
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { failback } from '../../workflows';
import { approveUpdate, drTaskQueue, statusQuery, type RunbookStatus } from '../../contract';
import { failureType, workflowBundle } from '../helpers/stack';
import { stubs, timeSkippingEnv } from '../helpers/stubs';

jest.setTimeout(60_000);

describe('failback workflow: stopped part-way, it compensates and says so (stubbed activities)', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await timeSkippingEnv();
  });
  afterAll(async () => {
    await env?.teardown();
  });

  /** shop failed over: db-replica (DR) writable, db-primary read-only and holding nothing DR lacks. */
  function failedOverShop(promoteFails: string) {
    const s = stubs({ primaryReachable: true, heartbeatLagSeconds: 0, topology: 'failed-over' });
    const asked: { name: string; input: unknown }[] = [];
    const record =
      <I, T>(name: string, result: (input: I) => T) =>
      async (input: I): Promise<T> => {
        s.calls.push(name);
        asked.push({ name, input });
        return result(input);
      };
    const activities = {
      ...s.activities,
      pingDatabase: record('pingDatabase', (i: { server: string }) => ({
        server: i.server,
        readOnly: i.server === 'db-primary',
      })),
      readReplicationStatus: record('readReplicationStatus', () => ({ configured: false, sqlRunning: false })),
      countErrantTransactions: record('countErrantTransactions', () => ({ errant: 0 })),
      rebuildAsReplica: record('rebuildAsReplica', () => ({ alreadyReplicating: false })),
      readGtidPosition: record('readGtidPosition', (i: { server: string }) => ({ server: i.server, gtids: '0-2-50' })),
      fencePrimary: record('fencePrimary', (i: { server: string }) => ({
        server: i.server,
        reachable: true,
        fenced: true,
        finalGtids: '0-2-50',
        detail: `${i.server} read_only=ON`,
      })),
      unfencePrimary: record('unfencePrimary', (i: { server: string }) => ({ server: i.server })),
      addVip: record('addVip', (i: { host: string }) => ({ host: i.host, added: true })),
      removeVip: record('removeVip', (i: { host: string }) => ({ host: i.host, removed: true })),
      promoteReplica: record('promoteReplica', () => {
        throw ApplicationFailure.nonRetryable(promoteFails, 'ReplicationBroken');
      }),
    };
    return { ...s, asked, activities };
  }

  async function run<T>(estate: ReturnType<typeof failedOverShop>, drive: (h: WorkflowHandle) => Promise<T>) {
    const taskQueue = `unit-${Math.random().toString(36).slice(2)}`;
    const bundle = await workflowBundle();
    const workers = await Promise.all(
      [taskQueue, drTaskQueue(taskQueue, 'us-west-2')].map((q) =>
        Worker.create({
          connection: env.nativeConnection,
          taskQueue: q,
          workflowBundle: bundle,
          activities: estate.activities,
        }),
      ),
    );
    return workers[0].runUntil(() =>
      workers[1].runUntil(async () => {
        const handle = await env.client.workflow.start(failback, {
          taskQueue,
          workflowId: 'failback-shop',
          args: [{ service: 'shop', mode: 'drill' }],
        });
        try {
          return await drive(handle);
        } finally {
          await handle.terminate('test over').catch(() => undefined);
          // The test server does not apply parent close policies: end the run's topology lock too.
          await env.client.workflow
            .getHandle('lock-shop')
            .terminate('test over')
            .catch(() => undefined);
        }
      }),
    );
  }

  async function atGate(handle: WorkflowHandle, step: string): Promise<RunbookStatus> {
    for (let i = 0; i < 200; i++) {
      const status = await handle.query(statusQuery).catch(() => null);
      if (status?.pendingApproval?.step === step) return status;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`never reached gate ${step}`);
  }

  test('promote-original fails: the DR fence undone, the original re-protected, "stopped" sent', async () => {
    const estate = failedOverShop('db-primary: promotion refused');
    const result = await run(estate, async (h) => {
      await atGate(h, 'switch-back');
      await h.executeUpdate(approveUpdate, { args: [{ step: 'switch-back', approver: 'alice' }] });
      await h.executeUpdate(approveUpdate, { args: [{ step: 'switch-back', approver: 'bob' }] });
      return h.result().catch((e: unknown) => e);
    });
    const cause = (result as WorkflowFailedError).cause;
    expect(failureType(cause)).toBe('ReplicationBroken');
    expect(cause?.message).toMatch(/step promote-original failed: db-primary: promotion refused/);

    const after = estate.asked.slice(estate.asked.findIndex((a) => a.name === 'promoteReplica') + 1);
    // The original, whose promotion began, is fenced again first; then DR is writable again with its VIP, and the
    // original replicates from DR once more.
    expect(after[0]).toEqual({ name: 'fencePrimary', input: expect.objectContaining({ server: 'db-primary' }) });
    expect(after).toContainEqual({ name: 'unfencePrimary', input: expect.objectContaining({ server: 'db-replica' }) });
    expect(after).toContainEqual({ name: 'addVip', input: expect.objectContaining({ host: 'dr-host' }) });
    expect(after[after.length - 1]).toEqual({
      name: 'rebuildAsReplica',
      input: expect.objectContaining({ server: 'db-primary', source: 'db-replica' }),
    });
    expect(estate.notifications.some((n) => n.startsWith('FAILBACK OF shop STOPPED'))).toBe(true);
  });
});
