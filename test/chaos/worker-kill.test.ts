/**
 * The worker is SIGKILLed during a drill failover of shop (warm: fence, promote, VIP, DNS,
 * webhook, notifications), once per step boundary and once in the middle of a side-effecting
 * activity; a new worker process finishes the run. Every side effect must have happened exactly
 * once, counted where it happened (test/helpers/side-effects.ts). Each run fails shop back.
 *
 * The first worker is the real one with a hold (test/helpers/held-worker.ts): it stops at the
 * chosen point and says so, and only then is it killed, so each run hits its boundary exactly.
 *
 * A warm failover's boundaries (workflows/failover/), and the case that kills the worker there:
 *   start → plan (describeService) → assess (measureReplicaLag)   nothing changed yet: as at the gate
 *   assess → approval gate                                         at the approval gate
 *   approval → fence (fencePrimary + removeVip)                    after approval, before fence
 *   fence → catch-up (waitForCatchUp)                              after fence
 *   catch-up → promote (promoteReplica)                            after catch-up
 *   promote → RDS, DR compute, VIP, DNS (together)                 after promote
 *   those → app webhook (callApplicationWebhook)                   after VIP/DNS
 *   app webhook → people (notifyTarget per target, failed-over)    after the app webhook
 *   people → verify-health (waitUntilHealthy)                      after notifications
 *   verify-health → verify-writes (verifyWritable)                 after verify-health
 *   verify-writes → report (notifyTarget per target, report)       after verify-writes
 * plus two kills inside a change (promote, switch-dns): done, its result never reported.
 */
import { randomUUID } from 'node:crypto';
import { temporal as proto } from '@temporalio/proto';
import { recordChaos, type ChaosRow } from '../helpers/chaos';
import { approvedFailback, approvedFailover } from '../helpers/drive';
import { countSideEffects, duplicates, expectEachOnce } from '../helpers/side-effects';
import { sandbox, temporal, type TemporalHarness } from '../helpers/stack';
import { restoreSandboxTopology } from '../helpers/topology';
import { killStartedWorkers, startWorker, type WorkerProcess } from '../helpers/worker-process';

const EventType = proto.api.enums.v1.EventType;
type History = proto.api.history.v1.IHistory;

interface Fault {
  fault: string;
  /** Where the first worker stops (held-worker.ts); none: it is killed while the run waits at the gate. */
  hold?: string;
}

const FAULTS: Fault[] = [
  { fault: 'worker SIGKILL at the approval gate' },
  // The approval (an update) arrives in the task the dead worker never completes: the new worker is given it again.
  { fault: 'worker SIGKILL after approval, before fence', hold: 'schedule:fencePrimary' },
  { fault: 'worker SIGKILL after fence, before catch-up', hold: 'schedule:waitForCatchUp' },
  { fault: 'worker SIGKILL after catch-up, before promote', hold: 'schedule:promoteReplica' },
  { fault: 'worker SIGKILL after promote, before RDS/compute/VIP/DNS', hold: 'schedule:promoteRdsReplica' },
  { fault: 'worker SIGKILL after VIP/DNS, before the app webhook', hold: 'schedule:callApplicationWebhook' },
  { fault: 'worker SIGKILL after the app webhook, before people notifications', hold: 'schedule:notifyTarget' },
  { fault: 'worker SIGKILL after notifications, before verify', hold: 'schedule:waitUntilHealthy' },
  { fault: 'worker SIGKILL after verify-health, before verify-writes', hold: 'schedule:verifyWritable' },
  { fault: 'worker SIGKILL after verify-writes, before the report', hold: 'schedule:notifyTarget~/report/' },
  { fault: 'worker SIGKILL in promote (replica promoted, result not reported)', hold: 'complete:promoteReplica' },
  { fault: 'worker SIGKILL in switch-dns (record changed, result not reported)', hold: 'complete:switchDnsRecord' },
];

/** The history shows the kill where it was meant to be. */
function expectKilledAt(history: History, hold: string): void {
  const [when, rest] = hold.split(':');
  const [activity, argumentHas] = rest.split('~');
  const events = history.events ?? [];
  const scheduled = (e: proto.api.history.v1.IHistoryEvent) =>
    e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
      ? e.activityTaskScheduledEventAttributes?.activityType?.name
      : undefined;
  if (when === 'schedule') {
    // The held workflow task timed out with the dead worker; the new worker's task scheduled `activity` first.
    const lost = events.findIndex((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT);
    expect(lost).toBeGreaterThan(0);
    // (With ~<text>, earlier schedulings of the same activity type are other calls: the report's came after.)
    if (argumentHas === undefined) expect(events.slice(0, lost).map(scheduled)).not.toContain(activity);
    expect(events.slice(lost).map(scheduled).find(Boolean)).toBe(activity);
  } else {
    // The activity's first attempt was lost with the worker; a later attempt completed it.
    const id = events.find((e) => scheduled(e) === activity)!.eventId;
    const started = events.find(
      (e) =>
        e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED &&
        String(e.activityTaskStartedEventAttributes?.scheduledEventId) === String(id),
    );
    expect(started?.activityTaskStartedEventAttributes?.attempt).toBeGreaterThanOrEqual(2);
  }
}

describe('worker killed during a failover of shop', () => {
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

  test.each(FAULTS)(
    '$fault: a new worker finishes the run, every side effect once',
    async ({ fault, hold }) => {
      const row: ChaosRow = { fault, runs: 1, survived: 0, duplicated: 0 };
      const taskQueue = `chaos-kill-${randomUUID()}`;
      try {
        const effects = await countSideEffects(loaded);
        const first = await startWorker({ taskQueue, hold });
        let second: WorkerProcess | undefined;
        // Not awaited before the hold: approval before fence holds the very task that takes the approval in.
        const approved = approvedFailover(
          { ...t, taskQueue },
          { service: 'shop', mode: 'drill', reason: `chaos: ${fault}` },
          {
            // No hold: the worker dies while the run waits at the gate, the approval goes to the new one.
            atPromoteGate: hold
              ? undefined
              : async () => {
                  await first.kill();
                  second = await startWorker({ taskQueue });
                },
          },
        );
        approved.catch(() => undefined); // awaited below; a failure before the hold shows there
        if (hold) {
          await first.waitFor(/chaos: holding/, 120_000);
          await first.kill();
          second = await startWorker({ taskQueue });
        }
        const handle = await approved;
        const report = await handle.result();
        row.survived = report.outcome === 'completed' ? 1 : 0;
        const seen = await effects.read();
        // Here no connection fault forces a retry: a kill must not make the fence run twice either.
        row.duplicated = duplicates(seen) + Math.max(0, seen.fences - 1);
        if (hold) expectKilledAt(await handle.fetchHistory(), hold);

        expect(report).toMatchObject({ outcome: 'completed', newPrimary: 'db-replica' });
        expectEachOnce(seen);
        expect(seen.fences).toBe(1);

        expect((await approvedFailback({ ...t, taskQueue }, 'shop')).outcome).toBe('completed');
        await second!.stop();
      } finally {
        recordChaos(row);
      }
    },
    300_000,
  );
});
