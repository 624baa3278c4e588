/**
 * failover({ service, mode: 'real' | 'drill', reason, dryRun?, incidentStartedAt?, trigger? })
 *
 *   assess → approval gate → fence the old primary → catch up → promote
 *   → RDS, DR compute, VIP, DNS (together) → notify → verify → report measured RTO and RPO
 *
 * Strategy shapes the steps: `hot` skips fence/catch-up/promote (both sides serve: shift
 * DNS, verify); `warm` runs them all; `cold` (no standby) restores the newest verified
 * backup into the DR server instead of catching up, then goes on as warm.
 * Runs as workflow id `failover-<service>`, so one failover per service at a time.
 */
import { ApplicationFailure, executeChild, patched, sleep, workflowInfo } from '@temporalio/workflow';
import { runbookActivities } from '../activity-options';
import { Compensations } from '../compensations';
import {
  ErrorType,
  failoverInput,
  parseInput,
  type FailoverInput,
  type FailoverReport,
  workflowIdFor,
} from '../../contract';
import { holdServiceLockIfPatched } from '../lock';
import { DrMode, DrOutcome, DrRunbook, DrService } from '../../contract';
import { planFor } from '../plan';
import { readiness } from '../readiness';
import { RunbookRun } from '../runbook';
import { requireWorkflowId, startedByMonitor } from '../workflow-ids';
import { notifyPeople, notifyStopped } from '../steps';
import { approve } from './approve';
import { assess, refuseIfFailedOver } from './assess';
import { reportOf, type Failover } from './context';
import { cutOver, verifySingleWriter } from './cut-over';
import { fenceOldPrimary } from './fence';
import { notifyAndVerify, report } from './finish';
import { catchUpAndPromote, promotionTarget, restoreAndOpen, skipDatabaseSwitch } from './promote';

export async function failover(rawInput: FailoverInput): Promise<FailoverReport> {
  const f = await begin(parseInput(failoverInput, rawInput));
  // One topology change per service at a time (a dry run changes nothing: it takes no lock).
  const lock = f.input.dryRun ? null : await holdServiceLockIfPatched(f.run, f.plan, f.acts.reads);
  if (!f.input.dryRun) void watchRtoBudget(f);
  try {
    if (f.input.dryRun) return await dryRun(f);
    await refuseIfFailedOver(f);
    const assessment = await assess(f);
    const gate = await approve(f, assessment);
    const target = promotionTarget(f);
    let newPrimary: string | null = null;
    if (target) {
      const fence = await fenceOldPrimary(f, target, gate);
      newPrimary = target.cold
        ? await restoreAndOpen(f, target, fence, assessment, gate)
        : await catchUpAndPromote(f, target, fence, gate);
    } else skipDatabaseSwitch(f);
    await cutOver(f, newPrimary);
    await verifySingleWriter(f, newPrimary);
    const recoveredAt = await notifyAndVerify(f, newPrimary);
    return await report(f, recoveredAt, newPrimary);
  } catch (err) {
    await stop(f, err);
    throw err;
  } finally {
    await lock?.release();
  }
}

/** Input checks, the service's plan, the run's record and search attributes: nothing changes yet. */
async function begin(input: Failover['input']): Promise<Failover> {
  requireWorkflowId('failover', input.service);
  // Unattended is the parent's to grant, never the input's: any client can type trigger 'monitor'.
  const parentDecides = patched('failover-unattended-from-parent');
  const fromMonitor = startedByMonitor(input.service);
  if (parentDecides && input.trigger === 'monitor' && !fromMonitor) {
    throw ApplicationFailure.create({
      type: ErrorType.InvalidInput,
      message:
        "invalid input: trigger: 'monitor' is for a failover the service's monitor " +
        `(workflow id "${workflowIdFor('monitor', input.service)}") starts; ` +
        `this run was started by ${startedBy()}: leave trigger out`,
      nonRetryable: true,
      details: [['trigger: reserved for the monitor']],
    });
  }
  const plan = await planFor(input.service);
  const svc = plan.service;
  const incidentStartedAt = input.incidentStartedAt ? Date.parse(input.incidentStartedAt) : Date.now();
  const run = new RunbookRun('failover', svc.name, plan.targets, plan.approvers, incidentStartedAt);
  run.requireSignedApprovals(plan);
  run.tag([
    { key: DrService, value: svc.name },
    { key: DrRunbook, value: 'failover' },
    { key: DrMode, value: input.dryRun ? 'dry-run' : input.mode },
  ]);
  run.describe({ reason: input.reason });
  const acts = runbookActivities(plan, run);
  const claimedByMonitor = parentDecides ? fromMonitor : input.trigger === 'monitor';
  const compensations = new Compensations();
  return {
    ...{ input, plan, svc, run, acts, incidentStartedAt, claimedByMonitor, compensations },
    fencing: null,
    clock: { finished: false },
  };
}

