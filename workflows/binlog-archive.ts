/**
 * binlogArchive({ services?, concurrency? }): the binlog RPO, on its own schedule (every few
 * minutes, cli/schedules.ts). For each service with `backup.binlogArchive` (or each one named):
 *
 *   FLUSH BINARY LOGS → every closed log not yet in a destination → every destination (+ .sha256)
 *
 * Idempotent: a log already archived is skipped, so a run that overlaps the nightly backup's own
 * archive step or follows a missed one copies only what is new. A failed service never stops the
 * others; the run then fails with BackupFailed naming each, so the schedule shows it, and each failed
 * service's notification targets hear at once (a refused source, a split, an unreachable server): the
 * archive is the RPO, and the next sign would otherwise be readiness's staleness check hours later.
 */
import { ActivityFailure, ApplicationFailure, patched, setHandler } from '@temporalio/workflow';
import type { z } from 'zod';
import type { BinlogArchiveResult } from '../activities/mysql/binlogs';
import {
  statusQuery,
  type BackupStatus,
  binlogArchiveInput,
  parseInput,
  type StepRecord,
  ErrorType,
} from '../contract';
import { gateless, publishBackupPage } from './backup/status';
import { planFor, reasonOf } from './plan';
import { activities, binlogArchives, runbookActivities, serviceListing } from './activity-options';
import { notifyPeople } from './steps';

const { listBackedUpServices } = activities(serviceListing);
const { archiveBinlogs } = activities(binlogArchives);

export interface BinlogArchiveRunResult {
  archived: Pick<BinlogArchiveResult, 'service' | 'server' | 'copied' | 'newest' | 'newestClosedAt'>[];
  failed: { service: string; reason: string }[];
}

/** What the run's steps share: its input, its status (steps and failures) and its result so far. */
interface BinlogArchiveRun {
  input: z.output<typeof binlogArchiveInput>;
  status: BackupStatus;
  steps: StepRecord[];
  result: BinlogArchiveRunResult;
}

export async function binlogArchive(rawInput: unknown): Promise<BinlogArchiveRunResult> {
  const a = begin(parseInput(binlogArchiveInput, rawInput));
  const services = await listArchivedServices(a);
  await archiveEach(a, services);
  return finish(a);
}

function begin(input: BinlogArchiveRun['input']): BinlogArchiveRun {
  const steps: StepRecord[] = [];
  const result: BinlogArchiveRunResult = { archived: [], failed: [] };
  const status: BackupStatus = {
    runbook: 'binlogArchive',
    service: input.services?.join(',') ?? '*',
    phase: 'listing services',
    steps,
    ...gateless(),
    backupId: '',
    compliance: [],
    failures: [],
  };
  setHandler(statusQuery, () => status);
  publishBackupPage(status);
  return { input, status, steps, result };
}

/** An unknown service, or one without the archive, fails the run itself before anything is flushed. */
async function listArchivedServices(a: BinlogArchiveRun): Promise<string[]> {
  let services: string[];
  try {
    services = await listBackedUpServices({ services: a.input.services, binlogArchive: true });
  } catch (err) {
    if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) throw err.cause;
    throw err;
  }
  a.status.phase = `archiving binlogs of ${services.length} services`;
  publishBackupPage(a.status);
  return services;
}

/** `concurrency` services at a time; a failed one never stops the others. */
async function archiveEach(a: BinlogArchiveRun, services: string[]): Promise<void> {
  const queue = [...services];
  const workers = Array.from({ length: Math.min(a.input.concurrency, queue.length) }, async () => {
    for (let s = queue.shift(); s !== undefined; s = queue.shift()) await archiveOne(a, s);
  });
  await Promise.all(workers);
}

async function archiveOne(a: BinlogArchiveRun, service: string): Promise<void> {
  const { result, status } = a;
  const rec: StepRecord = { name: service, state: 'running', startedAt: new Date().toISOString(), attempts: 1 };
  a.steps.push(rec);
  publishBackupPage(status);
  try {
    const r = await archiveBinlogs({ service });
    result.archived.push({
      service,
      server: r.server,
      copied: r.copied,
      newest: r.newest,
      newestClosedAt: r.newestClosedAt,
    });
    rec.state = 'succeeded';
    rec.detail =
      `${r.server}: ${r.copied.length} copied (${r.copied.join(', ') || 'none new'}), ` + `newest ${r.newest ?? '-'}`;
  } catch (err) {
    rec.state = 'failed';
    rec.detail = reasonOf(err);
    result.failed.push({ service, reason: reasonOf(err) });
    status.failures.push({ service, type: ErrorType.BackupFailed, reason: reasonOf(err) });
    if (patched('binlog-archive-failure-alert')) await alertFailed(service, reasonOf(err), rec);
  } finally {
    rec.endedAt = new Date().toISOString();
    publishBackupPage(status);
  }
}

/** The service's people hear at once: until the archive runs again, its RPO grows. */
async function alertFailed(service: string, reason: string, rec: StepRecord): Promise<void> {
  try {
    const plan = await planFor(service);
    await notifyPeople(
      plan,
      runbookActivities(plan),
      `[drbook] ${service} binlog archive FAILED`,
      `The binlog archive of ${service} failed: ${reason}.\nUntil it runs again, point-in-time recovery of ` +
        `${service} stops at the last archived log; the RPO grows with every minute.`,
      `binlog-failed-${service}`,
    );
  } catch (err) {
    rec.detail += `; the alert could not be sent: ${reasonOf(err)}`;
  }
}

/** The run's result, or BackupFailed naming each failed service (the result in its details). */
function finish(a: BinlogArchiveRun): BinlogArchiveRunResult {
  const { result, status } = a;
  status.phase = result.failed.length ? 'failed' : 'done';
  const copied = result.archived.reduce((n, x) => n + x.copied.length, 0);
  publishBackupPage(
    status,
    result.failed.length
      ? `FAILED for ${result.failed.map((f) => f.service).join(', ')}`
      : `done: ${copied} logs copied for ${result.archived.length} services`,
  );
  if (result.failed.length)
    throw ApplicationFailure.create({
      type: ErrorType.BackupFailed,
      message: `binlog archive failed for ${result.failed.map((f) => `${f.service}: ${f.reason}`).join('; ')}`,
      nonRetryable: true,
      details: [result],
    });
  return result;
}
