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
import { executeChild } from '@temporalio/workflow';
import {
  drillInput,
  DrMode,
  DrRunbook,
  DrService,
  ErrorType,
  failure,
  parseInput,
  type DrillInput,
  type DrillReport,
} from '../../contract';
import { Compensations } from '../compensations';
import { planFor } from '../plan';
import { readiness } from '../readiness';
import { RunbookRun } from '../runbook';
import { requireWorkflowId } from '../workflow-ids';
import { relayMessagesToChildren } from './children';
import { drillActivities, drillIdAt, messageOf, type Drill } from './context';
import { isolated } from './isolated';
import { finish, judgeTargets, publishReport, recordMetrics, reportOf } from './report';
import { switchover } from './switchover';

export async function drDrill(rawInput: DrillInput): Promise<DrillReport> {
  const d = await begin(parseInput(drillInput, rawInput));
  relayMessagesToChildren(d);
  try {
    await checkReadiness(d);
    if (d.input.scope === 'switchover') await switchover(d);
    else await isolated(d);
  } catch (err) {
    d.findings.push({ severity: 'critical', text: `drill stopped: ${messageOf(err)}` });
  }
  judgeTargets(d);
  const report = reportOf(d);
  recordMetrics(report);
  const published = await publishReport(d, report);
  return finish(d, report.outcome, published);
}

/** Input checks, the service's plan, the run's record and search attributes: nothing changes yet. */
async function begin(input: Drill['input']): Promise<Drill> {
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
  return {
    ...{ input, plan, svc, run, startedAt, drillId, acts: drillActivities(plan, run) },
    ...{ findings: [], steps: [], approvals: [], children: [], activeChild: null },
    teardown: new Compensations(),
  };
}

/** A drill starts from a healthy estate: the readiness runbook, as a child; what it finds not ready is critical. */
async function checkReadiness(d: Drill): Promise<void> {
  const { run, svc, drillId } = d;
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
    d.findings.push({ severity: 'critical', text: `not ready before the drill: ${c.name}: ${c.detail}` });
  if (!ready.ready) throw failure(ErrorType.NotReady, 'the estate is not ready: drill not started');
}
