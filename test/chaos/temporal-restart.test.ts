/**
 * The Temporal dev server is stopped and started again (scripts/stack.sh restart-temporal; its
 * SQLite file persists) during a drill failover of shop: once while the run waits at its
 * approval gate, once while an activity runs (switch-dns: the Route 53 record is changed, then
 * the server goes down before the result is reported, and the activity returns while it is down).
 * The worker (a child process running workers/main.ts) and the test's client must reconnect by
 * themselves; the run completes with every side effect once, and after a restart in the middle
 * of a step it goes on in seconds, not minutes.
 */
import { execFile } from 'node:child_process';
import { createConnection } from 'node:net';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { temporal as proto } from '@temporalio/proto';
import { recordChaos, type ChaosRow } from '../helpers/chaos';
import { approvedFailback, approvedFailover } from '../helpers/drive';
import { countSideEffects, duplicates, expectEachOnce } from '../helpers/side-effects';
import { eventually, ROOT, sandbox, temporal, type TemporalHarness } from '../helpers/stack';
import { restoreSandboxTopology } from '../helpers/topology';
import { killStartedWorkers, startWorker, type WorkerProcess } from '../helpers/worker-process';

const run = promisify(execFile);
const restartTemporal = () =>
  run(path.join(ROOT, 'scripts', 'stack.sh'), ['restart-temporal'], { cwd: ROOT, timeout: 120_000 });
const temporalPort = () => Number(new URL(`http://${process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233'}`).port);
const temporalListens = () =>
  new Promise<boolean>((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port: temporalPort() });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
const EventType = proto.api.enums.v1.EventType;

/**
 * From the server being back to the run's end, at most: the steps left after switch-dns take a few
 * seconds; a task dispatched to a poll that the restart cut off is retried after its step's timeout
 * (at most 30 s for every failover step: workflows/activity-options.ts), plus a 10 s workflow task timeout.
 * A worker that stopped polling would take minutes or never.
 */
const AFTER_RESTART_MS = 75_000;

/** `promise`, or a failure naming `what` once `ms` have passed. */
async function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe('Temporal restarted during a failover of shop', () => {
  const loaded = sandbox();
  let t: TemporalHarness;

  beforeAll(async () => {
    t = await temporal(loaded);
    await restoreSandboxTopology(t, loaded);
  });
  afterEach(async () => {
    await killStartedWorkers();
    await t.terminate(['failover-shop', 'failback-shop']);
  });
  afterAll(() => t.close());

  const expectOnce = async (effects: Awaited<ReturnType<typeof countSideEffects>>, row: ChaosRow) => {
    const seen = await effects.read();
    row.duplicated = duplicates(seen);
    expectEachOnce(seen);
  };

  test('restart while the run waits at its approval gate: the run completes', async () => {
    const row: ChaosRow = { fault: 'Temporal restart at the approval gate', runs: 1, survived: 0, duplicated: 0 };
    const taskQueue = `chaos-restart-${randomUUID()}`;
    let worker: WorkerProcess | undefined;
    try {
      const effects = await countSideEffects(loaded);
      worker = await startWorker({ taskQueue });
      const handle = await approvedFailover(
        { ...t, taskQueue },
        { service: 'shop', mode: 'drill', reason: 'chaos: Temporal restart at the gate' },
        // The same client, the same worker process after the restart: both reconnect on their own.
        { atPromoteGate: () => restartTemporal().then(() => undefined) },
      );
      const report = await handle.result();
      row.survived = report.outcome === 'completed' ? 1 : 0;
      expect(report).toMatchObject({ outcome: 'completed', newPrimary: 'db-replica' });
      await expectOnce(effects, row);
      expect((await approvedFailback({ ...t, taskQueue }, 'shop')).outcome).toBe('completed');
      await worker.stop();
    } finally {
      recordChaos(row);
    }
  }, 240_000);

  test('restart while switch-dns runs, its result reported after the restart: the run goes on in seconds', async () => {
    const row: ChaosRow = { fault: 'Temporal restart inside switch-dns', runs: 1, survived: 0, duplicated: 0 };
    const taskQueue = `chaos-restart-${randomUUID()}`;
    try {
      const effects = await countSideEffects(loaded);
      // The worker holds switch-dns's result once the record is changed, until released.
      const held = await startWorker({ taskQueue, hold: 'complete:switchDnsRecord' });
      const handle = await approvedFailover(
        { ...t, taskQueue },
        { service: 'shop', mode: 'drill', reason: 'chaos: Temporal restart inside switch-dns' },
      );
      await held.waitFor(/chaos: holding/, 120_000);
      const restarted = restartTemporal();
      await eventually(async () => !(await temporalListens()), 60_000, 'Temporal to stop');
      held.release(); // switch-dns returns with the server down: the worker retries its completion
      await restarted;
      const report = await within(AFTER_RESTART_MS, handle.result(), 'completed run after the restart');
      row.survived = report.outcome === 'completed' ? 1 : 0;
      expect(report).toMatchObject({ outcome: 'completed', newPrimary: 'db-replica' });
      await expectOnce(effects, row);

      // switch-dns ran once: its first attempt's result reached the restarted server.
      const events = (await handle.fetchHistory()).events ?? [];
      const dns = events.find(
        (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'switchDnsRecord',
      )!.eventId;
      const ofDns = (type: proto.api.enums.v1.EventType) =>
        events.filter(
          (e) =>
            e.eventType === type &&
            String(
              e.activityTaskStartedEventAttributes?.scheduledEventId ??
                e.activityTaskCompletedEventAttributes?.scheduledEventId,
            ) === String(dns),
        );
      expect(
        ofDns(EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED).map((e) => e.activityTaskStartedEventAttributes?.attempt),
      ).toEqual([1]);
      expect(ofDns(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)).toHaveLength(1);
      // The same worker process served the whole run: the release did not shut it down.
      expect(held.output()).toMatch(/state: 'RUNNING'/);
      expect(held.output()).not.toMatch(/state: 'STOPPING'/);

      expect((await approvedFailback({ ...t, taskQueue }, 'shop')).outcome).toBe('completed');
      await held.stop();
    } finally {
      recordChaos(row);
    }
  }, 240_000);
});
