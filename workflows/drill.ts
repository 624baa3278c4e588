/**
 * drDrill({ service, scope: 'isolated' | 'switchover', reason? }): the quarterly DR drill.
 *
 * switchover — a planned failover to DR and back, with the runbooks operators would use:
 *   readiness → failover (child `failover-<service>`, mode drill) → failback (child
 *   `failback-<service>`, mode drill) → report
 *   Approvals: the children wait at their own gates. Operators approve the waiting child
 *   (drctl approve drill-<service> finds it and sends the validated update), or send the
 *   `approve` signal to the drill itself (Web UI): the drill relays it to the child that
 *   waits. `abort` is relayed the same way.
 *
 * isolated — the DR side comes up beside production, which is never touched (no DNS, no
 * fence, no VIP, the replica is never promoted):
 *   readiness → start DR compute → copy the DR replica into a scratch database (SQL thread
 *   paused for the copy) → verify the copy takes writes → RTO = start to healthy copy
 *   → teardown (always, even when cancelled): drop the copy, resume the replica, stop the
 *   DR compute the drill started → report
 *
 * Both end with a report (steps with timings, approvals, RTO/RPO vs targets, findings, the
 * trend of earlier drills) stored next to the service's backups. A drill with a critical
 * finding fails (DrillFailed) after its report is stored: monitoring sees it, auditors read it.
 * Runs as workflow id `drill-<service>`: one drill per service at a time.
 */
import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  ParentClosePolicy,
  executeChild,
  getExternalWorkflowHandle,
  metricMeter,
  setHandler,
} from '@temporalio/workflow';
import {
  drillInput,
  ErrorType,
  failure,
  parseInput,
  type Approval,
  type DrillFinding,
  type DrillInput,
  type DrillReport,
  type StepRecord,
  type FailbackReport,
  type FailoverReport,
  abortSignal,
  approveSignal,
  approveUpdate,
  childGateSignal,
  DrMode,
  DrOutcome,
  DrRunbook,
  DrService,
  statusQuery,
  type DrillStatus,
  workflowIdFor,
} from '../contract';
import { failback } from './failback';
import { failover } from './failover';
import { planFor, reasonOf } from './plan';
import { recordMeasured } from './metrics';
import { holdServiceLockIfPatched } from './lock';
import { readiness } from './readiness';
import { RunbookRun } from './runbook';
import { requireWorkflowId } from './workflow-ids';
import { activities, drActivities, drillChecks, drillCopies, reports } from './activity-options';
import { round1 } from './steps';

const iso = (ms: number) => new Date(ms).toISOString();
/** A drill id that sorts by time and is safe in object keys and database names. */
const drillIdAt = (ms: number) =>
  iso(ms)
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');

