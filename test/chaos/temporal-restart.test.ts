/**
 * The Temporal dev server is stopped and started again (scripts/stack.sh restart-temporal; its
 * SQLite file persists) during a drill failover of shop: once while the run waits at its
 * approval gate, once while an activity runs and finishes with the server down. The worker
 * (a child process running workers/main.ts) and the test's client must reconnect by themselves;
 * the run completes with every side effect once.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { recordChaos, type ChaosRow } from '../helpers/chaos';
import { approvedFailback, approvedFailover } from '../helpers/drive';
import { countSideEffects, duplicates, expectEachOnce } from '../helpers/side-effects';
import { ROOT, sandbox, temporal, type TemporalHarness } from '../helpers/stack';
import { killStartedWorkers, startWorker, type WorkerProcess } from '../helpers/worker-process';

const run = promisify(execFile);
const restartTemporal = () =>
  run(path.join(ROOT, 'scripts', 'stack.sh'), ['restart-temporal'], { cwd: ROOT, timeout: 120_000 });

describe('Temporal restarted during a failover of shop', () => {
  const loaded = sandbox();
  let t: TemporalHarness;

  beforeAll(async () => {
    t = await temporal(loaded);
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
});
