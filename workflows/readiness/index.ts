/**
 * readiness({ service, alertOnDrift? }): every read-only check a failover depends on, run
 * against the real estate, changing nothing. The failover's dry run, the drill and the hourly
 * readiness schedule use it. Each check names what an operator must fix.
 *
 * Scheduled runs (alertOnDrift) compare their failing checks with the schedule's previous
 * completed run (read by an activity, so the decision replays) and notify people once when a
 * check starts failing and once when it recovers: an estate that stays broken does not page
 * every hour. The run also sets the worker's `drbook_ready` and `drbook_backup_age_seconds` gauges.
 */
import { metricMeter, patched, upsertSearchAttributes } from '@temporalio/workflow';
import { parseInput, readinessInput, type ReadinessReport, DrOutcome, DrRunbook, DrService } from '../../contract';
import { recordBackupAge } from '../metrics';
import { planFor } from '../plan';
import { activities, drActivities, readinessChecks } from '../activity-options';
import { publishPage, type Readiness } from './checks';
import { checkDatabase, readLiveRoles } from './database';
import { alertOnDrift } from './drift-alert';
import { checkForDrift } from './drift-checks';
import { checkDns, checkDrCompute, checkPrimaryTargets, checkRdsReplica, checkVip } from './estate';

export async function readiness(rawInput: unknown): Promise<ReadinessReport> {
  const input = parseInput(readinessInput, rawInput);
  const r = await begin(input.service);
  await readLiveRoles(r);
  await checkPrimaryTargets(r);
  await checkDatabase(r);
  await checkRdsReplica(r);
  await checkDrCompute(r);
  await checkDns(r);
  await checkVip(r);
  // Checks added after the first histories were recorded: old runs replay without them.
  if (patched('readiness-drift-checks')) await checkForDrift(r);
  const report = finish(r);
  if (input.alertOnDrift) report.drift = await alertOnDrift(r.plan, r.checks);
  return report;
}

async function begin(service: string): Promise<Readiness> {
  const plan = await planFor(service);
  upsertSearchAttributes([
    { key: DrService, value: plan.service.name },
    { key: DrRunbook, value: 'readiness' },
  ]);
  const r: Readiness = {
    plan,
    svc: plan.service,
    primarySide: activities(readinessChecks),
    drSide: drActivities(plan, readinessChecks),
    checks: [],
    steps: [],
    expectedRpoSeconds: null,
    backupAgeSeconds: null,
    topology: undefined,
  };
  publishPage(r);
  return r;
}

/** The verdict: on the page, as a search attribute, in the worker's gauges, and as the report. */
function finish(r: Readiness): ReadinessReport {
  const { plan, svc, checks } = r;
  const ready = checks.every((c) => c.ok);
  const failing = checks.filter((c) => !c.ok).length;
  publishPage(r, ready ? `READY (${checks.length} checks passed)` : `NOT READY (${failing} failing)`);
  upsertSearchAttributes([{ key: DrOutcome, value: ready ? 'ready' : 'not-ready' }]);
  metricMeter
    .createGauge('drbook_ready', 'int', '1 when every readiness check of the service passed')
    .set(ready ? 1 : 0, { service: svc.name });
  if (r.backupAgeSeconds !== null) recordBackupAge(svc.name, r.backupAgeSeconds);
  const report: ReadinessReport = {
    service: svc.name,
    ready,
    checks,
    expectedRpoSeconds: r.expectedRpoSeconds,
    targets: plan.targets,
  };
  if (r.topology) report.topology = r.topology;
  return report;
}