export async function drDrill(rawInput: DrillInput): Promise<DrillReport> {
  const input = parseInput(drillInput, rawInput);
  requireWorkflowId('drill', input.service);
  const plan = await planFor(input.service);
  const svc = plan.service;
  const startedAt = Date.now();
  const drillId = drillIdAt(startedAt);
  const run = new RunbookRun('drill', svc.name, plan.targets, plan.approvers, startedAt);
  run.tag([
    { key: DrService, value: svc.name },
    { key: DrRunbook, value: 'drill' },
    { key: DrMode, value: input.scope },
  ]);
  run.describe({ reason: input.reason });
  const quick = drActivities(plan, drillChecks, run);
  const slow = drActivities(plan, drillCopies, run);
  const reporting = activities(reports, run);

  // ------------------------------------------------------------------ messages: relayed to the child that waits
  const children: DrillStatus['children'] = [];
  let activeChild: string | null = null;
  setHandler(statusQuery, (): DrillStatus => ({ ...run.status(), scope: input.scope, children, activeChild }));
  setHandler(approveSignal, async (approval: Approval) => {
    if (!activeChild) {
      run.rejectedApprovals.push({ approval, reason: `no child runbook is waiting (phase: ${run.phase})` });
      return;
    }
    run.notes.push(`approval of ${approval.step} by ${approval.approver} relayed to ${activeChild}`);
    await getExternalWorkflowHandle(activeChild).signal(approveSignal, approval);
  });
  // The waiting child says where it waits: this run's page shows that gate and the signal to paste here.
  setHandler(childGateSignal, (gate) => run.showChildGate(gate));
  // The update cannot answer for the child's gate from here: drctl sends it to the child itself.
  setHandler(approveUpdate, undefined);
  setHandler(abortSignal, async (req) => {
    run.aborted ??= req;
    if (activeChild) await getExternalWorkflowHandle(activeChild).signal(abortSignal, req);
  });

  const findings: DrillFinding[] = [];
  const steps: DrillReport['steps'] = [];
  const approvals: DrillReport['approvals'] = [];
  const own = (s: StepRecord) => ({ ...s, runbook: 'drill' });

  // ------------------------------------------------------------------ 1. readiness: a drill starts from a healthy estate
  try {
    const ready = await run.step(
      'readiness',
      () =>
        executeChild(readiness, {
          args: [{ service: svc.name }],
          workflowId: `drill-${svc.name}-readiness`,
          staticSummary: `readiness ${svc.name}: before drill ${drillId}`,
        }),
      (r) => `${r.checks.filter((c) => c.ok).length}/${r.checks.length} checks passed`,
    );
    for (const c of ready.checks.filter((x) => !x.ok))
      findings.push({ severity: 'critical', text: `not ready before the drill: ${c.name}: ${c.detail}` });
    if (!ready.ready) throw failure(ErrorType.NotReady, 'the estate is not ready: drill not started');

    if (input.scope === 'switchover') await switchover();
    else await isolated();
  } catch (err) {
    findings.push({ severity: 'critical', text: `drill stopped: ${messageOf(err)}` });
  }

  // ------------------------------------------------------------------ report
  const rtoMet = run.measured.rtoSeconds === null ? null : run.measured.rtoSeconds <= plan.targets.rtoSeconds;
  const rpoMet = run.measured.rpoSeconds === null ? null : run.measured.rpoSeconds <= plan.targets.rpoSeconds;
  if (rtoMet === false)
    findings.push({
      severity: 'critical',
      text: `RTO ${run.measured.rtoSeconds} s missed the ${plan.targets.rtoSeconds} s target`,
    });
  if (rpoMet === false)
    findings.push({
      severity: 'critical',
      text: `RPO ${run.measured.rpoSeconds} s missed the ${plan.targets.rpoSeconds} s target`,
    });
  if (rtoMet && rpoMet) findings.push({ severity: 'info', text: 'RTO and RPO within their targets' });
  const outcome: DrillReport['outcome'] = findings.some((f) => f.severity === 'critical') ? 'failed' : 'passed';
  const endedAt = Date.now();
  const report: DrillReport = {
    format: 'drbook-drill/1',
    id: drillId,
    service: svc.name,
    tier: svc.tier,
    strategy: svc.strategy,
    scope: input.scope,
    reason: input.reason,
    outcome,
    startedAt: iso(startedAt),
    endedAt: iso(endedAt),
    steps: [...run.steps.map(own), ...steps].sort((a, b) => (a.startedAt ?? '').localeCompare(b.startedAt ?? '')),
    approvals,
    measured: { ...run.measured },
    targets: plan.targets,
    rtoMet,
    rpoMet,
    findings,
    children: children.map((c) => ({ runbook: c.runbook, workflowId: c.workflowId, outcome: c.state })),
    trend: [
      {
        id: drillId,
        scope: input.scope,
        at: iso(startedAt),
        outcome,
        rtoSeconds: run.measured.rtoSeconds,
        rpoSeconds: run.measured.rpoSeconds,
        rtoTargetSeconds: plan.targets.rtoSeconds,
        rpoTargetSeconds: plan.targets.rpoSeconds,
      },
    ],
    links: null,
  };
  recordMetrics(report);
  let published = report;
  try {
    published = await run.step(
      'publish-report',
      () => reporting.publishDrillReport({ report }),
      (r) => r.links?.html ?? '',
    );
  } catch (err) {
    report.findings.push({ severity: 'warning', text: `report not stored: ${messageOf(err)}` });
  }
  run.phase = outcome === 'passed' ? 'done' : 'failed';
  run.tag([{ key: DrOutcome, value: outcome }]);
  if (outcome === 'failed') {
    throw ApplicationFailure.create({
      type: ErrorType.DrillFailed,
      message: `drill ${drillId} of ${svc.name} failed: ${findings
        .filter((f) => f.severity === 'critical')
        .map((f) => f.text)
        .join('; ')}`,
      nonRetryable: true,
      details: [published],
    });
  }
  return published;

  // ================================================================== scopes

  async function switchover(): Promise<void> {
    // The drill holds the service's topology lock across both children (they run under it):
    // nothing else (the monitor's failover included) changes the service between them.
    const lock = await holdServiceLockIfPatched(run, plan, quick);
    try {
      await failOverAndBack();
    } finally {
      await lock?.release();
    }
  }

  async function failOverAndBack(): Promise<void> {
    const fo = await child('failover', () =>
      executeChild(failover, {
        args: [{ service: svc.name, mode: 'drill', reason: `drill ${drillId}: ${input.reason}` }],
        workflowId: workflowIdFor('failover', svc.name),
        staticSummary: `failover ${svc.name} (drill): drill ${drillId}: ${input.reason}`.slice(0, 200),
        // A drill that is terminated must not take a half-done failover with it.
        parentClosePolicy: ParentClosePolicy.ABANDON,
      }),
    );
    absorb('failover', fo);
    run.measured.rtoSeconds = fo.measured.rtoSeconds;
    run.measured.rpoSeconds = fo.measured.rpoSeconds;
    if (fo.measured.rpoSeconds !== null && fo.measured.rpoSeconds > 0)
      findings.push({
        severity: 'critical',
        text: `a planned switchover lost ${fo.measured.rpoSeconds} s of data (must be 0)`,
      });
    const gate = fo.steps.find((s) => s.name.startsWith('approve-'));
    if (gate?.startedAt && gate.endedAt) {
      const waited = round1((Date.parse(gate.endedAt) - Date.parse(gate.startedAt)) / 1000);
      findings.push({
        severity: 'info',
        text: `failover waited ${waited} s for approval (${gate.detail ?? ''}), counted in its RTO`,
      });
    }
    const fb = await child('failback', () =>
      executeChild(failback, {
        args: [{ service: svc.name, mode: 'drill' }],
        workflowId: workflowIdFor('failback', svc.name),
        staticSummary: `failback ${svc.name} (drill): drill ${drillId}`,
        parentClosePolicy: ParentClosePolicy.ABANDON,
      }),
    );
    absorb('failback', fb);
    findings.push({
      severity: 'info',
      text: `failback: RTO ${fb.measured.rtoSeconds ?? '—'} s, RPO ${fb.measured.rpoSeconds ?? '—'} s (${fb.outcome})`,
    });
  }

  async function isolated(): Promise<void> {
    const db = svc.database;
    const scratch = svc.restoreTest?.scratchServer;
    const databases = svc.backup?.databases ?? [];
    run.startChanging();
    let startedCompute: string[] = [];
    let copied = false;
    try {
      const compute = svc.drCompute;
      if (compute) {
        const started = await run.step(
          'start-dr-compute',
          () => slow.startDrInstances({ region: compute.region, tags: compute.tags }),
          (r) => `${r.running.length} running (${r.started.length} started by the drill)`,
        );
        startedCompute = started.started;
      } else run.skip('start-dr-compute', 'no DR compute in the inventory');

      if (!db?.replica || !scratch || databases.length === 0) {
        findings.push({
          severity: 'warning',
          text: `no DR data copy: needs database.replica, restoreTest.scratchServer and backup.databases in the inventory`,
        });
        run.skip('copy-dr-data', 'not configured');
      } else {
        const replica = db.replica;
        copied = true;
        const copy = await run.step(
          'copy-dr-data',
          () =>
            slow.copyReplicaToScratch({
              replica,
              scratch,
              databases,
              heartbeatTable: db.heartbeatTable,
              copyId: drillId,
            }),
          (c) =>
            `${c.databases.map((d) => `${d.source}→${d.scratch}`).join(', ')} on ${c.scratch} at GTID ${c.gtid} (${c.seconds} s)`,
        );
        if (copy.dataAt !== null) run.measured.rpoSeconds = round1(Math.max(0, copy.copiedAt - copy.dataAt) / 1000);
        else findings.push({ severity: 'warning', text: 'the copy cannot be dated (no heartbeat): RPO not measured' });
        const healthy = await run.step(
          'verify-dr-copy',
          () =>
            quick.verifyDrillCopy({
              scratch,
              databases: copy.databases,
              queries: svc.restoreTest?.queries?.map((q) => ({ name: q.name, sql: q.sql, expect: q.expect })),
            }),
          (v) => `${v.tables} tables, ${v.rows} rows, took a write; ${v.checks.length} queries passed`,
        );
        run.measured.rtoSeconds = round1((healthy.wroteAt - startedAt) / 1000);
      }
      if (svc.health.httpUrl) {
        const url = svc.health.httpUrl;
        await run.step(
          'production-untouched',
          () => quick.checkHttpHealth({ url }),
          (h) => `${url}: HTTP ${h.status} (production kept serving)`,
        );
      }
    } finally {
      // Teardown runs even when the drill is cancelled: nothing of the drill stays up.
      await CancellationScope.nonCancellable(async () => {
        if (copied && scratch && db?.replica) {
          const replica = db.replica;
          await run
            .step(
              'drop-dr-copy',
              () => quick.dropDrillCopy({ scratch, copyId: drillId, databases }),
              (d) => d.dropped.join(', '),
            )
            .catch((err) => findings.push({ severity: 'critical', text: `teardown: ${messageOf(err)}` }));
          await run
            .step(
              'resume-replica',
              () => quick.resumeReplicaSqlThread({ replica }),
              (r) => (r.resumed ? `${replica} SQL thread was stopped: resumed` : `${replica} applying`),
            )
            .catch((err) => findings.push({ severity: 'critical', text: `teardown: ${messageOf(err)}` }));
        }
        const compute = svc.drCompute;
        if (compute && startedCompute.length) {
          // Only what the drill started goes back to standby; DR compute that was already running stays.
          await run
            .step(
              'stop-dr-compute',
              () => slow.stopDrInstances({ region: compute.region, tags: compute.tags }),
              (r) => `${r.stopped.length} stopped`,
            )
            .catch((err) => findings.push({ severity: 'critical', text: `teardown: ${messageOf(err)}` }));
        } else if (compute) run.skip('stop-dr-compute', 'the drill started no DR instance');
      });
    }
  }

  // ================================================================== helpers

  /** Run a child runbook as one drill step, visible in `status` and reachable for approvals. */
  async function child<T>(runbook: string, start: () => Promise<T>): Promise<T> {
    const workflowId = workflowIdFor(runbook, svc.name);
    const entry: DrillStatus['children'][number] = { runbook, workflowId, state: 'running' };
    children.push(entry);
    activeChild = workflowId;
    run.waitingOnChild(workflowId);
    try {
      const result = await run.step(runbook, start, () => `${workflowId} completed`);
      entry.state = 'completed';
      return result;
    } catch (err) {
      entry.state = 'failed';
      if (runbook === 'failover')
        findings.push({
          severity: 'critical',
          text: `the estate may be half switched: check \`drctl status ${svc.name}\` and run \`drctl failback ${svc.name}\` when the cause is fixed`,
        });
      throw err;
    } finally {
      activeChild = null;
      run.waitingOnChild(null);
    }
  }

  function absorb(runbook: string, r: FailoverReport | FailbackReport): void {
    steps.push(...r.steps.map((s) => ({ ...s, runbook })));
    approvals.push(...r.approvals.map((a) => ({ ...a, runbook })));
    for (const n of r.notes)
      findings.push({ severity: /breach|missed/i.test(n) ? 'critical' : 'info', text: `${runbook}: ${n}` });
  }

  function recordMetrics(r: DrillReport): void {
    const tags = { service: r.service, tier: r.tier, scope: r.scope };
    if (r.measured.rtoSeconds !== null)
      metricMeter.createGauge('drbook_drill_rto_seconds', 'float').set(r.measured.rtoSeconds, tags);
    if (r.measured.rpoSeconds !== null)
      metricMeter.createGauge('drbook_drill_rpo_seconds', 'float').set(r.measured.rpoSeconds, tags);
    metricMeter.createGauge('drbook_drill_passed', 'int').set(r.outcome === 'passed' ? 1 : 0, tags);
    recordMeasured('drill', r.service, r.measured);
  }
}

/** The message an operator should read: the child's or activity's own failure, not its wrappers. */
function messageOf(err: unknown): string {
  let e = err;
  while (e instanceof ChildWorkflowFailure && e.cause) e = e.cause;
  return reasonOf(e);
}
