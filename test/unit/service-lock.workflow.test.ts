/**
 * One topology change per service at a time (workflows/lock.ts), on the time-skipping test server:
 * runbook logic with stubbed estate activities, the lock read through the real activity (the
 * worker's Temporal client). The real stack's version, with a terminated holder (the test server
 * does not apply parent close policies) and a worker SIGKILL: test/integration/service-lock.test.ts.
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { failback, failover, monitor, serviceLock } from '../../workflows';
import {
  drTaskQueue,
  type RunbookStatus,
  releaseLockSignal,
  abortSignal,
  monitorStateQuery,
  statusQuery,
} from '../../contract';
import { failureType, workflowBundle } from '../helpers/stack';
import { stubs, timeSkippingEnv, type Estate } from '../helpers/stubs';

jest.setTimeout(90_000);

describe('service topology lock (stubbed estate, time-skipping server)', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await timeSkippingEnv();
  });
  afterAll(async () => {
    await env?.teardown();
  });

  const healthy: Estate = { primaryReachable: true, heartbeatLagSeconds: 0.5 };
  const drill = { service: 'shop', mode: 'drill', reason: 'unit test' } as const;

  async function withWorkers<T>(
    estate: Estate,
    fn: (taskQueue: string, s: ReturnType<typeof stubs>) => Promise<T>,
    extra: object = {},
  ): Promise<T> {
    const s = stubs(estate);
    const taskQueue = `unit-lock-${Math.random().toString(36).slice(2)}`;
    const bundle = await workflowBundle();
    const workers = await Promise.all(
      [taskQueue, drTaskQueue(taskQueue, 'us-west-2')].map((q) =>
        Worker.create({
          connection: env.nativeConnection,
          taskQueue: q,
          workflowBundle: bundle,
          activities: { ...s.activities, ...extra },
        }),
      ),
    );
    try {
      return await workers[0].runUntil(() => workers[1].runUntil(() => fn(taskQueue, s)));
    } finally {
      for (const id of ['failover-shop', 'failback-shop', 'monitor-shop', 'lock-shop'])
        await env.client.workflow
          .getHandle(id)
          .terminate('test over')
          .catch(() => undefined);
    }
  }

  async function poll<T>(fn: () => Promise<T | null | undefined | false>, what: string): Promise<T> {
    for (let i = 0; i < 300; i++) {
      const v = await fn().catch(() => null);
      if (v) return v;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  const atGate = (h: WorkflowHandle, step = 'promote') =>
    poll(async () => {
      const s: RunbookStatus = await h.query(statusQuery);
      return s.pendingApproval?.step === step ? s : null;
    }, `gate ${step}`);

  const lockStatus = async () => (await env.client.workflow.getHandle('lock-shop').describe()).status.name;

  /** The failure a closed run ended with (its cause: the runbook's typed failure). */
  async function failureOf(h: WorkflowHandle) {
    await poll(async () => (await h.describe()).status.name !== 'RUNNING', 'the run to close');
    const err = await h.result().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    return (err as WorkflowFailedError).cause;
  }

  test('a failback started while a failover holds the lock is refused, naming it; the lock is free after', async () => {
    await withWorkers(healthy, async (taskQueue, s) => {
      const fo = await env.client.workflow.start(failover, { taskQueue, workflowId: 'failover-shop', args: [drill] });
      await atGate(fo);
      expect(await lockStatus()).toBe('RUNNING');
      const callsBefore = s.calls.length;
      const fb = await env.client.workflow.start(failback, {
        taskQueue,
        workflowId: 'failback-shop',
        args: [{ service: 'shop', mode: 'drill' }],
      });
      const cause = await failureOf(fb);
      expect(failureType(cause)).toBe('ServiceLocked');
      expect(cause?.message).toMatch(/step lock failed: shop is being changed by failover-shop \(since /);
      // Refused before anything: the failback never looked at the estate.
      expect(s.calls.slice(callsBefore).filter((c) => c !== 'describeService')).toEqual([]);

      // The holder ends (aborted at its gate): the lock ends with it, and the next change may start.
      await fo.signal(abortSignal, { by: 'alice', reason: 'unit test' });
      expect(failureType(await failureOf(fo))).toBe('Aborted');
      expect(await lockStatus()).toBe('COMPLETED');
      const next = await env.client.workflow.start(failover, { taskQueue, workflowId: 'failover-shop', args: [drill] });
      await atGate(next);
    });
  });

  test(
    'a real failover takes precedence over an isolated drill: ' + 'the drill cancelled, the SQL thread resumed',
    async () => {
      const estate: Estate = { ...healthy, sqlStopped: true, isolatedDrill: true };
      await withWorkers(estate, async (taskQueue, s) => {
        const real = { service: 'shop', mode: 'real', reason: 'primary site lost' } as const;
        const fo = await env.client.workflow.start(failover, { taskQueue, workflowId: 'failover-shop', args: [real] });
        const gate = await atGate(fo);
        expect(s.calls.filter((c) => /Lag|Drill|SqlThread/.test(c))).toEqual([
          'measureReplicaLag',
          'cancelIsolatedDrill',
          'resumeReplicaSqlThread',
          'measureReplicaLag',
        ]);
        expect(gate.notes).toContain(
          "isolated drill drill-shop cancelled and db-replica's SQL thread resumed: a real failover comes first",
        );
      });
    },
  );

  test('a replica stopped for another reason (no isolated drill) is still refused', async () => {
    await withWorkers({ ...healthy, sqlStopped: true }, async (taskQueue, s) => {
      const real = { service: 'shop', mode: 'real', reason: 'primary site lost' } as const;
      const fo = await env.client.workflow.start(failover, { taskQueue, workflowId: 'failover-shop', args: [real] });
      expect(failureType(await failureOf(fo))).toBe('ReplicationBroken');
      expect(s.calls).not.toContain('resumeReplicaSqlThread');
    });
  });

  test('the monitor starts no failover while a change holds the lock, and does once it is released', async () => {
    const checks: boolean[] = [];
    const checkHttpHealth = async ({ url }: { url: string }) => {
      checks.push(false);
      return { url, ok: false, status: 503, at: Date.now(), detail: 'database read-only' };
    };
    const estate: Estate = {
      ...healthy,
      service: {
        health: {
          httpUrl: 'http://127.0.0.1:1/health',
          mysqlPing: false,
          interval: 10,
          failuresBeforeIncident: 3,
          cooldownAfterFailover: 3600,
        },
      },
    };
    await withWorkers(
      estate,
      async (taskQueue) => {
        // A failback holds the lock (started as its holder would, here by hand so the test controls it).
        const lock = await env.client.workflow.start(serviceLock, {
          taskQueue,
          workflowId: 'lock-shop',
          args: [{ service: 'shop', holder: 'failback-shop' }],
        });
        const mon = await env.client.workflow.start(monitor, {
          taskQueue,
          workflowId: 'monitor-shop',
          args: [{ service: 'shop' }],
        });
        await env.sleep('80s');
        const held = await mon.query(monitorStateQuery);
        expect(checks.length).toBeGreaterThanOrEqual(6);
        expect(held.incidents).toHaveLength(1); // noted once, not once per check
        expect(held.incidents[0]).toMatchObject({ started: false, failover: 'failover-shop' });
        expect(held.incidents[0].detail).toMatch(/^failback-shop holds lock-shop/);
        // No failover runs (an earlier test's closed run may still carry the id).
        const latest = await env.client.workflow
          .getHandle('failover-shop')
          .describe()
          .catch(() => null);
        expect(latest?.status.name).not.toBe('RUNNING');

        await lock.signal(releaseLockSignal, { by: 'unit test' });
        await env.sleep('20s');
        const after = await mon.query(monitorStateQuery);
        expect(after.incidents.at(-1)).toMatchObject({ started: true, failover: 'failover-shop' });
      },
      { checkHttpHealth },
    );
  });
});
