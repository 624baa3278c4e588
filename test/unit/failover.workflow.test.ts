/**
 * The failover runbook's logic with stubbed activities, on the time-skipping test server
 * (from PyPI, never downloaded): every gate and every failure branch. The real components
 * are exercised in test/integration/failover.test.ts.
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { failover } from '../../workflows';
import {
  drTaskQueue,
  type RunbookStatus,
  abortSignal,
  approveSignal,
  approveUpdate,
  statusQuery,
} from '../../contract';
import { failureType, workflowBundle } from '../helpers/stack';
import { CHANGES, stubs, timeSkippingEnv, type Estate } from '../helpers/stubs';

jest.setTimeout(60_000);

describe('failover workflow logic (stubbed activities, time-skipping server)', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await timeSkippingEnv();
  });
  afterAll(async () => {
    await env?.teardown();
  });

  async function run<T>(
    estate: Estate,
    input: object,
    drive: (h: WorkflowHandle<typeof failover>, s: ReturnType<typeof stubs>) => Promise<T>,
  ) {
    const s = stubs(estate);
    const taskQueue = `unit-${Math.random().toString(36).slice(2)}`;
    const workflowBundle_ = await workflowBundle();
    const workers = await Promise.all(
      [taskQueue, drTaskQueue(taskQueue, 'us-west-2')].map((q) =>
        Worker.create({
          connection: env.nativeConnection,
          taskQueue: q,
          workflowBundle: workflowBundle_,
          activities: s.activities,
        }),
      ),
    );
    const result = await workers[0].runUntil(() =>
      workers[1].runUntil(async () => {
        const handle = await env.client.workflow.start(failover, {
          taskQueue,
          workflowId: 'failover-shop',
          args: [input as never],
        });
        try {
          return await drive(handle, s);
        } finally {
          // One failover per service id: clear it for the next test whatever happened.
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

  async function atGate(handle: WorkflowHandle, step = 'promote'): Promise<RunbookStatus> {
    for (let i = 0; i < 200; i++) {
      const status = await handle.query(statusQuery).catch(() => null);
      if (status?.pendingApproval?.step === step) return status;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`never reached gate ${step}`);
  }

  async function eventuallyStatus(handle: WorkflowHandle, ok: (s: RunbookStatus) => boolean): Promise<RunbookStatus> {
    for (let i = 0; i < 200; i++) {
      const status = await handle.query(statusQuery).catch(() => null);
      if (status && ok(status)) return status;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('status never matched');
  }

  const real = { service: 'shop', mode: 'real', reason: 'unit test' };
  const drill = { service: 'shop', mode: 'drill', reason: 'unit test' };
  const healthy: Estate = { primaryReachable: true, heartbeatLagSeconds: 0.5 };

  test('a critical real failover needs two distinct approvers, then runs every step in order', async () => {
    const { result, calls } = await run(healthy, real, async (h) => {
      const s = await atGate(h);
      expect(s.pendingApproval).toMatchObject({ needed: 2, requireOverrideRpo: false, requireUnfencedAck: false });
      await h.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'alice' }] });
      expect((await h.query(statusQuery)).pendingApproval?.needed).toBe(1);
      await h.signal(approveSignal, { step: 'promote', approver: 'alice' }); // a duplicate does not count
      expect((await h.query(statusQuery)).rejectedApprovals[0].reason).toMatch(/already approved/);
      await h.signal(approveSignal, { step: 'promote', approver: 'bob' });
      return h.result();
    });
    expect(result.outcome).toBe('completed');
    expect(result.approvals.map((a) => a.approver)).toEqual(['alice', 'bob']);
    expect(result.measured.rpoSeconds).toBe(0);
    expect(calls.indexOf('fencePrimary')).toBeLessThan(calls.indexOf('promoteReplica'));
    expect(calls.indexOf('waitForCatchUp')).toBeLessThan(calls.indexOf('promoteReplica'));
    expect(calls.indexOf('promoteReplica')).toBeLessThan(calls.indexOf('switchDnsRecord'));
  });

  test('a drill of a critical service changes production: one approver does not open the gate, two do', async () => {
    const { result, calls } = await run(healthy, drill, async (h, stubbed) => {
      expect((await atGate(h)).pendingApproval).toMatchObject({ step: 'promote', needed: 2 });
      const receipt = await h.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'alice' }] });
      expect(receipt.stillNeeded).toBe(1);
      await env.sleep('5m'); // time passes: the gate still waits, nothing is fenced
      expect((await h.query(statusQuery)).pendingApproval).toMatchObject({ step: 'promote', needed: 1 });
      expect(stubbed.calls.filter((c) => CHANGES.includes(c))).toEqual([]);
      await h.signal(approveSignal, { step: 'promote', approver: 'bob' });
      return h.result();
    });
    expect(result.outcome).toBe('completed');
    expect(result.approvals.map((a) => a.approver)).toEqual(['alice', 'bob']);
    expect(calls).toContain('promoteReplica');
  });

  test('a service below critical needs one approver, drill or real', async () => {
    for (const input of [drill, real]) {
      const { result } = await run({ ...healthy, service: { tier: 'important' } }, input, async (h) => {
        expect((await atGate(h)).pendingApproval).toMatchObject({ needed: 1 });
        await h.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'alice' }] });
        return h.result();
      });
      expect(result.outcome).toBe('completed');
    }
  });

  test(
    'live roles: a service already failed over is refused (run failback); ' + 'a split is refused and notified at once',
    async () => {
      for (const state of ['failed-over', 'split'] as const) {
        const { result, calls, notifications } = await run({ ...healthy, topology: state }, drill, async (h) => {
          const s = await eventuallyStatus(h, (st) => st.topology !== undefined);
          expect(s.topology?.state).toBe(state);
          return h.result().catch((e: unknown) => e);
        });
        expect(result).toBeInstanceOf(WorkflowFailedError);
        const cause = (result as WorkflowFailedError).cause;
        expect(failureType(cause)).toBe(state === 'split' ? 'SplitBrain' : 'AlreadyFailedOver');
        expect(cause?.message).toMatch(state === 'split' ? /db-primary and db-replica/ : /run failback/);
        expect(calls.filter((c) => CHANGES.includes(c) || c === 'measureReplicaLag')).toEqual([]);
        if (state === 'split') expect(notifications[0]).toMatch(/^SPLIT BRAIN: shop has 2 writable members/);
      }
    },
  );

  test('an unlisted approver is refused by the update and recorded by the signal', async () => {
    const { calls } = await run(healthy, drill, async (h) => {
      await atGate(h);
      const err = await h
        .executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'mallory' }] })
        .catch((e: unknown) => e);
      expect(String((err as Error & { cause?: Error }).cause?.message)).toMatch(/not an approver/);
      await h.signal(approveSignal, { step: 'promote', approver: 'mallory' });
      await h.signal(approveSignal, { step: 'fence', approver: 'alice' });
      const s = await h.query(statusQuery);
      expect(s.rejectedApprovals.map((r) => r.reason)).toEqual([
        expect.stringMatching(/ApproverNotAllowed: "mallory"/),
        expect.stringMatching(/pending approval is for step "promote", not "fence"/),
      ]);
      expect(s.pendingApproval?.needed).toBe(2);
      await h.signal(abortSignal, { by: 'carol', reason: 'test over' });
      return h.result().catch(() => undefined);
    });
    expect(calls.filter((c) => CHANGES.includes(c))).toEqual([]);
  });

  test('no approval: a reminder at the first deadline, a clean abort at the second, nothing changed', async () => {
    const { result, calls, notifications } = await run(healthy, drill, async (h) => {
      await atGate(h);
      await env.sleep('2h'); // time-skipping: both deadlines pass
      return h.result().catch((e: unknown) => e);
    });
    expect(failureType((result as WorkflowFailedError).cause)).toBe('ApprovalTimedOut');
    expect(notifications).toEqual([
      expect.stringMatching(/^APPROVAL NEEDED: failover of shop/),
      expect.stringMatching(/^FAILOVER OF shop STOPPED/),
    ]);
    expect(calls.filter((c) => CHANGES.includes(c))).toEqual([]);
  });

  test('an RTO budget already spent is reported and notified, never hidden', async () => {
    const incidentStartedAt = new Date(Date.now() - 20 * 60_000).toISOString(); // shop's RTO is 15 min
    const { result, notifications } = await run(healthy, { ...drill, incidentStartedAt }, async (h) => {
      const s = await atGate(h);
      expect(s.rtoClock.leftSeconds).toBeLessThan(0);
      await h.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'alice' }] });
      await h.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'bob' }] });
      return h.result();
    });
    expect(result.outcome).toBe('completed');
    expect(result.rtoMet).toBe(false);
    expect(result.notes.join('\n')).toMatch(/RTO budget of 900 s breached/);
    expect(notifications).toContainEqual(expect.stringMatching(/^RTO BREACHED: shop failover still running/));
  });

  test('a replica lagging past the RPO needs an explicit override', async () => {
    const lagging: Estate = { primaryReachable: true, heartbeatLagSeconds: 900 };
    const { result, calls } = await run(lagging, drill, async (h) => {
      const s = await atGate(h);
      expect(s.pendingApproval).toMatchObject({ requireOverrideRpo: true });
      await h.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'alice' }] });
      await h.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'bob' }] });
      // still waiting: no override
      expect((await h.query(statusQuery)).pendingApproval).toMatchObject({ step: 'promote', needed: 0 });
      await h.executeUpdate(approveUpdate, {
        args: [{ step: 'promote', approver: 'carol', overrideRpo: true, comment: 'accept loss' }],
      });
      return h.result();
    });
    expect(result.outcome).toBe('completed');
    expect(calls).toContain('promoteReplica');
  });

  test(
    'an unreachable primary: the approval must acknowledge it is unfenced; ' + 'RPO is dated by the heartbeat',
    async () => {
      const incident = Date.now();
      const down: Estate = { primaryReachable: false, heartbeatLagSeconds: 2, heartbeatAt: incident - 2300 };
      const incidentStartedAt = new Date(incident).toISOString();
      const { result } = await run(down, { ...drill, incidentStartedAt }, async (h) => {
        const s = await atGate(h);
        expect(s.pendingApproval).toMatchObject({ requireUnfencedAck: true });
        await h.executeUpdate(approveUpdate, {
          args: [{ step: 'promote', approver: 'alice', acknowledgeUnfenced: true }],
        });
        await h.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'bob' }] });
        return h.result();
      });
      expect(result.outcome).toBe('completed');
      expect(result.steps.find((s) => s.name === 'fence')!.detail).toMatch(/not fenced.*VIP NOT removed/);
      expect(result.measured.rpoSeconds).toBe(2.3); // incident start minus the replica's newest heartbeat
    },
  );

  test('a broken replica is never promoted: the run fails at catch-up, names it, and notifies', async () => {
    const broken: Estate = { ...healthy, catchUpFails: 'db-replica: SQL thread stopped: Duplicate entry' };
    const { result, calls, notifications } = await run(broken, drill, async (h) => {
      await atGate(h);
      await h.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'alice' }] });
      await h.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'bob' }] });
      return h.result().catch((e: unknown) => e);
    });
    const cause = (result as WorkflowFailedError).cause;
    expect(failureType(cause)).toBe('ReplicationBroken');
    expect(cause?.message).toMatch(/step catch-up failed: db-replica: SQL thread stopped/);
    expect(calls).not.toContain('promoteReplica');
    // Fenced but not promoted: the old primary is put back, so a failed switchover is no outage.
    // (Both undone together: which of the two starts first is up to the worker.)
    expect(calls.slice(calls.indexOf('waitForCatchUp')).sort()).toEqual(['addVip', 'unfencePrimary', 'waitForCatchUp']);
    expect(notifications.some((n) => n.startsWith('FAILOVER OF shop STOPPED'))).toBe(true);
  });

  test('a replica whose SQL thread is stopped is refused at assess, before the gate', async () => {
    const { result, calls } = await run({ ...healthy, sqlStopped: true }, drill, async (h) =>
      h.result().catch((e: unknown) => e),
    );
    const cause = (result as WorkflowFailedError).cause;
    expect(failureType(cause)).toBe('ReplicationBroken');
    expect(cause?.message).toMatch(/step assess failed: db-replica is not replicating .*SQL thread stopped/);
    expect(calls.filter((c) => CHANGES.includes(c))).toEqual([]);
  });

  test('a hot service only shifts DNS and verifies', async () => {
    const { result, calls } = await run({ ...healthy, service: { strategy: 'hot' } }, drill, async (h) => {
      await atGate(h);
      await h.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'alice' }] });
      await h.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'bob' }] });
      return h.result();
    });
    expect(result.outcome).toBe('completed');
    expect(calls).not.toContain('fencePrimary');
    expect(calls).not.toContain('promoteReplica');
    expect(calls).toContain('switchDnsRecord');
    expect(result.steps.filter((s) => s.state === 'skipped').map((s) => s.name)).toEqual(
      expect.arrayContaining(['fence', 'catch-up', 'promote', 'move-vip', 'notify-application']),
    );
  });

  test("trigger 'monitor' from a client grants nothing: refused, naming the field, before any activity", async () => {
    const auto: Estate = { ...healthy, service: { autoFailover: true } };
    const { result, calls } = await run(auto, { ...real, trigger: 'monitor' }, async (h) =>
      h.result().catch((e: unknown) => e),
    );
    const cause = (result as WorkflowFailedError).cause;
    expect(failureType(cause)).toBe('InvalidInput');
    expect(cause?.message).toMatch(/trigger: 'monitor' is for a failover the service's monitor .*started by a client/);
    expect(calls).toEqual([]);
  });

  test('an operator-started failover of an autoFailover service waits at the gate', async () => {
    const auto: Estate = { ...healthy, service: { autoFailover: true } };
    const { calls } = await run(auto, { ...real, trigger: 'operator' }, async (h) => {
      expect((await atGate(h)).pendingApproval).toMatchObject({ step: 'promote' });
      await h.signal(abortSignal, { by: 'carol', reason: 'test over' });
      return h.result().catch(() => undefined);
    });
    expect(calls.filter((c) => CHANGES.includes(c))).toEqual([]);
  });

  test('malformed input fails before any activity', async () => {
    const { result, calls } = await run(healthy, { service: 'shop', mode: 'sideways', reason: '' }, async (h) =>
      h.result().catch((e: unknown) => e),
    );
    const cause = (result as WorkflowFailedError).cause;
    expect(failureType(cause)).toBe('InvalidInput');
    expect(cause?.message).toMatch(/mode: .*reason: say why/);
    expect(calls).toEqual([]);
  });
});
