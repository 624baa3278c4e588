/**
 * autoFailover never acknowledges an unfenced old primary by itself (workflows/failover.ts): a
 * monitor-started failover whose fence did not hold cuts the old primary off through the AWS API
 * (`awsFence`), or stops before promotion at the `unfenced` gate for a human. Stubbed estate on the
 * time-skipping server; the AWS fence itself against the emulator: test/integration/aws-fence.test.ts.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { failover } from '../../workflows';
import { drTaskQueue, type RunbookStatus } from '../../workflows/contract';
import { approveUpdate, statusQuery } from '../../workflows/messages';
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

  const fromMonitor = {
    service: 'shop',
    mode: 'real',
    reason: 'monitor: 3 failed health checks',
    trigger: 'monitor',
  } as const;
  const awsFence = { region: 'us-east-1', action: 'stop-instance', tags: { Role: 'db-primary' } } as const;
  /** Unreachable over SQL and SSH (the fence fails), yet perhaps alive: the split-brain case. */
  const unreachable = (service: Estate['service'] = {}, more: Partial<Estate> = {}): Estate => ({
    primaryReachable: false,
    heartbeatLagSeconds: 0.5,
    service: { autoFailover: true, ...service },
    ...more,
  });

  async function run<T>(estate: Estate, drive: (h: WorkflowHandle<typeof failover>) => Promise<T>) {
    const s = stubs(estate);
    const taskQueue = `unit-unattended-${Math.random().toString(36).slice(2)}`;
    const bundle = await workflowBundle();
    const workers = await Promise.all(
      [taskQueue, drTaskQueue(taskQueue, 'us-west-2')].map((q) =>
        Worker.create({
          connection: env.nativeConnection,
          taskQueue: q,
          workflowBundle: bundle,
          activities: s.activities,
        }),
      ),
    );
    const result = await workers[0].runUntil(() =>
      workers[1].runUntil(async () => {
        const handle = await env.client.workflow.start(failover, {
          taskQueue,
          workflowId: 'failover-shop',
          // The incident starts now (real time, as the stubs' heartbeat): the expected loss is within the RPO.
          args: [{ ...fromMonitor, incidentStartedAt: new Date().toISOString() }],
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

  test('no awsFence: stops at the unfenced gate, nothing promoted, people told; a human may then acknowledge', async () => {
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
      return h.result();
    });
    const promoted = calls.indexOf('promoteReplica');
    expect(calls.indexOf('fencePrimary')).toBeLessThan(promoted);
    expect(calls).not.toContain('isolateOldPrimary');
    expect(notifications).toContain('APPROVAL NEEDED: unattended failover of shop stopped before promotion');
  });

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
