/** RDS: the newest snapshot restored in the DR region as a disposable instance, deleted at the end. */
import { drActivities, rdsCleanup, rdsRestores } from '../activity-options';
import { reasonOf } from '../plan';
import { round1 } from '../steps';
import { check, checked, type RestoreTest } from './context';
import { keepingRunTag, restoredRdsInstanceName, restoredRdsInstanceNameBeforeRunTagKept } from './names';

export async function restoreRdsSnapshot(t: RestoreTest): Promise<void> {
  const { run, svc, plan, input, runTag } = t;
  const rds = svc.rds;
  if (!(input.rds && rds)) {
    if (rds) run.skip('restoreRdsSnapshotInDr', 'rds: false in the input');
    return;
  }
  const drSide = drActivities(plan, rdsRestores);
  // Named before the step: the clean-up deletes it whatever happens next.
  const target = (t.rdsInstance = {
    region: plan.regions.dr,
    instance: keepingRunTag(
      restoredRdsInstanceName(svc.name, runTag),
      restoredRdsInstanceNameBeforeRunTagKept(svc.name, runTag),
    ),
  });
  const r = await checked(
    t,
    'rds-restore',
    'restoreRdsSnapshotInDr',
    () =>
      drSide.restoreRdsSnapshotInDr({
        service: svc.name,
        region: target.region,
        sourceInstance: rds.instance,
        instance: target.instance,
      }),
    (x) => `${x.snapshot} → ${x.instance} (${x.region}) ${x.status} in ${round1(x.seconds)} s`,
  );
  const { snapshot, region, instance, status } = r;
  t.report.rds = { snapshot, region, instance, status, seconds: round1(r.seconds), deleted: false };
  check(
    t,
    'rds-restore',
    status === 'available' && r.endpoint !== null,
    (
      `${snapshot} (taken ${r.snapshotCreatedAt ?? '?'}) restored as ${instance} in ${region}: ${status}, ` +
      `endpoint ${r.endpoint ?? 'none'}, ${r.engine ?? ''}`
    ).trim(),
  );
}

/** Delete the restored instance (or find it was never created); a failure is a failed clean-up check. */
export async function deleteRestoredRds(t: RestoreTest, target: { region: string; instance: string }): Promise<void> {
  const { run, report } = t;
  const drCleanup = drActivities(t.plan, rdsCleanup);
  try {
    const d = await run.step(
      'deleteRestoredRdsInstance',
      () => drCleanup.deleteRestoredRdsInstance(target),
      (x) => (x.deleted ? `${x.instance} deleted` : `${x.instance} was never created`),
    );
    if (report.rds) report.rds.deleted = d.deleted;
    report.cleanup.push({
      done: true,
      detail: `RDS instance ${target.instance} (${target.region}): ${d.deleted ? 'deleted' : 'never created'}`,
    });
  } catch (err) {
    report.cleanup.push({
      done: false,
      detail: `RDS instance ${target.instance} (${target.region}): ${reasonOf(err)}`,
    });
    check(t, 'cleanup', false, `could not delete RDS instance ${target.instance}: ${reasonOf(err)}`);
  }
}
