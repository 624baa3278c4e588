/**
 * The end of every restore test, passed, failed or cancelled: clean-up, the verdict, the report stored with the
 * service's backups, an alert when it failed, and the result.
 */
import { ApplicationFailure, isCancellation, workflowInfo } from '@temporalio/workflow';
import { DrOutcome, ErrorType, type RestoreTestResult } from '../../contract';
import { recordRestoreTest } from '../metrics';
import { reasonOf } from '../plan';
import { acts, type RestoreTest } from './context';
import { deleteRestoredRds } from './rds';
import { dropScratch } from './scratch';

/** Remove what the run created: its scratch databases, then its RDS instance. */
export async function cleanUp(t: RestoreTest): Promise<void> {
  if (t.report.scratch) await dropScratch(t, t.report.scratch);
  if (t.rdsInstance) await deleteRestoredRds(t, t.rdsInstance);
}

/** The verdict: the first failed gating check fails the test; a cancelled run is cancelled, whatever it found. */
export function judge(t: RestoreTest, thrown: unknown): void {
  const { run, report, svc } = t;
  const failedCheck = t.checks.find((c) => c.gate && !c.ok)?.name ?? null;
  report.outcome = isCancellation(thrown) ? 'cancelled' : failedCheck || thrown ? 'failed' : 'passed';
  report.failedCheck = failedCheck ?? (thrown && !isCancellation(thrown) ? 'runbook' : null);
  report.endedAt = new Date(Date.now()).toISOString();
  run.phase = report.outcome;
  run.tag([{ key: DrOutcome, value: report.outcome }]);
  if (report.outcome !== 'cancelled') recordRestoreTest(svc.name, report.outcome === 'passed');
}

/** The report (JSON, Markdown, HTML with history) in the primary backup destination; not stored is a note. */
export async function publishReport(t: RestoreTest): Promise<void> {
  const { run, report } = t;
  try {
    const links = await run.step(
      'publishRestoreReport',
      () => acts.quick.publishRestoreReport({ report }),
      (l) => `${l.html} (${l.history} earlier tests)`,
    );
    report.links = { json: links.json, markdown: links.markdown, html: links.html };
  } catch (err) {
    run.notes.push(`report not stored: ${reasonOf(err)}`);
  }
}

/** A failed test alerts every notification target: the check that failed, what was cleaned up, the report. */
export async function alertOnFailure(t: RestoreTest, thrown: unknown): Promise<void> {
  const { run, report, svc, plan } = t;
  if (report.outcome !== 'failed') return;
  const failed = t.checks.find((c) => c.name === report.failedCheck);
  const cleanedUp = report.cleanup.map((c) => `${c.done ? 'done' : 'NOT DONE'}: ${c.detail}`).join('; ');
  const subject = `drbook: restore test of ${svc.name} FAILED at check ${report.failedCheck}`;
  const message = [
    `Restore test ${t.testId} of ${svc.name} (backup ${report.backup.id ?? 'none'}) failed.`,
    `Failed check: ${report.failedCheck}: ${failed?.detail ?? reasonOf(thrown)}`,
    `Clean-up: ${cleanedUp || 'nothing to clean up'}`,
    `Report: ${report.links?.html ?? '(not stored)'}`,
  ].join('\n');
  const key = `${workflowInfo().workflowId}/${workflowInfo().runId}/restore-test-failed`;
  await Promise.all(
    plan.notificationTargets.map((target) =>
      run
        .step(`notify ${target}`, () =>
          acts.notify.notifyTarget({ target, subject, message, idempotencyKey: `${key}/${target}` }),
        )
        .catch((err: unknown) => run.notes.push(`alert to ${target} failed: ${reasonOf(err)}`)),
    ),
  );
}

/** The result; a cancelled run ends cancelled, a failed one with RestoreTestFailed (the result in its details). */
export function resultOf(t: RestoreTest, thrown: unknown): RestoreTestResult {
  const { report, svc } = t;
  const result: RestoreTestResult = {
    service: svc.name,
    testId: t.testId,
    outcome: report.outcome,
    backupId: report.backup.id,
    failedCheck: report.failedCheck,
    measured: report.measured,
    targets: report.targets,
    report: report.links,
  };
  if (isCancellation(thrown)) throw thrown;
  if (report.outcome === 'failed') {
    const failed = t.checks.find((c) => c.name === report.failedCheck);
    throw ApplicationFailure.create({
      type: ErrorType.RestoreTestFailed,
      message:
        `restore test of ${svc.name} failed at check ${report.failedCheck}: ` +
        `${failed?.detail ?? reasonOf(thrown)} (report: ${report.links?.html ?? 'not stored'})`,
      nonRetryable: true,
      details: [result],
    });
  }
  return result;
}
