/** What every step of a restore test reads: its input, the service's plan, the run's record, the report it fills. */
import { ApplicationFailure, isCancellation } from '@temporalio/workflow';
import type { z } from 'zod';
import type { ValidationQuery } from '../../activities/restore';
import {
  ErrorType,
  type RestoreCheck,
  type restoreTestInput,
  type RestoreTestReport,
  type ServicePlan,
} from '../../contract';
import {
  activities,
  backupReads,
  binlogReplays,
  notifications,
  restoreChecks,
  restoreLoads,
  scratchCleanup,
} from '../activity-options';
import { reasonOf } from '../plan';
import type { RunbookRun } from '../runbook';

/** The restore test's activities, one proxy per timeout class (the DR side's RDS steps get theirs where they run). */
export const acts = {
  quick: activities(restoreChecks),
  reading: activities(backupReads),
  loading: activities(restoreLoads),
  replaying: activities(binlogReplays),
  cleanup: activities(scratchCleanup),
  notify: activities(notifications),
};

export interface RestoreTest {
  input: z.output<typeof restoreTestInput>;
  plan: ServicePlan;
  svc: ServicePlan['service'];
  /** The service's backup section (a restore test needs one). */
  backup: NonNullable<ServicePlan['service']['backup']>;
  run: RunbookRun;
  startedAt: number;
  /** The run id's random tail: what keeps this run's scratch names apart from another's. */
  runTag: string;
  testId: string;
  /** Where the restore goes, and the inventory's validation queries. */
  scratchServer: string;
  queries: ValidationQuery[];
  /** The inventory's queries the input asked for at its point in time. */
  pointQueries: ValidationQuery[];
  /** Timings decide pass/fail only for cold services (their recovery is this restore). */
  gateTargets: boolean;
  checks: RestoreCheck[];
  report: RestoreTestReport;
  /** The RDS instance the run restores into, once named: deleted at the end whatever happened. */
  rdsInstance: { region: string; instance: string } | null;
}

/** Record a check: it is in the report, and the run's notes say PASS, FAIL or MISS (a miss that does not gate). */
export function check(t: RestoreTest, name: string, ok: boolean, detail: string, gate = true): void {
  t.checks.push({ name, ok, gate, detail });
  t.run.notes.push(`${ok ? 'PASS' : gate ? 'FAIL' : 'MISS'} ${name}: ${detail}`);
}

/** Run a step; a failure becomes the named check's failure (and ends the run). */
export async function checked<T>(
  t: RestoreTest,
  checkName: string,
  step: string,
  work: () => Promise<T>,
  describe: (r: T) => string,
): Promise<T> {
  try {
    return await t.run.step(step, work, describe);
  } catch (err) {
    if (!isCancellation(err)) {
      const typed = err instanceof ApplicationFailure ? err.type : null;
      // A refused scratch server is its own finding: the restore never began (nothing was written there).
      const named =
        typed === ErrorType.BackupCorrupt
          ? 'checksum'
          : typed === ErrorType.ScratchIsProduction
            ? 'scratch-isolated'
            : checkName;
      check(t, named, false, reasonOf(err));
    }
    throw err;
  }
}
