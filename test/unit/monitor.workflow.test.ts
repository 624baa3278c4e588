/**
 * The monitor's detection logic with stubbed activities on the time-skipping server:
 * one failed check is noise, N in a row is an incident, the incident start is the first
 * failed check, exactly one failover starts, and none during the cooldown.
 */
import type { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { drTaskQueue, monitorStateQuery, statusQuery } from '../../contract';
import { monitor, type failover } from '../../workflows';
import { failureType, workflowBundle } from '../helpers/stack';
import { stubs, timeSkippingEnv } from '../helpers/stubs';

jest.setTimeout(60_000);

describe('monitor workflow (stubbed activities, time-skipping server)', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await timeSkippingEnv();
  });
  afterAll(async () => {
    await env?.teardown();
  });

  test(
    'ignores one failed check; declares one incident after three; ' + 'passes the first failure on; cools down',
    async () => {
      // ok, FAIL, ok, FAIL, FAIL, FAIL (incident), then failing for good (cooldown: no second failover)
      const script = [true, false, true, false, false, false];
      const checks: { at: number; ok: boolean }[] = [];
      const s = stubs({
        primaryReachable: false,
        heartbeatLagSeconds: 1,
        service: { health: { ...healthOf(), interval: 10, failuresBeforeIncident: 3, cooldownAfterFailover: 3600 } },
      });
      const activities = {
        ...s.activities,
        checkHttpHealth: async ({ url }: { url: string }) => {
          const ok = script[checks.length] ?? false;
          checks.push({ at: Date.now(), ok });
          return { url, ok, status: ok ? 200 : 503, at: Date.now(), detail: ok ? 'ok' : 'database read-only' };
        },
      };
      const taskQueue = `unit-monitor-${Math.random().toString(36).slice(2)}`;
      const bundle = await workflowBundle();
      const workers = await Promise.all(
        [taskQueue, drTaskQueue(taskQueue, 'us-west-2')].map((q) =>
          Worker.create({ connection: env.nativeConnection, taskQueue: q, workflowBundle: bundle, activities }),
        ),
      );
      await workers[0].runUntil(() =>
        workers[1].runUntil(async () => {
          const handle = await env.client.workflow.start(monitor, {
            taskQueue,
            workflowId: 'monitor-shop',
            args: [{ service: 'shop' }],
          });
          try {
            // 6 scripted checks plus 10 more failing ones, 10 s apart (skipped time)
            await env.sleep('170s');
            const state = await handle.query(monitorStateQuery);
            expect(checks.length).toBeGreaterThanOrEqual(15);
            expect(state.incidents).toHaveLength(1);
            const incident = state.incidents[0];
            expect(incident).toMatchObject({ failover: 'failover-shop', started: true });
            // Checks run every 10 s of workflow time from the start: the 4th (index 3, at +30 s) began the
            // three failures in a row; the lone failure at +10 s did not count.
            const startedAt = (await handle.describe()).startTime.getTime();
            const offset = Date.parse(incident.incidentStartedAt) - startedAt;
            expect(offset).toBeGreaterThanOrEqual(30_000);
            expect(offset).toBeLessThan(40_000);
            expect(state.cooldownUntil).not.toBeNull();

            const failover = env.client.workflow.getHandle('failover-shop');
            const desc = await failover.describe();
            expect(desc.status.name).toBe('RUNNING');
            const fstatus = await failover.query(statusQuery);
            expect(fstatus.pendingApproval?.step).toBe('promote'); // waits for people: shop has no autoFailover
            expect(fstatus.rtoClock.startedAt).toBe(incident.incidentStartedAt);
          } finally {
            await handle.terminate('test over').catch(() => undefined);
            await env.client.workflow
              .getHandle('failover-shop')
              .terminate('test over')
              .catch(() => undefined);
          }
        }),
      );
    },
  );
});

describe('unattended failover: granted by the monitor parent, never by the input', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await timeSkippingEnv();
  });
  afterAll(async () => {
    await env?.teardown();
  });

  async function withWorkers<T>(activities: object, body: (taskQueue: string) => Promise<T>): Promise<T> {
    const taskQueue = `unit-monitor-${Math.random().toString(36).slice(2)}`;
    const bundle = await workflowBundle();
    const workers = await Promise.all(
      [taskQueue, drTaskQueue(taskQueue, 'us-west-2')].map((q) =>
        Worker.create({ connection: env.nativeConnection, taskQueue: q, workflowBundle: bundle, activities }),
      ),
    );
    return workers[0].runUntil(() => workers[1].runUntil(() => body(taskQueue)));
  }
  const failing = (s: ReturnType<typeof stubs>) => ({
    ...s.activities,
    checkHttpHealth: async ({ url }: { url: string }) => ({
      url,
      ok: false,
      status: 503,
      at: Date.now(),
      detail: 'down',
    }),
  });

  test('the monitor of an autoFailover service fails it over without a gate', async () => {
    const s = stubs({
      primaryReachable: true,
      heartbeatLagSeconds: 0.5,
      service: { autoFailover: true, health: { ...healthOf(), interval: 10, failuresBeforeIncident: 2 } },
    });
    await withWorkers(failing(s), async (taskQueue) => {
      const handle = await env.client.workflow.start(monitor, {
        taskQueue,
        workflowId: 'monitor-shop',
        args: [{ service: 'shop' }],
      });
      try {
        await env.sleep('30s');
        const fo = await env.client.workflow.getHandle<typeof failover>('failover-shop').result();
        expect(fo.outcome).toBe('completed');
        expect(fo.approvals.map((a) => a.approver)).toEqual(['inventory:autoFailover']);
      } finally {
        await handle.terminate('test over').catch(() => undefined);
      }
    });
    expect(s.calls).toContain('promoteReplica');
  });

  test('a monitor under any other id is refused, so no other run can pass as one', async () => {
    const s = stubs({ primaryReachable: true, heartbeatLagSeconds: 0.5, service: { autoFailover: true } });
    await withWorkers(failing(s), async (taskQueue) => {
      const err = await env.client.workflow
        .execute(monitor, { taskQueue, workflowId: 'watch-shop', args: [{ service: 'shop' }] })
        .catch((e: unknown) => e);
      expect(failureType((err as WorkflowFailedError).cause)).toBe('InvalidInput');
      expect((err as WorkflowFailedError).cause?.message).toMatch(/must run as workflow id "monitor-shop"/);
    });
    expect(s.calls).toEqual([]);
  });
});

function healthOf() {
  return {
    mysqlPing: true,
    httpUrl: 'http://127.0.0.1:8080/health',
    interval: 5,
    failuresBeforeIncident: 3,
    cooldownAfterFailover: 3600,
  };
}
