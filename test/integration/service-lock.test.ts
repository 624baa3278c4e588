/**
 * One topology change per service at a time, on the real stack (workflows/lock.ts): a failover at
 * its gate holds `lock-shop`; a failback started meanwhile is refused naming it; the monitor starts
 * no failover while a failback holds it; the lock ends with a terminated holder, and survives a
 * worker SIGKILL (the holder still runs) until the holder ends on a new worker.
 */
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { failback, failover, monitor } from '../../workflows';
import { abortSignal, monitorStateQuery } from '../../contract';
import { approvedFailover, approveGates, startRunbook } from '../helpers/drive';
import {
  atGate,
  buildAdapters,
  eventually,
  failureType,
  sandbox,
  sql,
  temporal,
  type TemporalHarness,
} from '../helpers/stack';
import { killStartedWorkers, startWorker } from '../helpers/worker-process';

jest.setTimeout(300_000);

describe('service topology lock (real stack)', () => {
  const loaded = sandbox();
  const { activities, close } = buildAdapters(loaded);
  let t: TemporalHarness;
  const ids = ['monitor-shop', 'failover-shop', 'failback-shop', 'lock-shop'];

  beforeAll(async () => {
    t = await temporal(loaded);
  });
  afterEach(async () => {
    await t.terminate(ids);
    await killStartedWorkers();
  });
  afterAll(async () => {
    await t?.close();
    await close();
  });

  const lockState = () =>
    t.client.workflow
      .getHandle('lock-shop')
      .describe()
      .then((d) => d.status.name);

  async function failureOf(h: WorkflowHandle): Promise<Error | undefined> {
    const err = await h.result().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    return (err as WorkflowFailedError).cause;
  }

  /** A failback gets past the lock (it is free) and stops at the live topology: shop is at home. */
  async function expectFailbackFindsHome(h: TemporalHarness): Promise<void> {
    const fb = await startRunbook(h, failback, { service: 'shop', mode: 'drill' });
    expect(failureType(await failureOf(fb))).toBe('AlreadyAtHome');
  }

  test('a failback started while a failover runs is refused with the failover id; free once it ends', async () => {
    await t.withWorkers(activities, async () => {
      const fo = await startRunbook(t, failover, { service: 'shop', mode: 'drill', reason: 'lock test' });
      await atGate(fo, 'promote');
      expect(await lockState()).toBe('RUNNING');

      const fb = await startRunbook(t, failback, { service: 'shop', mode: 'drill' });
      const refused = await failureOf(fb);
      expect(failureType(refused)).toBe('ServiceLocked');
      expect(refused?.message).toMatch(/shop is being changed by failover-shop \(since .*\): one topology change/);

      await fo.signal(abortSignal, { by: 'carol', reason: 'lock test' });
      expect(failureType(await failureOf(fo))).toBe('Aborted');
      expect(await lockState()).toBe('COMPLETED');
      // Free: the failback takes the lock, then finds shop at home (nothing to fail back).
      await expectFailbackFindsHome(t);
    });
  });

  test('the monitor starts no failover while a failback holds the lock', async () => {
    await t.withWorkers(activities, async () => {
      const fo = await approvedFailover(t, { service: 'shop', mode: 'drill', reason: 'lock test: before failback' });
      expect((await fo.result()).outcome).toBe('completed');
      const failoverRun = (await fo.describe()).runId;

      const fb = await startRunbook(t, failback, { service: 'shop', mode: 'drill' });
      await atGate(fb, 'switch-back');
      // What the service looks like while a failback fences the DR primary: read-only, health failing.
      const dr = await sql(loaded, 'db-replica');
      let mon: WorkflowHandle<typeof monitor> | undefined;
      try {
        await dr.query('SET GLOBAL read_only = ON');
        mon = await t.client.workflow.start(monitor, {
          taskQueue: t.taskQueue,
          workflowId: 'monitor-shop',
          args: [{ service: 'shop' }],
        });
        const failures = loaded.inventory.services.find((s) => s.name === 'shop')!.health.failuresBeforeIncident;
        const state = await eventually(
          async () => {
            const s = await mon!.query(monitorStateQuery).catch(() => null);
            return s && s.incidents.length > 0 ? s : null;
          },
          120_000,
          `the monitor to see ${failures} failed checks`,
        );
        expect(state.incidents[0]).toMatchObject({ started: false, failover: 'failover-shop' });
        expect(state.incidents[0].detail).toMatch(/^failback-shop holds lock-shop/);
        // No failover started: failover-shop is still the run that completed before the failback.
        const latest = await t.client.workflow.getHandle('failover-shop').describe();
        expect(latest.runId).toBe(failoverRun);
        expect(latest.status.name).toBe('COMPLETED');
      } finally {
        await mon?.terminate('lock test over').catch(() => undefined);
        await dr.query('SET GLOBAL read_only = OFF');
        await dr.end();
      }
      await approveGates(fb, [{ step: 'switch-back', approver: 'carol' }]);
      expect((await fb.result()).outcome).toBe('completed');
    });
  });

  test('terminating the holder releases the lock', async () => {
    await t.withWorkers(activities, async () => {
      const fo = await startRunbook(t, failover, { service: 'shop', mode: 'drill', reason: 'lock test' });
      await atGate(fo, 'promote');
      await fo.terminate('operator gave up');
      await eventually(async () => (await lockState()) === 'TERMINATED', 20_000, 'lock-shop ended with its holder');
      await expectFailbackFindsHome(t);
    });
  });

  test('a worker SIGKILL does not release the lock of a run that goes on; a new worker releases it', async () => {
    const taskQueue = `lock-kill-${randomUUID()}`;
    const h = { ...t, taskQueue };
    const first = await startWorker({ taskQueue });
    const fo = await startRunbook(h, failover, { service: 'shop', mode: 'drill', reason: 'lock test: worker kill' });
    await atGate(fo, 'promote');
    await first.kill();
    expect(await lockState()).toBe('RUNNING');

    await startWorker({ taskQueue });
    const fb = await startRunbook(h, failback, { service: 'shop', mode: 'drill' });
    expect((await failureOf(fb))?.message).toMatch(/shop is being changed by failover-shop/);
    // The holder goes on under the new worker, and its end (an abort at the gate) frees the lock.
    await fo.signal(abortSignal, { by: 'carol', reason: 'lock test' });
    expect(failureType(await failureOf(fo))).toBe('Aborted');
    expect(await lockState()).toBe('COMPLETED');
    await expectFailbackFindsHome(h);
  });
});
