/**
 * autoFailover never acknowledges an unfenced old primary by itself (workflows/failover/fence.ts): a
 * monitor-started failover whose fence did not hold cuts the old primary off through the AWS API
 * (`awsFence`), or stops before promotion at the `unfenced` gate for a human. Stubbed estate on the
 * time-skipping server; the AWS fence itself against the emulator: test/integration/aws-fence.test.ts.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { failover, monitor } from '../../workflows';
import { drTaskQueue, type RunbookStatus, approveUpdate, statusQuery } from '../../contract';
import { workflowBundle } from '../helpers/stack';
import { stubs, timeSkippingEnv, type Estate } from '../helpers/stubs';

jest.setTimeout(90_000);

describe('unattended failover with an old primary that cannot be fenced', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await timeSkippingEnv();
  });
  afterAll(async () => {
    await env?.teardown();
  });

  const awsFence = { region: 'us-east-1', action: 'stop-instance', tags: { Role: 'db-primary' } } as const;
  /** Unreachable over SQL and SSH (the fence fails), yet perhaps alive: the split-brain case. */
  const unreachable = (service: Estate['service'] = {}, more: Partial<Estate> = {}): Estate => ({
    primaryReachable: false,
    heartbeatLagSeconds: 0.5,
    service: {
      autoFailover: true,
      health: {
        httpUrl: 'http://127.0.0.1:1/health',
        mysqlPing: false,
        interval: 10,
        failuresBeforeIncident: 2,
        cooldownAfterFailover: 3600,
      },
      ...service,
    },
    ...more,
  });

  /** The service's monitor sees it down and starts the failover (only a monitor parent makes it unattended). */
  async function run<T>(estate: Estate, drive: (h: WorkflowHandle<typeof failover>) => Promise<T>) {
    // The replica's newest heartbeat: just before the incident, in the test server's (skipped) time.
    const s = stubs({ ...estate, heartbeatAt: (await env.currentTimeMs()) - 500 });
    const activities = {
      ...s.activities,
      checkHttpHealth: async ({ url }: { url: string }) => ({
        url,
        ok: false,
        status: 503,
        at: Date.now(),
        detail: 'down',
      }),
    };
    const taskQueue = `unit-unattended-${Math.random().toString(36).slice(2)}`;
    const bundle = await workflowBundle();
    const workers = await Promise.all(
      [taskQueue, drTaskQueue(taskQueue, 'us-west-2')].map((q) =>
        Worker.create({ connection: env.nativeConnection, taskQueue: q, workflowBundle: bundle, activities }),
      ),
    );
    const result = await workers[0].runUntil(() =>
      workers[1].runUntil(async () => {
        const mon = await env.client.workflow.start(monitor, {
          taskQueue,
          workflowId: 'monitor-shop',
          args: [{ service: 'shop' }],
        });
        const handle = env.client.workflow.getHandle<typeof failover>('failover-shop');
        try {
          await env.sleep('25s');
          await mon.terminate('failover started');
          return await drive(handle);
        } finally {
          for (const id of ['monitor-shop', 'failover-shop', 'lock-shop'])
            await env.client.workflow
              .getHandle(id)
              .terminate('test over')
              .catch(() => undefined);
        }
      }),
    );
    return { result, ...s };
  }

  async function atGate(h: WorkflowHandle, step: string): Promise<RunbookStatus> {
    for (let i = 0; i < 300; i++) {
      const status = await h.query(statusQuery).catch(() => null);
      if (status?.pendingApproval?.step === step) return status;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`never reached gate ${step}`);
  }

  test(
    'no awsFence: stops at the unfenced gate, nothing promoted, people told; ' + 'a human may then acknowledge',
    async () => {
      const { calls, notifications } = await run(unreachable(), async (h) => {
        const gate = await atGate(h, 'unfenced');
        expect(gate.pendingApproval).toMatchObject({ requireUnfencedAck: true });
        const status = await h.query(statusQuery);
        expect(status.approvals).toEqual([
          expect.objectContaining({ approver: 'inventory:autoFailover', acknowledgeUnfenced: false }),
        ]);
        expect(status.steps.find((x) => x.name === 'fence-aws')).toMatchObject({ state: 'skipped' });
        await h.executeUpdate(approveUpdate, {
          args: [{ step: 'unfenced', approver: 'alice', acknowledgeUnfenced: true, comment: 'host is powered off' }],
        });
        // Promoting beside an unfenced primary changes production: a critical service's two approvers.
        expect((await h.query(statusQuery)).pendingApproval).toMatchObject({ step: 'unfenced', needed: 1 });
        await h.executeUpdate(approveUpdate, { args: [{ step: 'unfenced', approver: 'bob' }] });
        return h.result();
      });
      const promoted = calls.indexOf('promoteReplica');
      expect(calls.indexOf('fencePrimary')).toBeLessThan(promoted);
      expect(calls).not.toContain('isolateOldPrimary');
      expect(notifications).toContain('APPROVAL NEEDED: unattended failover of shop stopped before promotion');
    },
  );

  test('awsFence: the old primary is cut off through the AWS API, then promoted, with no human', async () => {
    const { result, calls } = await run(unreachable({ awsFence }), (h) => h.result());
    expect(result.outcome).toBe('completed');
    expect(calls.indexOf('fencePrimary')).toBeLessThan(calls.indexOf('isolateOldPrimary'));
    expect(calls.indexOf('isolateOldPrimary')).toBeLessThan(calls.indexOf('promoteReplica'));
    expect(result.steps.find((x) => x.name === 'fence-aws')).toMatchObject({
      state: 'succeeded',
      detail: 'db-primary cut off: i-old-primary stopped',
    });
  });

  test('awsFence failing: no promotion, the run waits at the unfenced gate', async () => {
    const { calls } = await run(
      unreachable({ awsFence }, { awsFenceFails: 'UnauthorizedOperation: ec2:StopInstances' }),
      async (h) => {
        await atGate(h, 'unfenced');
        const status = await h.query(statusQuery);
        expect(status.steps.find((x) => x.name === 'fence-aws')).toMatchObject({ state: 'failed' });
      },
    );
    expect(calls).toContain('isolateOldPrimary');
    expect(calls).not.toContain('promoteReplica');
  });
});
