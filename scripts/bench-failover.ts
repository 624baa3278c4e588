/**
 * npm run bench:failover [-- --runs N] [--force]
 *
 * A planned switchover of `shop` on the local stack (failover drill, then failback), N
 * times. For each run, from its Temporal event history: total time (the approval wait
 * taken out), the time spent inside external calls (the union of activity execution
 * intervals), and Temporal's orchestration overhead (the difference). Target: overhead
 * under 1 s per failover. The load average is printed before and after; a start with the 1-minute load above
 * the core count is refused unless --force, and then every row is marked BUSY (scripts/bench/shared-machine.ts).
 */
import { randomUUID } from 'node:crypto';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { loadInventory } from '../config/load';
import { buildAdapters } from '../activities';
import { failback, failover } from '../workflows';
import { drTaskQueue, type RunbookStatus, approveUpdate, statusQuery } from '../contract';
import { busyMark, machineAtEnd, machineAtStart, median, roundsOption } from './bench/shared-machine';

type Event = temporal.api.history.v1.IHistoryEvent;
const ms = (e: Event) => Number(e.eventTime!.seconds) * 1000 + Math.floor((e.eventTime!.nanos ?? 0) / 1e6);

/** Union of [start, end] intervals: parallel calls (notifications) count once. */
function unionMs(intervals: [number, number][]): number {
  const sorted = [...intervals].sort((a, b) => a[0] - b[0]);
  let total = 0;
  let [curStart, curEnd] = sorted[0] ?? [0, 0];
  for (const [s, e] of sorted.slice(1)) {
    if (s > curEnd) {
      total += curEnd - curStart;
      [curStart, curEnd] = [s, e];
    } else curEnd = Math.max(curEnd, e);
  }
  return total + (curEnd - curStart);
}

interface Breakdown {
  totalMs: number;
  approvalWaitMs: number;
  externalMs: number;
  overheadMs: number;
  activities: number;
  events: number;
}

async function breakdown(handle: WorkflowHandle, gateStep: string): Promise<Breakdown> {
  const history = await handle.fetchHistory();
  const events = history.events ?? [];
  const started = new Map<string, number>();
  const intervals: [number, number][] = [];
  let approvalWaitMs = 0;
  for (const e of events) {
    if (e.activityTaskStartedEventAttributes)
      started.set(String(e.activityTaskStartedEventAttributes.scheduledEventId), ms(e));
    const done = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes;
    if (done) {
      const s = started.get(String(done.scheduledEventId));
      if (s !== undefined) intervals.push([s, ms(e)]);
    }
  }
  const status: RunbookStatus | null = await handle.query(statusQuery).catch(() => null);
  const gate = status?.steps.find((s) => s.name === `approve-${gateStep}`);
  if (gate?.startedAt && gate.endedAt) approvalWaitMs = Date.parse(gate.endedAt) - Date.parse(gate.startedAt);
  const totalMs = ms(events[events.length - 1]) - ms(events[0]) - approvalWaitMs;
  const externalMs = unionMs(intervals);
  return {
    totalMs,
    approvalWaitMs,
    externalMs,
    overheadMs: totalMs - externalMs,
    activities: intervals.length,
    events: events.length,
  };
}

async function approveWhenAsked(handle: WorkflowHandle, step: string, approver: string): Promise<void> {
  for (;;) {
    const s = await handle.query(statusQuery).catch(() => null);
    if (s?.pendingApproval?.step === step) {
      // As many distinct approvers as the gate needs (a critical service's production gates need two).
      const by = [approver, ...s.pendingApproval.approvers.filter((a) => a !== approver)];
      for (let i = 0, stillNeeded = s.pendingApproval.needed; stillNeeded > 0; i++)
        ({ stillNeeded } = await handle.executeUpdate(approveUpdate, {
          args: [{ step, approver: by[i], comment: 'benchmark' }],
        }));
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function main() {
  const machine = machineAtStart(console.log);
  // Failover and failback alternate in every run; each summary is the median of the runs (at least 3).
  const runs = roundsOption(5, 'runs');
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const loaded = loadInventory();
  const adapters = buildAdapters(loaded);
  const { connectionOptions, namespace } = loadClientConnectConfig();
  const client = new Client({ connection: await Connection.connect(connectionOptions), namespace });
  const native = await NativeConnection.connect(connectionOptions);
  const taskQueue = `bench-${randomUUID()}`;
  const workflowBundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows'),
    logger: new DefaultLogger('ERROR'),
  });
  const workers = await Promise.all(
    [taskQueue, drTaskQueue(taskQueue, loaded.inventory.regions.dr)].map((q) =>
      Worker.create({ connection: native, namespace, taskQueue: q, workflowBundle, activities: adapters.activities }),
    ),
  );
  console.log(`$ npm run bench:failover -- --runs ${runs}`);
  console.log('run  runbook   total(s)  external(s)  overhead(s)  overhead%  activities  events');
  const rows: (Breakdown & { runbook: string })[] = [];
  await workers[0].runUntil(() =>
    workers[1].runUntil(async () => {
      for (let i = 1; i <= runs; i++) {
        for (const [runbook, wf, id, gate, approver] of [
          ['failover', failover, 'failover-shop', 'promote', 'alice'],
          ['failback', failback, 'failback-shop', 'switch-back', 'bob'],
        ] as const) {
          const args =
            runbook === 'failover'
              ? [{ service: 'shop', mode: 'drill', reason: `benchmark run ${i}` }]
              : [{ service: 'shop', mode: 'drill' }];
          const handle = await client.workflow.start(wf as typeof failover, {
            taskQueue,
            workflowId: id,
            args: args as never,
          });
          await approveWhenAsked(handle, gate, approver);
          await handle.result();
          const b = await breakdown(handle, gate);
          rows.push({ runbook, ...b });
          const f = (n: number) => (n / 1000).toFixed(2).padStart(8);
          const share = ((100 * b.overheadMs) / b.totalMs).toFixed(0).padStart(5);
          console.log(
            `${String(i).padStart(3)}  ${runbook.padEnd(8)} ${f(b.totalMs)}  ${f(b.externalMs)}     ` +
              `${f(b.overheadMs)}    ${share}%  ${String(b.activities).padStart(10)}  ${String(b.events).padStart(6)}` +
              busyMark(machine),
          );
        }
      }
    }),
  );
  for (const runbook of ['failover', 'failback']) {
    const r = rows.filter((x) => x.runbook === runbook);
    const over = median(r.map((x) => x.overheadMs)) / 1000;
    const total = median(r.map((x) => x.totalMs)) / 1000;
    console.log(
      `${runbook}: median total ${total.toFixed(2)} s, ` +
        `external ${(median(r.map((x) => x.externalMs)) / 1000).toFixed(2)} s, ` +
        `orchestration overhead ${over.toFixed(2)} s (${((100 * over) / total).toFixed(0)}% of total) — target < ` +
        `1 s: ${over < 1 ? 'MET' : 'MISSED'}${busyMark(machine)}`,
    );
  }
  machineAtEnd(machine, console.log);
  await adapters.close();
  await native.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
