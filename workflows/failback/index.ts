/**
 * failback({ service })
 *
 *   assess topology → re-protect (old primary becomes a replica of the DR side, caught up)
 *   → approval gate → fence the DR primary → catch up → promote the original primary
 *   → re-protect the DR side → VIP and DNS back → notify → verify → DR compute back to standby
 *   → RDS DR read replica re-created from the primary (the promoted one deleted, final snapshot kept)
 *
 * A planned switchover: it loses nothing (RPO 0), measures its own RTO (fence to healthy),
 * and refuses to rebuild an old primary that holds transactions the DR side lacks. Stopped before the
 * original is promoted, it puts the DR primary back (since 'failback-compensation') and says so.
 */
import { patched } from '@temporalio/workflow';
import { runbookActivities } from '../activity-options';
import { Compensations } from '../compensations';
import { failbackInput, parseInput, type FailbackInput, type FailbackReport } from '../../contract';
import { holdServiceLockIfPatched } from '../lock';
import { DrMode, DrRunbook, DrService } from '../../contract';
import { planFor } from '../plan';
import { RunbookRun } from '../runbook';
import { requireWorkflowId } from '../workflow-ids';
import { notifyPeople, notifyStopped } from '../steps';
import { finish, type Failback } from './context';
import { failBackHot } from './hot';
import {
  alreadyInPlace,
  approveSwitchBack,
  bringTrafficBack,
  drBackToStandby,
  fenceDrAndPromoteOriginal,
  notifyAndVerify,
  refuseIfAtHome,
  reprotectOriginal,
  warmRoles,
} from './warm';

export async function failback(rawInput: FailbackInput): Promise<FailbackReport> {
  const input = parseInput(failbackInput, rawInput);
  requireWorkflowId('failback', input.service);
  const plan = await planFor(input.service);
  const run = new RunbookRun('failback', plan.service.name, plan.targets, plan.approvers, Date.now());
  run.requireSignedApprovals(plan);
  const acts = runbookActivities(plan, run);
  // One topology change per service at a time, the re-clone of a diverged old primary included.
  const lock = await holdServiceLockIfPatched(run, plan, acts.reads);
  const fb: Failback = { input, plan, svc: plan.service, run, acts, compensations: new Compensations(), fencing: null };
  try {
    return await failBack(fb);
  } catch (err) {
    await stop(fb, err);
    throw err;
  } finally {
    await lock?.release();
  }
}

async function failBack(fb: Failback): Promise<FailbackReport> {
  fb.run.tag([
    { key: DrService, value: fb.svc.name },
    { key: DrRunbook, value: 'failback' },
    { key: DrMode, value: fb.input.mode },
  ]);
  if (fb.svc.strategy === 'hot') return failBackHot(fb);
  const roles = warmRoles(fb);
  await refuseIfAtHome(fb, roles);
  if (await alreadyInPlace(fb, roles)) return finish(fb, 'already-in-place');
  await reprotectOriginal(fb, roles);
  const switchStartedAt = await approveSwitchBack(
    fb,
    `switch ${fb.svc.name} back to ${roles.original} (caught up with ${roles.dr})`,
  );
  await fenceDrAndPromoteOriginal(fb, roles);
  await bringTrafficBack(fb, roles);
  await notifyAndVerify(fb, roles, switchStartedAt);
  await drBackToStandby(fb);
  await fb.run.step(
    'notify-people',
    () =>
      notifyPeople(
        fb.plan,
        fb.acts,
        `${fb.svc.name} failed back to ${roles.original}`,
        `RTO ${fb.run.measured.rtoSeconds} s, RPO 0 s`,
        'failed-back',
      ),
    () => fb.plan.notificationTargets.join(', '),
  );
  return finish(fb, 'completed');
}

/**
 * Stopped (since 'failback-compensation'): a fence of the DR primary whose switch did not finish is undone, so a
 * failed failback is not an outage; then people hear which step failed and why, as for a failover.
 */
async function stop(fb: Failback, err: unknown): Promise<void> {
  if (!patched('failback-compensation')) return;
  await fb.compensations.unwind();
  await notifyStopped(fb.run, fb.plan, fb.acts, err);
}
