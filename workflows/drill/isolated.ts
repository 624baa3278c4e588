/**
 * An isolated drill: the DR side comes up beside production, which is never touched (no DNS, no fence, no VIP, the
 * replica is never promoted). Each part it brings up pushes its teardown; the teardown runs last-first when the
 * drill ends, even cancelled: nothing of the drill stays up.
 */
import { CancellationScope } from '@temporalio/workflow';
import { round1 } from '../steps';
import { messageOf, type Drill } from './context';

export async function isolated(d: Drill): Promise<void> {
  d.run.startChanging();
  try {
    await startDrCompute(d);
    await copyDrData(d);
    await checkProductionUntouched(d);
  } finally {
    await CancellationScope.nonCancellable(() => d.teardown.unwind());
  }
}

/** Start the DR compute (tag filter); only what the drill started goes back to standby at the end. */
async function startDrCompute(d: Drill): Promise<void> {
  const { run, acts } = d;
  const compute = d.svc.drCompute;
  if (!compute) return run.skip('start-dr-compute', 'no DR compute in the inventory');
  const started: string[] = [];
  // DR compute that was already running stays.
  d.teardown.push('stop-dr-compute', async () => {
    if (!started.length) return run.skip('stop-dr-compute', 'the drill started no DR instance');
    await run
      .step(
        'stop-dr-compute',
        () => acts.slow.stopDrInstances({ region: compute.region, tags: compute.tags }),
        (r) => `${r.stopped.length} stopped`,
      )
      .catch((err) => tornDownBadly(d, err));
  });
  const r = await run.step(
    'start-dr-compute',
    () => acts.slow.startDrInstances({ region: compute.region, tags: compute.tags }),
    (x) => `${x.running.length} running (${x.started.length} started by the drill)`,
  );
  started.push(...r.started);
}

/**
 * Copy the DR replica into a scratch database (its SQL thread paused for the copy) and verify the copy takes
 * writes: RPO = the copy's data age, RTO = the drill's start to a healthy copy.
 */
async function copyDrData(d: Drill): Promise<void> {
  const { run, svc, acts, drillId, findings } = d;
  const db = svc.database;
  const scratch = svc.restoreTest?.scratchServer;
  const databases = svc.backup?.databases ?? [];
  if (!db?.replica || !scratch || databases.length === 0) {
    findings.push({
      severity: 'warning',
      text: 'no DR data copy: needs database.replica, restoreTest.scratchServer and backup.databases in the inventory',
    });
    return run.skip('copy-dr-data', 'not configured');
  }
  const replica = db.replica;
  d.teardown.push('drop-dr-copy', () => dropCopy(d, scratch, replica, databases));
  const copy = await run.step(
    'copy-dr-data',
    () =>
      acts.slow.copyReplicaToScratch({
        replica,
        scratch,
        databases,
        heartbeatTable: db.heartbeatTable,
        copyId: drillId,
      }),
    (c) =>
      `${c.databases.map((x) => `${x.source}→${x.scratch}`).join(', ')} on ${c.scratch} at GTID ${c.gtid} ` +
      `(${c.seconds} s)`,
  );
  if (copy.dataAt !== null) run.measured.rpoSeconds = round1(Math.max(0, copy.copiedAt - copy.dataAt) / 1000);
  else findings.push({ severity: 'warning', text: 'the copy cannot be dated (no heartbeat): RPO not measured' });
  const healthy = await run.step(
    'verify-dr-copy',
    () =>
      acts.quick.verifyDrillCopy({
        scratch,
        databases: copy.databases,
        queries: svc.restoreTest?.queries?.map((q) => ({ name: q.name, sql: q.sql, expect: q.expect })),
      }),
    (v) => `${v.tables} tables, ${v.rows} rows, took a write; ${v.checks.length} queries passed`,
  );
  run.measured.rtoSeconds = round1((healthy.wroteAt - d.startedAt) / 1000);
}

/** Production kept serving through the drill (its HTTP health, where the inventory has one). */
async function checkProductionUntouched(d: Drill): Promise<void> {
  const url = d.svc.health.httpUrl;
  if (!url) return;
  await d.run.step(
    'production-untouched',
    () => d.acts.quick.checkHttpHealth({ url }),
    (h) => `${url}: HTTP ${h.status} (production kept serving)`,
  );
}

/** The copy dropped and the replica applying again (each tried, whatever the other did). */
async function dropCopy(d: Drill, scratch: string, replica: string, databases: string[]): Promise<void> {
  const { run, acts, drillId } = d;
  await run
    .step(
      'drop-dr-copy',
      () => acts.quick.dropDrillCopy({ scratch, copyId: drillId, databases }),
      (x) => x.dropped.join(', '),
    )
    .catch((err) => tornDownBadly(d, err));
  await run
    .step(
      'resume-replica',
      () => acts.quick.resumeReplicaSqlThread({ replica }),
      (r) => (r.resumed ? `${replica} SQL thread was stopped: resumed` : `${replica} applying`),
    )
    .catch((err) => tornDownBadly(d, err));
}

function tornDownBadly(d: Drill, err: unknown): void {
  d.findings.push({ severity: 'critical', text: `teardown: ${messageOf(err)}` });
}
