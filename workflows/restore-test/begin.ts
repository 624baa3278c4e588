/**
 * The run's start: its input checked (point-in-time queries by name), the service's plan, its record and search
 * attributes, and the report every step fills in. Nothing is restored yet.
 */
import { ApplicationFailure, patched, workflowInfo } from '@temporalio/workflow';
import type { ValidationQuery } from '../../activities/restore';
import { DrRunbook, DrService, ErrorType, type RestoreCheck, type RestoreTestReport } from '../../contract';
import { backupIdAt } from '../backup-policy';
import { planFor } from '../plan';
import { RunbookRun } from '../runbook';
import type { RestoreTest } from './context';

export async function begin(input: RestoreTest['input']): Promise<RestoreTest> {
  const plan = await planFor(input.service);
  const svc = plan.service;
  const startedAt = Date.now();
  // The run id's random tail (its head is a timestamp): distinct scratch names for runs a second apart.
  const runTag = workflowInfo()
    .runId.replace(/[^a-z0-9]/gi, '')
    .slice(-8)
    .toLowerCase();
  const testId = `${backupIdAt(startedAt)}-${runTag}`;
  const pointQueries = pointInTimeQueries(input.pointInTime?.queries ?? [], svc.restoreTest);
  const run = new RunbookRun('restoreTest', svc.name, plan.targets, plan.approvers, startedAt);
  run.tag([
    { key: DrService, value: svc.name },
    { key: DrRunbook, value: 'restoreTest' },
  ]);
  if (!svc.backup || !svc.restoreTest || !svc.database) {
    throw ApplicationFailure.create({
      type: ErrorType.NotConfigured,
      message:
        `service ${svc.name} needs backup, database and restoreTest sections in the inventory ` + 'for a restore test',
      nonRetryable: true,
    });
  }
  const { scratchServer, queries } = svc.restoreTest;
  const checks: RestoreCheck[] = [];
  return {
    ...{ input, plan, svc, backup: svc.backup, run, startedAt, runTag, testId, scratchServer, queries, pointQueries },
    gateTargets: svc.strategy === 'cold',
    checks,
    report: emptyReport(plan, testId, startedAt, checks, run),
    rdsInstance: null,
  };
}

/** The report before any step: a pass until a gating check fails. */
function emptyReport(
  plan: RestoreTest['plan'],
  testId: string,
  startedAt: number,
  checks: RestoreCheck[],
  run: RunbookRun,
): RestoreTestReport {
  const svc = plan.service;
  return {
    format: 'drbook-restore-test/1',
    id: testId,
    service: svc.name,
    tier: svc.tier,
    strategy: svc.strategy,
    outcome: 'passed',
    failedCheck: null,
    startedAt: new Date(startedAt).toISOString(),
    endedAt: '',
    backup: { id: null, source: null, startedAt: null, size: null, sha256: null, position: null },
    scratch: null,
    measured: {
      restoreSeconds: null,
      rtoSeconds: null,
      backupAgeSeconds: null,
      checksumSeconds: null,
      bytesRestored: null,
    },
    targets: plan.targets,
    checks,
    rds: null,
    cleanup: [],
    steps: run.steps,
    links: null,
  };
}

/**
 * The queries a restoreTest input asks for at its point in time, by name, from the service's inventory: they run
 * as drbook's admin user and their first cell goes into history, so the input may not bring its own SQL. Checked
 * before anything is restored; an unknown name fails naming its position and the names there are.
 */
function pointInTimeQueries(
  asked: (string | ValidationQuery)[],
  restore: { queries: ValidationQuery[]; pointInTimeQueries?: ValidationQuery[] } | undefined,
): ValidationQuery[] {
  const adHoc = asked.findIndex((q) => typeof q !== 'string');
  // Runs started before names were required keep their ad-hoc queries on replay.
  if (adHoc >= 0 && !patched('pitr-named-queries')) return asked as ValidationQuery[];
  const known = [...(restore?.queries ?? []), ...(restore?.pointInTimeQueries ?? [])];
  const problems = asked.flatMap((q, i) => {
    if (typeof q !== 'string')
      return [`pointInTime.queries.${i}: ad-hoc SQL is not accepted; name one of the service's inventory queries`];
    return known.some((k) => k.name === q)
      ? []
      : [
          `pointInTime.queries.${i}: no inventory query named ${JSON.stringify(q.slice(0, 80))} ` +
            `(known: ${known.map((k) => k.name).join(', ') || 'none'})`,
        ];
  });
  if (problems.length)
    throw ApplicationFailure.create({
      type: ErrorType.InvalidInput,
      message: `invalid input: ${problems.join('; ')}`,
      nonRetryable: true,
      details: [problems],
    });
  return [...new Set(asked as string[])].map((n) => known.find((k) => k.name === n)!);
}
