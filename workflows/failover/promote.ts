/** The database switch: catch the replica up and promote it (warm), or restore a backup into the DR server (cold). */
import { ApplicationFailure, patched } from '@temporalio/workflow';
import { pushRefence } from '../compensations';
import { ErrorType } from '../../contract';
import { round1 } from '../steps';
import type { Approved } from './approve';
import type { Assessment } from './assess';
import type { Failover, PromotionTarget } from './context';
import { reverifyFence, type Fence } from './fence';

/** What the failover promotes: a warm service's replica, a cold service's DR server; none for hot (or no database). */
export function promotionTarget({ svc }: Failover): PromotionTarget | null {
  const db = svc.database;
  if (db && svc.strategy === 'warm' && db.replica) return { db, server: db.replica, cold: false };
  if (db && svc.strategy === 'cold' && db.drServer) return { db, server: db.drServer, cold: true };
  return null;
}

/** Hot (or no database): both sides serve, so nothing is fenced or promoted and nothing is lost. */
export function skipDatabaseSwitch({ run, svc }: Failover): void {
  run.skip('fence', `${svc.strategy} service: both sides serve, nothing to fence`);
  run.skip('catch-up', `${svc.strategy} service`);
  run.skip('promote', `${svc.strategy} service`);
  run.measured.rpoSeconds = 0;
}

/** Warm: the replica applies everything the fenced primary committed (a planned switchover loses nothing). */
export async function catchUpAndPromote(
  f: Failover,
  target: PromotionTarget,
  fence: Fence,
  gate: Approved,
): Promise<string> {
  const { run, plan, acts } = f;
  const { db, server: replica } = target;
  const catchUp = (name: string, gtids: string | null) =>
    run.step(
      name,
      () =>
        acts.longWaits.waitForCatchUp({
          replica,
          gtids,
          heartbeatTable: db.heartbeatTable,
          timeoutSeconds: Math.max(30, Math.min(600, plan.targets.rtoSeconds / 3)),
        }),
      (c) => `${replica} applied ${c.waitedFor || 'everything it received'}`,
    );
  const caughtUp = await catchUp('catch-up', fence.mysql.finalGtids);
  run.measured.rpoSeconds = fence.mysql.fenced
    ? 0 // every transaction the fenced primary committed is on the replica
    : caughtUp.replicaHeartbeatAt === null
      ? null
      : round1(Math.max(0, (f.incidentStartedAt - caughtUp.replicaHeartbeatAt) / 1000));
  if (
    (run.measured.rpoSeconds ?? Number.POSITIVE_INFINITY) > plan.targets.rpoSeconds &&
    !gate.approvals.some((a) => a.overrideRpo)
  ) {
    throw ApplicationFailure.create({
      type: ErrorType.ReplicaLagTooHigh,
      message:
        `data loss of ${run.measured.rpoSeconds ?? 'unknown'} s exceeds the ${plan.targets.rpoSeconds} s RPO ` +
        `and no approval overrode it: not promoting ${replica}`,
      nonRetryable: true,
    });
  }
  if (patched('fence-reverified')) {
    await reverifyFence(f, target, fence, gate, (gtids) => catchUp('catch-up-again', gtids));
  }
  pushRefence(f.compensations, run, acts, f.fencing!, replica);
  await run.step(
    'promote',
    () => acts.topologyChanges.promoteReplica({ server: replica, heartbeatEvent: db.heartbeatEvent }),
    (p) => (p.alreadyPrimary ? `${replica} was already primary` : `${replica} promoted at ${p.gtids}`),
  );
  f.compensations.clear();
  return replica;
}

/** Cold: no standby. The newest verified backup is restored into the DR server, which is then opened for writes. */
export async function restoreAndOpen(
  f: Failover,
  target: PromotionTarget,
  fence: Fence,
  assessment: Assessment,
  gate: Approved,
): Promise<string> {
  const { run, svc, acts } = f;
  const { db, server } = target;
  const backup = assessment.backup;
  if (!backup)
    throw ApplicationFailure.create({
      type: ErrorType.NotConfigured,
      message: `${svc.name}: no backup picked`,
      nonRetryable: true,
    });
  await run.step(
    'restore-backup',
    () =>
      acts.longWaits.restoreIntoDrServer({
        service: svc.name,
        backupId: backup.backupId,
        destination: backup.destination,
        sha256: backup.sha256,
      }),
    (r) =>
      `backup ${backup.backupId} (${r.databases.join(', ')}) restored into ${r.server} ` +
      `in ${r.seconds.toFixed(1)} s, SHA-256 checked`,
  );
  run.measured.rpoSeconds = round1(assessment.expectedRpoSeconds);
  if (patched('fence-reverified')) await reverifyFence(f, target, fence, gate, null);
  pushRefence(f.compensations, run, acts, f.fencing!, server);
  await run.step(
    'promote',
    () => acts.topologyChanges.unfencePrimary({ server, heartbeatEvent: db.heartbeatEvent }),
    () => `${server} writable`,
  );
  f.compensations.clear();
  return server;
}
