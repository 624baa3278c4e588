/**
 * Fence the old primary: the database refuses writes and the VIP stops reaching it. A fence that does not hold is
 * cut off through the AWS API (unattended) or put to a human at the "unfenced" gate; right before promotion the
 * fence is read again ("fence-lost" gate).
 */
import { ApplicationFailure } from '@temporalio/workflow';
import type { RunbookActivities } from '../activity-options';
import { pushUnfence } from '../compensations';
import { ErrorType } from '../../contract';
import { gateApprovals, reasonOf } from '../plan';
import { notifyPeople } from '../steps';
import type { Approved } from './approve';
import type { Failover, PromotionTarget } from './context';

export interface Fence {
  mysql: Awaited<ReturnType<RunbookActivities['fencing']['fencePrimary']>>;
  /** What became of the VIP, in words. */
  vip: string;
  complete: boolean;
}

export async function fenceOldPrimary(f: Failover, { db }: PromotionTarget, gate: Approved): Promise<Fence> {
  const { run, svc, acts } = f;
  const vip = svc.vip;
  f.fencing = {
    service: svc.name,
    server: db.primary,
    heartbeatEvent: db.heartbeatEvent,
    vip: vip ? { host: vip.primaryHost, address: vip.address, device: vip.device } : null,
    result: null,
    promoting: null,
    reprotect: db.replica ?? null,
  };
  // Pushed before the step starts: a fence that fails part-way (VIP removed, read_only still OFF) is undone too.
  pushUnfence(f.compensations, run, acts, f.fencing);
  const fence = await run.step(
    'fence',
    async () => {
      // Both fences at once: the database refuses writes, and the address stops reaching it.
      const [mysql, vipDone] = await Promise.all([
        acts.fencing.fencePrimary({ server: db.primary, heartbeatEvent: db.heartbeatEvent }),
        vip
          ? acts.fencing
              .removeVip({ host: vip.primaryHost, address: vip.address, device: vip.device })
              .then((r) => (r.removed ? `VIP removed from ${vip.primaryHost}` : `VIP was not on ${vip.primaryHost}`))
              .catch((err: unknown) => `VIP NOT removed from ${vip.primaryHost}: ${reasonOf(err)}`)
          : Promise.resolve('no VIP'),
      ]);
      return { mysql, vip: vipDone, complete: mysql.fenced && !vipDone.includes('NOT removed') };
    },
    (r) => `${r.mysql.detail}; ${r.vip}`,
  );
  f.fencing.result = fence.mysql;
  const acknowledged = () => gate.approvals.some((a) => a.acknowledgeUnfenced);
  if (!fence.complete && gate.unattended && !acknowledged()) await fenceUnattended(f, db.primary, fence);
  if (!fence.complete && !acknowledged()) {
    await run.gate('unfenced', {
      needed: gateApprovals(svc),
      requireUnfencedAck: true,
      timeoutMs: gate.timeoutMs,
      question:
        `the old primary could not be fully fenced (${fence.mysql.detail}; ${fence.vip}): ` +
        'promote anyway? (split-brain risk: acknowledgeUnfenced)',
    });
  }
  return fence;
}

/**
 * Unattended and not fenced: cut the old primary off through the AWS API (when the inventory says how), else a
 * human decides at the "unfenced" gate; nobody is there to acknowledge the risk.
 */
async function fenceUnattended(f: Failover, primary: string, fence: Fence): Promise<void> {
  const { run, plan, svc, acts } = f;
  const awsFence = svc.awsFence;
  const isolated = awsFence
    ? await run
        .step(
          'fence-aws',
          () => acts.topologyChanges.isolateOldPrimary(awsFence),
          (r) => `${primary} cut off: ${r.detail}`,
        )
        .then(
          () => true,
          () => false,
        )
    : (run.skip('fence-aws', 'no awsFence in the inventory'), false);
  if (isolated) {
    fence.complete = true;
    return;
  }
  await notifyPeople(
    plan,
    acts,
    `APPROVAL NEEDED: unattended failover of ${svc.name} stopped before promotion`,
    `${primary} could not be fenced (${fence.mysql.detail}; ${fence.vip})` +
      `${awsFence ? ', nor cut off through the AWS API' : ''}: nothing promoted. ` +
      'Approve the "unfenced" step with acknowledgeUnfenced once the old primary is known dead or cut off, or abort.',
    'unfenced',
  ).catch(() => {
    run.notes.push('the unfenced-gate notification could not be sent');
  });
}

/**
 * Trust no fence that was not just re-read: right before promotion the old primary (when reachable) must still be
 * read-only with nothing committed past the fence. If not, a gate: fence it again (and catch up) or abort.
 */
export async function reverifyFence(
  f: Failover,
  { db, server }: PromotionTarget,
  fence: Fence,
  gate: Approved,
  catchUpTo: ((gtids: string | null) => Promise<unknown>) | null,
): Promise<void> {
  const { run, plan, svc, acts } = f;
  const check = await run.step(
    'verify-fence',
    () => acts.reads.verifyFence({ server: db.primary, finalGtids: fence.mysql.finalGtids }),
    (c) => c.detail,
  );
  if (check.holds) return;
  await run.gate('fence-lost', {
    needed: gateApprovals(svc),
    timeoutMs: gate.timeoutMs,
    question:
      `${check.detail}: ${server} is NOT promoted. Approve to fence ${db.primary} again` +
      `${catchUpTo ? ` and let ${server} catch up` : ''} before promoting, or abort (${db.primary} stays the primary)`,
    onReminder: () =>
      notifyPeople(plan, acts, `APPROVAL NEEDED: ${svc.name} fence lost`, check.detail, 'fence-lost-reminder'),
  });
  const again = await run.step(
    'refence',
    () => acts.fencing.fencePrimary({ server: db.primary, heartbeatEvent: db.heartbeatEvent }),
    (r) => r.detail,
  );
  const lost = (detail: string) =>
    ApplicationFailure.create({
      type: ErrorType.FenceLost,
      message: `the fence on ${db.primary} does not hold (${detail}): not promoting ${server}`,
      nonRetryable: true,
    });
  if (!again.fenced) throw lost(again.detail);
  if (catchUpTo) await catchUpTo(again.finalGtids);
  const recheck = await run.step(
    'verify-fence-again',
    () => acts.reads.verifyFence({ server: db.primary, finalGtids: again.finalGtids }),
    (c) => c.detail,
  );
  if (!recheck.holds) throw lost(recheck.detail);
}
