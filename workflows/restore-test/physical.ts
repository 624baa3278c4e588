/**
 * Physical backup (backup.physical): the newest one restored into a scratch instance of its own (started, checked,
 * stopped and deleted inside the one activity, whatever happens).
 */
import { patched } from '@temporalio/workflow';
import { round1 } from '../steps';
import { acts, check, checked, type RestoreTest } from './context';

export async function restorePhysicalBackup(t: RestoreTest): Promise<void> {
  if (!(t.backup.physical && patched('physical-restore'))) return;
  const { svc, report, queries } = t;
  const { pp, pm } = await pickPhysicalBackup(t);
  const pr = await checked(
    t,
    'physical-restore',
    'restorePhysicalIntoScratch',
    () =>
      acts.loading.restorePhysicalIntoScratch({
        service: svc.name,
        backupId: pp.backupId,
        destination: pp.destination,
        size: pm.object.size,
        sha256: pm.object.sha256,
        databases: t.backup.databases,
        gtid: pm.position.gtid,
        queries,
      }),
    (r) =>
      `extract ${round1(r.seconds.extract)} s, prepare ${round1(r.seconds.prepare)} s, ` +
      `start ${round1(r.seconds.start)} s, ${r.tables.length} tables checked; ` +
      `instance ${r.cleanedUp ? 'removed' : 'NOT removed'}`,
  );
  report.physical = {
    backupId: pp.backupId,
    startedAt: pm.startedAt,
    seconds: pr.seconds,
    rows: pr.tables.reduce((n, x) => n + x.rows, 0),
    cleanedUp: pr.cleanedUp,
  };
  check(
    t,
    'physical-restore',
    true,
    `${pp.backupId} (${pm.object.size} bytes) restored in ${round1(pr.seconds.total)} s`,
  );
  for (const c of pr.checks) check(t, c.name, c.ok, c.detail, c.gate);
  check(
    t,
    'physical-cleanup',
    pr.cleanedUp,
    pr.cleanedUp
      ? 'scratch instance stopped, its directory deleted'
      : 'the scratch instance or its directory was left behind',
  );
}

/** The newest verified physical backup and its manifest. */
async function pickPhysicalBackup(t: RestoreTest) {
  const { svc } = t;
  const pp = await checked(
    t,
    'physical-backup-available',
    'pickNewestVerifiedBackup physical',
    () => acts.quick.pickNewestVerifiedBackup({ service: svc.name, kind: 'physical' }),
    (p) => `${p.backupId} from ${p.destination}`,
  );
  const pm = await checked(
    t,
    'physical-manifest',
    'fetchManifest physical',
    () =>
      acts.quick.fetchManifest({
        service: svc.name,
        backupId: pp.backupId,
        destination: pp.destination,
        kind: 'physical',
      }),
    (m) => `${m.object.size} bytes, taken ${m.startedAt}, GTID ${m.position.gtid ?? '-'}`,
  );
  return { pp, pm };
}
