/** The logical backup restored into fresh scratch databases, validated, and timed against the tier's targets. */
import { reasonOf } from '../plan';
import { round1 } from '../steps';
import type { PickedBackup } from './backup';
import { acts, check, checked, type RestoreTest } from './context';
import { keepingRunTag, scratchNames, scratchNamesBeforeRunTagKept } from './names';

export type ScratchDatabases = { source: string; scratch: string }[];

/** Restore into fresh scratch databases (streamed: storage | zstd -d | mariadb, no temp copy). */
export async function restoreIntoScratch(
  t: RestoreTest,
  b: PickedBackup,
): Promise<{ databases: ScratchDatabases; seconds: number }> {
  const { svc, input, report, scratchServer, runTag } = t;
  const { manifest } = b;
  const databases = keepingRunTag(
    scratchNames(svc.name, runTag, manifest.databases),
    scratchNamesBeforeRunTagKept(svc.name, runTag, manifest.databases),
  );
  // From here the clean-up drops these databases, whatever happens next.
  report.scratch = { server: scratchServer, databases };
  const restored = await checked(
    t,
    'restore',
    'restoreIntoScratch',
    () =>
      acts.loading.restoreIntoScratch({
        service: svc.name,
        backupId: b.backupId,
        destination: b.destination,
        server: scratchServer,
        databases,
        size: manifest.object.size,
        sha256: manifest.object.sha256,
        parallel: input.parallel,
      }),
    (r) =>
      `${r.bytesLoaded} bytes of SQL, ${r.tables} tables over ${r.parallel} sessions into ` +
      `${databases.map((d) => d.scratch).join(', ')} in ${round1(r.seconds)} s`,
  );
  report.measured.restoreSeconds = round1(restored.seconds);
  report.measured.bytesRestored = restored.bytesLoaded;
  check(
    t,
    'restore',
    true,
    `${restored.tables} tables, ${restored.statements} statements in ${round1(restored.seconds)} s`,
  );
  return { databases, seconds: restored.seconds };
}

/** Validate what was loaded: schema, row counts against the manifest, the inventory's queries. Returns seconds. */
export async function validate(t: RestoreTest, b: PickedBackup, databases: ScratchDatabases): Promise<number> {
  const validated = await checked(
    t,
    'validate',
    'validateRestore',
    () =>
      acts.quick.validateRestore({
        server: t.scratchServer,
        databases,
        tables: b.manifest.tables,
        rowCountsExact: b.manifest.rowCounts.exact,
        queries: t.queries,
      }),
    (v) => `${v.checks.filter((c) => c.ok).length}/${v.checks.length} checks passed`,
  );
  for (const c of validated.checks) check(t, c.name, c.ok, c.detail, c.gate);
  return validated.seconds;
}

/** Measure against the tier's targets: checksum + restore + validation is the RTO evidence, the backup's age RPO's. */
export function measureAgainstTargets(t: RestoreTest, b: PickedBackup, seconds: [number, number, number]): void {
  const { run, svc, plan, report } = t;
  const [checksum, restore, validation] = seconds;
  const rto = round1(checksum + restore + validation);
  report.measured.rtoSeconds = rto;
  run.measured.rtoSeconds = rto;
  check(
    t,
    'rto-restore-time',
    rto <= plan.targets.rtoSeconds,
    `checksum + restore + validation took ${rto} s; the ${svc.tier} target is ${plan.targets.rtoSeconds} s`,
    t.gateTargets,
  );
  check(
    t,
    'rpo-backup-age',
    b.ageSeconds <= plan.targets.rpoSeconds,
    `the backup was ${b.ageSeconds} s old when tested; the ${svc.tier} target is ${plan.targets.rpoSeconds} s`,
    t.gateTargets,
  );
}

/** Drop the scratch databases (those never created are reported absent); a failure is a failed clean-up check. */
export async function dropScratch(
  t: RestoreTest,
  scratch: { server: string; databases: ScratchDatabases },
): Promise<void> {
  const { run, report } = t;
  const { server } = scratch;
  const names = scratch.databases.map((d) => d.scratch);
  try {
    const dropped = await run.step(
      'dropScratchDatabase',
      () => acts.cleanup.dropScratchDatabase({ server, databases: names }),
      (d) =>
        `dropped ${d.dropped.join(', ') || 'nothing'}` +
        (d.absent.length ? `; never created: ${d.absent.join(', ')}` : ''),
    );
    const absent = dropped.absent.length ? `, absent ${dropped.absent.join(', ')}` : '';
    report.cleanup.push({
      done: true,
      detail: `scratch databases on ${server}: dropped ${dropped.dropped.join(', ') || 'none'}${absent}`,
    });
  } catch (err) {
    report.cleanup.push({
      done: false,
      detail: `scratch databases ${names.join(', ')} on ${server}: ${reasonOf(err)}`,
    });
    check(t, 'cleanup', false, `could not drop ${names.join(', ')}: ${reasonOf(err)}`);
  }
}
