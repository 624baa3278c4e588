/**
 * The drill's report: steps with timings (its own and its children's), approvals, RTO/RPO against the targets,
 * findings and the trend of earlier drills, stored next to the service's backups. A critical finding fails the drill
 * (DrillFailed) after its report is stored: monitoring sees it, auditors read it.
 */
import { ApplicationFailure, metricMeter } from '@temporalio/workflow';
import { DrOutcome, ErrorType, type DrillReport, type StepRecord } from '../../contract';
import { recordMeasured } from '../metrics';
import { iso, messageOf, type Drill } from './context';

/** Whether the measured RTO and RPO met their targets (null: not measured). */
function targetsMet(d: Drill): { rtoMet: boolean | null; rpoMet: boolean | null } {
  const { measured } = d.run;
  const { targets } = d.plan;
  return {
    rtoMet: measured.rtoSeconds === null ? null : measured.rtoSeconds <= targets.rtoSeconds,
    rpoMet: measured.rpoSeconds === null ? null : measured.rpoSeconds <= targets.rpoSeconds,
  };
}

/** A missed target is a critical finding; both met, an informational one. */
export function judgeTargets(d: Drill): void {
  const { run, plan, findings } = d;
  const { rtoMet, rpoMet } = targetsMet(d);
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
}

export function reportOf(d: Drill): DrillReport {
  const { run, plan, svc, input, drillId, startedAt, findings } = d;
  const outcome: DrillReport['outcome'] = findings.some((f) => f.severity === 'critical') ? 'failed' : 'passed';
  const own = (s: StepRecord) => ({ ...s, runbook: 'drill' });
  return {
    format: 'drbook-drill/1',
    id: drillId,
    service: svc.name,
    tier: svc.tier,
    strategy: svc.strategy,
    scope: input.scope,
    reason: input.reason,
    outcome,
    startedAt: iso(startedAt),
    endedAt: iso(Date.now()),
    steps: [...run.steps.map(own), ...d.steps].sort((a, b) => (a.startedAt ?? '').localeCompare(b.startedAt ?? '')),
    approvals: d.approvals,
    measured: { ...run.measured },
    targets: plan.targets,
    ...targetsMet(d),
    findings,
    children: d.children.map((c) => ({ runbook: c.runbook, workflowId: c.workflowId, outcome: c.state })),
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
}

/** The worker's metrics: measured RTO and RPO, and whether the drill passed. */
export function recordMetrics(r: DrillReport): void {
  const tags = { service: r.service, tier: r.tier, scope: r.scope };
  if (r.measured.rtoSeconds !== null)
    metricMeter.createGauge('drbook_drill_rto_seconds', 'float').set(r.measured.rtoSeconds, tags);
  if (r.measured.rpoSeconds !== null)
    metricMeter.createGauge('drbook_drill_rpo_seconds', 'float').set(r.measured.rpoSeconds, tags);
  metricMeter.createGauge('drbook_drill_passed', 'int').set(r.outcome === 'passed' ? 1 : 0, tags);
  recordMeasured('drill', r.service, r.measured);
}

/** Store the report (with its links); not stored is a warning in the report itself. */
export async function publishReport(d: Drill, report: DrillReport): Promise<DrillReport> {
  try {
    return await d.run.step(
      'publish-report',
      () => d.acts.reporting.publishDrillReport({ report }),
      (r) => r.links?.html ?? '',
    );
  } catch (err) {
    report.findings.push({ severity: 'warning', text: `report not stored: ${messageOf(err)}` });
    return report;
  }
}

/** The run's outcome, on its page and search attributes; a failed drill fails with its report in the details. */
export function finish(d: Drill, outcome: DrillReport['outcome'], published: DrillReport): DrillReport {
  const { run, svc, drillId, findings } = d;
  run.phase = outcome === 'passed' ? 'done' : 'failed';
  run.tag([{ key: DrOutcome, value: outcome }]);
  if (outcome === 'failed') {
    const critical = findings.filter((f) => f.severity === 'critical').map((f) => f.text);
    throw ApplicationFailure.create({
      type: ErrorType.DrillFailed,
      message: `drill ${drillId} of ${svc.name} failed: ${critical.join('; ')}`,
      nonRetryable: true,
      details: [published],
    });
  }
  return published;
}