/** A dry run: every read-only check a failover depends on (the readiness runbook, as a child), nothing changed. */
async function dryRun(f: Failover): Promise<FailoverReport> {
  const { run, svc } = f;
  const checks = await run.step(
    'readiness',
    () =>
      executeChild(readiness, {
        args: [{ service: svc.name }],
        workflowId: `${workflowInfo().workflowId}-readiness`,
        staticSummary: `readiness ${svc.name}: dry run of ${workflowIdFor('failover', svc.name)}`,
      }),
    (r) => `${r.checks.filter((c) => c.ok).length}/${r.checks.length} checks passed`,
  );
  run.phase = 'done (dry run)';
  run.tag([{ key: DrOutcome, value: checks.ready ? 'ready' : 'not-ready' }]);
  return reportOf(f, 'dry-run', { readiness: checks });
}

/**
 * Stopped: undo what the compensations hold (a fence whose promotion did not finish: the old primary back, so a
 * failed switchover is not an outage), then people hear which step failed and why. Nothing is left unreported.
 */
async function stop(f: Failover, err: unknown): Promise<void> {
  const { run, plan, acts } = f;
  f.clock.finished = true;
  if (f.compensations.pending) {
    if (patched('fence-undo')) await f.compensations.unwind();
    else await unfenceBeforeFenceUndo(f);
  }
  await notifyStopped(run, plan, acts, err);
}

/** Runs recorded before 'fence-undo' undid a fence only when it had made the old primary read-only. */
async function unfenceBeforeFenceUndo(f: Failover): Promise<void> {
  const { run, svc, acts } = f;
  if (!f.fencing?.result?.fenced || !svc.database) return;
  const { primary, heartbeatEvent } = svc.database;
  await run
    .step(
      'unfence-old-primary',
      async () => {
        const r = await acts.topologyChanges.unfencePrimary({ server: primary, heartbeatEvent });
        if (svc.vip)
          await acts.topologyChanges.addVip({
            host: svc.vip.primaryHost,
            address: svc.vip.address,
            device: svc.vip.device,
          });
        return r;
      },
      (r) => `${r.server} writable again${svc.vip ? ', VIP back' : ''}`,
    )
    .catch(() => run.notes.push(`COULD NOT UNFENCE ${primary}: the service may have no writable primary`));
}

function startedBy(): string {
  const parent = workflowInfo().parent;
  return parent ? `workflow "${parent.workflowId}" (namespace ${parent.namespace})` : 'a client, not a workflow';
}

/** The RTO clock: a breached budget is noted and notified when it happens, never hidden. */
async function watchRtoBudget(f: Failover): Promise<void> {
  const { run, plan } = f;
  const leftMs = f.incidentStartedAt + plan.targets.rtoSeconds * 1000 - Date.now();
  if (leftMs > 0) await sleep(leftMs);
  if (f.clock.finished) return;
  run.notes.push(
    `RTO budget of ${plan.targets.rtoSeconds} s breached at ${new Date(Date.now()).toISOString()} ` +
      `(phase: ${run.phase})`,
  );
  await notifyPeople(
    plan,
    f.acts,
    `RTO BREACHED: ${plan.service.name} failover still running`,
    `The ${plan.targets.rtoSeconds} s RTO target has passed; phase: ${run.phase}`,
    'rto-breached',
  ).catch(() => run.notes.push('the RTO breach notification could not be sent'));
}
