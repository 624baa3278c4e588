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
import {
  type ServicePlan,
  ErrorType,
  failoverInput,
  parseInput,
  type Approval,
  type FailoverInput,
  DrMode,
  DrOutcome,
  DrRunbook,
  DrService,
  type FailoverReport,
} from '../contract';
import { approvalsByMode, gateApprovals, planFor, reasonOf } from './plan';
import { runbookActivities, type RunbookActivities } from './activity-options';
import { allSteps, approvalTimeoutMs, notifyPeople, round1 } from './steps';
import { recordMeasured } from './metrics';
import { holdServiceLockIfPatched } from './lock';
import { readiness } from './readiness';
import { requireWorkflowId, RunbookRun, startedByMonitor } from './runbook';
import { readLiveTopology } from './topology';

export async function failover(rawInput: FailoverInput): Promise<FailoverReport> {
  const input = parseInput(failoverInput, rawInput);
  requireWorkflowId('failover', input.service);
  // Unattended is the parent's to grant, never the input's: any client can type trigger 'monitor'.
  const parentDecides = patched('failover-unattended-from-parent');
  const fromMonitor = startedByMonitor(input.service);
  if (parentDecides && input.trigger === 'monitor' && !fromMonitor) {
    throw ApplicationFailure.create({
      type: ErrorType.InvalidInput,
      message: `invalid input: trigger: 'monitor' is for a failover the service's monitor (workflow id "monitor-${input.service}") starts; this run was started by ${startedBy()}: leave trigger out`,
      nonRetryable: true,
      details: [['trigger: reserved for the monitor']],
    });
  }
  const plan = await planFor(input.service);
  const svc = plan.service;
  const startedAt = Date.now();
  const incidentStartedAt = input.incidentStartedAt ? Date.parse(input.incidentStartedAt) : startedAt;
  const run = new RunbookRun('failover', svc.name, plan.targets, plan.approvers, incidentStartedAt);
  run.requireSignedApprovals(plan);
  run.tag([
    { key: DrService, value: svc.name },
    { key: DrRunbook, value: 'failover' },
    { key: DrMode, value: input.dryRun ? 'dry-run' : input.mode },
  ]);
  run.describe({ reason: input.reason });
  const acts = runbookActivities(plan, run);
  // One topology change per service at a time (a dry run changes nothing: it takes no lock).
  const lock = input.dryRun ? null : await holdServiceLockIfPatched(run, plan, acts.reads);
  // The RTO clock: a breached budget is noted and notified when it happens, never hidden.
  const clock = { finished: false };
  if (!input.dryRun) void watchRtoBudget(run, plan, acts, incidentStartedAt, clock);
  const report = (outcome: FailoverReport['outcome'], extra: Partial<FailoverReport> = {}): FailoverReport => ({
    runbook: 'failover',
    service: svc.name,
    mode: input.mode,
    strategy: svc.strategy,
    outcome,
    reason: input.reason,
    incidentStartedAt: new Date(incidentStartedAt).toISOString(),
    recoveredAt: null,
    newPrimary: null,
    measured: run.measured,
    targets: plan.targets,
    rtoMet: run.measured.rtoSeconds === null ? null : run.measured.rtoSeconds <= plan.targets.rtoSeconds,
    rpoMet: run.measured.rpoSeconds === null ? null : run.measured.rpoSeconds <= plan.targets.rpoSeconds,
    steps: run.steps,
    approvals: run.approvals,
    notes: run.notes,
    ...extra,
  });

  // What the catch block must undo. Each flag is set before its step starts, not after it returns, so a step that
  // fails part-way (VIP removed, read_only still OFF; replication stopped, promotion not finished) is undone too.
  const compensation = {
    /** Runs recorded before 'fence-undo': the old primary was fenced and nothing was promoted. */
    fencedButNotPromoted: false,
    fenceStarted: false,
    /** The fence step's result (null: it failed, so any part of it may have happened). */
    fence: null as { mysql: { reachable: boolean } } | null,
    /** The server whose promotion began (it may have taken writes), until promotion is done. */
    promoting: null as string | null,
    promoted: false,
  };
  try {
    // ---------------------------------------------------------------- dry run: read-only readiness
    if (input.dryRun) {
      const checks = await run.step(
        'readiness',
        () =>
          executeChild(readiness, {
            args: [{ service: svc.name }],
            workflowId: `${workflowInfo().workflowId}-readiness`,
            staticSummary: `readiness ${svc.name}: dry run of failover-${svc.name}`,
          }),
        (r) => `${r.checks.filter((c) => c.ok).length}/${r.checks.length} checks passed`,
      );
      run.phase = 'done (dry run)';
      run.tag([{ key: DrOutcome, value: checks.ready ? 'ready' : 'not-ready' }]);
      return report('dry-run', { readiness: checks });
    }
    // ---------------------------------------------------------------- 0. live roles: a service already on its DR side fails back
    if (svc.database && patched('failover-live-topology')) {
      const live = await readLiveTopology(run, plan, acts);
      if (live.state === 'failed-over') {
        throw ApplicationFailure.create({
          type: ErrorType.AlreadyFailedOver,
          message: `${svc.name} is already failed over (${live.detail}): run failback (drctl failback ${svc.name}), not another failover`,
          nonRetryable: true,
        });
      }
    }
    // ---------------------------------------------------------------- 1. assess
    const db = svc.database;
    /** Cold: no standby. The data loss is everything since the newest verified backup's snapshot. */
    const assessCold = async (primary: string, drServer: string) => {
      const picked = await acts.reads.pickNewestVerifiedBackup({ service: svc.name });
      const manifest = await acts.reads.fetchManifest({
        service: svc.name,
        backupId: picked.backupId,
        destination: picked.destination,
      });
      const primaryReachable = await acts.reads.pingDatabase({ server: primary }).then(
        () => true,
        () => false,
      );
      const expectedRpoSeconds = Math.max(0, (incidentStartedAt - Date.parse(manifest.startedAt)) / 1000);
      return {
        primaryReachable,
        expectedRpoSeconds,
        backup: { backupId: picked.backupId, destination: picked.destination, sha256: manifest.object.sha256 },
        detail: `cold: restore backup ${picked.backupId} (taken ${manifest.startedAt}, ${expectedRpoSeconds.toFixed(0)} s before the incident) into ${drServer}; primary ${primaryReachable ? 'reachable' : 'UNREACHABLE'}`,
      };
    };
    const assessment = await run.step(
      'assess',
      async () => {
        if (svc.strategy === 'cold' && db?.drServer) return assessCold(db.primary, db.drServer);
        if (!db?.replica)
          return { primaryReachable: false, expectedRpoSeconds: 0, detail: 'no database replica: DNS-only failover' };
        const measure = () =>
          acts.reads.measureReplicaLag({
            primary: db.primary,
            replica: db.replica!,
            heartbeatTable: db.heartbeatTable,
          });
        let lag = await measure();
        // A real failover takes precedence over an isolated drill, whose DR copy pauses the replica's SQL
        // thread: the drill is cancelled and the thread resumed, then the replica is measured again.
        if (!lag.sqlRunning && input.mode === 'real' && patched('failover-over-isolated-drill')) {
          const reason = `real failover ${workflowInfo().workflowId} takes precedence: ${input.reason}`;
          const drill = await acts.reads.cancelIsolatedDrill({ service: svc.name, reason });
          if (drill) {
            await acts.reads.resumeReplicaSqlThread({ replica: db.replica });
            run.notes.push(
              `isolated drill ${drill} cancelled and ${db.replica}'s SQL thread resumed: a real failover comes first`,
            );
            lag = await measure();
          }
        }
        // A replica that cannot apply (SQL thread stopped), or cannot receive while the primary is up,
        // is never promoted: refuse here, before anything has changed.
        if (!lag.sqlRunning || (lag.primaryReachable && !lag.ioRunning)) {
          throw ApplicationFailure.create({
            type: ErrorType.ReplicationBroken,
            message: `${db.replica} is not replicating (IO thread ${lag.ioRunning ? 'running' : 'stopped'}, SQL thread ${lag.sqlRunning ? 'running' : 'stopped'}): not a promotion candidate`,
            nonRetryable: true,
          });
        }
        // With the primary gone, everything after the replica's newest heartbeat up to the incident is at risk.
        const expectedRpoSeconds = lag.primaryReachable
          ? (lag.heartbeatLagSeconds ?? Number.POSITIVE_INFINITY)
          : lag.replicaHeartbeatAt === null
            ? Number.POSITIVE_INFINITY
            : Math.max(0, (incidentStartedAt - lag.replicaHeartbeatAt) / 1000);
        return {
          primaryReachable: lag.primaryReachable,
          expectedRpoSeconds,
          detail: `primary ${lag.primaryReachable ? 'reachable' : 'UNREACHABLE'}; replica ${lag.transactionsBehind ?? '?'} transactions / ${expectedRpoSeconds.toFixed(1)} s behind; IO ${lag.ioRunning ? 'on' : 'off'}, SQL ${lag.sqlRunning ? 'on' : 'off'}`,
        };
      },
      (a) => a.detail,
    );
    const overRpo = assessment.expectedRpoSeconds > plan.targets.rpoSeconds;

    // ---------------------------------------------------------------- 2. approval gate
    const gateTimeoutMs = approvalTimeoutMs(plan.targets.rtoSeconds, incidentStartedAt);
    // The inventory may let the monitor fail a service over unattended, but never past its RPO.
    const claimedByMonitor = parentDecides ? fromMonitor : input.trigger === 'monitor';
    const unattended = claimedByMonitor && svc.autoFailover && !overRpo;
    // Since 'unattended-fence': the inventory approves the failover, never an unfenced old primary.
    const approvals: Approval[] = unattended
      ? autoApproval(run, !patched('unattended-fence'))
      : await run.gate('promote', {
          needed: gateApprovals(svc, approvalsByMode(svc, input.mode)),
          requireOverrideRpo: overRpo,
          requireUnfencedAck: Boolean(db) && svc.strategy !== 'hot' && !assessment.primaryReachable,
          timeoutMs: gateTimeoutMs,
          question: `fail ${svc.name} over to the DR side (${input.mode}): ${assessment.detail}${overRpo ? ` — expected data loss over the ${plan.targets.rpoSeconds} s RPO: needs overrideRpo` : ''}`,
          onReminder: () =>
            notifyPeople(
              plan,
              acts,
              `APPROVAL NEEDED: failover of ${svc.name}`,
              `Still waiting for approval: ${assessment.detail}`,
              'reminder',
            ),
        });
    run.startChanging();

    let newPrimary: string | null = null;
    const coldTarget = svc.strategy === 'cold' ? db?.drServer : undefined;
    if (db && ((svc.strategy === 'warm' && db.replica) || coldTarget)) {
      const replica = coldTarget ?? db.replica!;
      // -------------------------------------------------------------- 3. fence the old primary
      compensation.fenceStarted = true;
      const fence = await run.step(
        'fence',
        async () => {
          // Both fences at once: the database refuses writes, and the address stops reaching it.
          const vipHost = svc.vip?.primaryHost;
          const [mysql, vip] = await Promise.all([
            acts.fencing.fencePrimary({ server: db.primary, heartbeatEvent: db.heartbeatEvent }),
            svc.vip
              ? acts.fencing
                  .removeVip({ host: svc.vip.primaryHost, address: svc.vip.address, device: svc.vip.device })
                  .then((r) => (r.removed ? `VIP removed from ${vipHost}` : `VIP was not on ${vipHost}`))
                  .catch((err: unknown) => `VIP NOT removed from ${vipHost}: ${reasonOf(err)}`)
              : Promise.resolve('no VIP'),
          ]);
          return { mysql, vip, complete: mysql.fenced && !vip.includes('NOT removed') };
        },
        (f) => `${f.mysql.detail}; ${f.vip}`,
      );
      compensation.fence = fence;
      compensation.fencedButNotPromoted = fence.mysql.fenced;
      // Unattended and not fenced: cut the old primary off through the AWS API (when the inventory
      // says how), else a human decides at the gate below; nobody is there to acknowledge the risk.
      const awsFence = svc.awsFence;
      if (!fence.complete && unattended && !approvals.some((a) => a.acknowledgeUnfenced)) {
        const isolated = awsFence
          ? await run
              .step(
                'fence-aws',
                () => acts.topologyChanges.isolateOldPrimary(awsFence),
                (r) => `${db.primary} cut off: ${r.detail}`,
              )
              .then(
                () => true,
                () => false,
              )
          : (run.skip('fence-aws', 'no awsFence in the inventory'), false);
        if (isolated) fence.complete = true;
        else
          await notifyPeople(
            plan,
            acts,
            `APPROVAL NEEDED: unattended failover of ${svc.name} stopped before promotion`,
            `${db.primary} could not be fenced (${fence.mysql.detail}; ${fence.vip})${awsFence ? ', nor cut off through the AWS API' : ''}: nothing promoted. Approve the "unfenced" step with acknowledgeUnfenced once the old primary is known dead or cut off, or abort.`,
            'unfenced',
          ).catch(() => {
            run.notes.push('the unfenced-gate notification could not be sent');
          });
      }
      if (!fence.complete && !approvals.some((a) => a.acknowledgeUnfenced)) {
        await run.gate('unfenced', {
          needed: gateApprovals(svc, 1),
          requireUnfencedAck: true,
          timeoutMs: gateTimeoutMs,
          question: `the old primary could not be fully fenced (${fence.mysql.detail}; ${fence.vip}): promote anyway? (split-brain risk: acknowledgeUnfenced)`,
        });
      }

      /**
       * Trust no fence that was not just re-read: right before promotion the old primary (when reachable) must still
       * be read-only with nothing committed past the fence. If not, a gate: fence it again (and catch up) or abort.
       */
      const reverifyFence = async (catchUpTo: ((gtids: string | null) => Promise<unknown>) | null) => {
        const check = await run.step(
          'verify-fence',
          () => acts.reads.verifyFence({ server: db.primary, finalGtids: fence.mysql.finalGtids }),
          (c) => c.detail,
        );
        if (check.holds) return;
        await run.gate('fence-lost', {
          needed: gateApprovals(svc, 1),
          timeoutMs: gateTimeoutMs,
          question: `${check.detail}: ${replica} is NOT promoted. Approve to fence ${db.primary} again${catchUpTo ? ` and let ${replica} catch up` : ''} before promoting, or abort (${db.primary} stays the primary)`,
          onReminder: () =>
            notifyPeople(plan, acts, `APPROVAL NEEDED: ${svc.name} fence lost`, check.detail, 'fence-lost-reminder'),
        });
        const again = await run.step(
          'refence',
          () => acts.fencing.fencePrimary({ server: db.primary, heartbeatEvent: db.heartbeatEvent }),
          (f) => f.detail,
        );
        const lost = (detail: string) =>
          ApplicationFailure.create({
            type: ErrorType.FenceLost,
            message: `the fence on ${db.primary} does not hold (${detail}): not promoting ${replica}`,
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
      };

      if (coldTarget) {
        // -------------------------------------------------------------- 4–5 (cold). restore the newest verified backup, open it
        const backup = 'backup' in assessment ? assessment.backup : undefined;
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
            `backup ${backup.backupId} (${r.databases.join(', ')}) restored into ${r.server} in ${r.seconds.toFixed(1)} s, SHA-256 checked`,
        );
        run.measured.rpoSeconds = round1(assessment.expectedRpoSeconds);
        if (patched('fence-reverified')) await reverifyFence(null);
        compensation.promoting = coldTarget;
        await run.step(
          'promote',
          () => acts.topologyChanges.unfencePrimary({ server: coldTarget, heartbeatEvent: db.heartbeatEvent }),
          () => `${coldTarget} writable`,
        );
        compensation.fencedButNotPromoted = false;
        compensation.promoted = true;
        newPrimary = coldTarget;
      } else {
        // -------------------------------------------------------------- 4. catch up (planned: nothing lost)
        const caughtUp = await run.step(
          'catch-up',
          () =>
            acts.longWaits.waitForCatchUp({
              replica,
              gtids: fence.mysql.finalGtids,
              heartbeatTable: db.heartbeatTable,
              timeoutSeconds: Math.max(30, Math.min(600, plan.targets.rtoSeconds / 3)),
            }),
          (c) => `${replica} applied ${c.waitedFor || 'everything it received'}`,
        );
        run.measured.rpoSeconds = fence.mysql.fenced
          ? 0 // every transaction the fenced primary committed is on the replica
          : caughtUp.replicaHeartbeatAt === null
            ? null
            : round1(Math.max(0, (incidentStartedAt - caughtUp.replicaHeartbeatAt) / 1000));
        if (
          (run.measured.rpoSeconds ?? Number.POSITIVE_INFINITY) > plan.targets.rpoSeconds &&
          !approvals.some((a) => a.overrideRpo)
        ) {
          throw ApplicationFailure.create({
            type: ErrorType.ReplicaLagTooHigh,
            message: `data loss of ${run.measured.rpoSeconds ?? 'unknown'} s exceeds the ${plan.targets.rpoSeconds} s RPO and no approval overrode it: not promoting ${replica}`,
            nonRetryable: true,
          });
        }

        // -------------------------------------------------------------- 5. re-read the fence, promote
        if (patched('fence-reverified')) {
          await reverifyFence((gtids) =>
            run.step(
              'catch-up-again',
              () =>
                acts.longWaits.waitForCatchUp({
                  replica,
                  gtids,
                  heartbeatTable: db.heartbeatTable,
                  timeoutSeconds: Math.max(30, Math.min(600, plan.targets.rtoSeconds / 3)),
                }),
              (c) => `${replica} applied ${c.waitedFor || 'everything it received'}`,
            ),
          );
        }
        compensation.promoting = replica;
        await run.step(
          'promote',
          () => acts.topologyChanges.promoteReplica({ server: replica, heartbeatEvent: db.heartbeatEvent }),
          (p) => (p.alreadyPrimary ? `${replica} was already primary` : `${replica} promoted at ${p.gtids}`),
        );
        compensation.fencedButNotPromoted = false;
        compensation.promoted = true;
        newPrimary = replica;
      }
    } else {
      run.skip('fence', `${svc.strategy} service: both sides serve, nothing to fence`);
      run.skip('catch-up', `${svc.strategy} service`);
      run.skip('promote', `${svc.strategy} service`);
      run.measured.rpoSeconds = 0;
    }
    // ---------------------------------------------------------------- 6–8. RDS, DR compute, VIP, DNS
    // Independent of one another once the new primary is writable: they run together, each its
    // own step, and all of them finish (or fail) before the run goes on or reports.
    const rdsReplica = svc.rds?.drReplica;
    const compute = svc.drCompute;
    const vip = svc.vip;
    const dns = svc.dns;
    await allSteps([
      rdsReplica && svc.strategy === 'warm'
        ? run.step(
            'promote-rds',
            () => acts.longWaits.promoteRdsReplica({ region: rdsReplica.region, instance: rdsReplica.instance }),
            (r) =>
              r.alreadyPromoted ? `${r.instance} was already standalone` : `${r.instance} promoted and available`,
          )
        : null,
      compute
        ? run.step(
            'start-dr-compute',
            () => acts.longWaits.startDrInstances({ region: compute.region, tags: compute.tags }),
            (r) => `${r.running.length} running (${r.started.length} started)`,
          )
        : run.skip('start-dr-compute', 'no DR compute in the inventory'),
      vip && newPrimary
        ? run.step(
            'move-vip',
            () => acts.topologyChanges.addVip({ host: vip.drHost, address: vip.address, device: vip.device }),
            (r) => `${vip.address} ${r.added ? 'added to' : 'already on'} ${vip.drHost} ${vip.device}`,
          )
        : run.skip('move-vip', vip ? 'no promotion' : 'no VIP in the inventory'),
      dns
        ? run.step(
            'switch-dns',
            () =>
              acts.longWaits.switchDnsRecord({
                zone: dns.hostedZone,
                zoneId: dns.hostedZoneId,
                name: dns.record,
                type: dns.type,
                ttl: dns.ttl,
                value: dns.drValue,
              }),
            (r) => `${r.name} → ${r.value} (${r.changed ? `was ${r.previous.join(',')}` : 'already set'}), INSYNC`,
          )
        : run.skip('switch-dns', 'no DNS record in the inventory'),
    ]);

    // ---------------------------------------------------------------- 8b. exactly one writer after cut-over
    if (newPrimary && db && patched('single-writer-verified')) {
      const promotedServer = newPrimary;
      const members = [...new Set([db.primary, db.replica, db.drServer, promotedServer])].filter(
        (m): m is string => typeof m === 'string',
      );
      await run.step(
        'verify-single-writer',
        async () => {
          const w = await acts.reads.readWritableMembers({ servers: members });
          const others = w.writable.filter((m) => m !== promotedServer);
          if (others.length > 0) {
            const detail = `${svc.name} is SPLIT after cut-over: ${w.writable.join(' and ')} all take writes (${w.detail}); fence ${others.join(', ')} and reconcile before anything else runs`;
            run.notes.push(detail);
            await notifyPeople(plan, acts, `SPLIT BRAIN: ${svc.name}`, detail, 'split').catch(() =>
              run.notes.push('the split-brain alert could not be sent'),
            );
            throw ApplicationFailure.create({ type: ErrorType.SplitBrain, message: detail, nonRetryable: true });
          }
          return w;
        },
        (w) => `one writer: ${promotedServer} (${w.detail})`,
      );
    }

    // ---------------------------------------------------------------- 9. notify the application and people
    const key = `${workflowInfo().workflowId}/${workflowInfo().runId}`;
    const webhook = svc.applicationWebhook;
    if (webhook && newPrimary) {
      const endpoint = plan.endpoints[newPrimary];
      await run.step(
        'notify-application',
        () =>
          // The URL (a secret: it carries a token) is resolved by the activity from the service's name.
          acts.notifications.callApplicationWebhook({
            service: svc.name,
            primary: { server: newPrimary, ...endpoint },
            idempotencyKey: `${key}/app`,
          }),
        (r) => `${newPrimary} posted to the application webhook: HTTP ${r.status}`,
      );
    } else run.skip('notify-application', webhook ? 'no new primary' : 'no application webhook in the inventory');
    await run.step(
      'notify-people',
      () =>
        notifyPeople(
          plan,
          acts,
          `${input.mode === 'drill' ? 'DRILL: ' : ''}${svc.name} failed over to DR`,
          `${svc.name}: ${input.reason}. New primary: ${newPrimary ?? 'DNS only'}.`,
          'failed-over',
        ),
      () => plan.notificationTargets.join(', ') || 'no targets',
    );

    // ---------------------------------------------------------------- 10. verify
    let recoveredAt: number;
    if (svc.health.httpUrl) {
      const url = svc.health.httpUrl;
      const healthy = await run.step(
        'verify-health',
        () => acts.longWaits.waitUntilHealthy({ url, timeoutSeconds: Math.max(60, plan.targets.rtoSeconds) }),
        (h) => `${url}: HTTP ${h.status}`,
      );
      recoveredAt = healthy.at;
    } else {
      recoveredAt = Date.now();
      run.skip('verify-health', 'no health URL in the inventory');
    }
    if (newPrimary && db) {
      const primary = newPrimary;
      await run.step(
        'verify-writes',
        () => acts.reads.verifyWritable({ server: primary, heartbeatTable: db.heartbeatTable }),
        (w) => `${w.server} accepted a write`,
      );
    }

    // ---------------------------------------------------------------- 11. report
    run.measured.rtoSeconds = round1((recoveredAt - incidentStartedAt) / 1000);
    if (run.measured.rtoSeconds > plan.targets.rtoSeconds) {
      run.notes.push(`RTO target breached: ${run.measured.rtoSeconds} s > ${plan.targets.rtoSeconds} s`);
    }
    clock.finished = true;
    run.phase = 'done';
    run.tag([{ key: DrOutcome, value: 'completed' }]);
    const result = report('completed', { recoveredAt: new Date(recoveredAt).toISOString(), newPrimary });
    recordMeasured('failover', svc.name, result.measured);
    await notifyPeople(
      plan,
      acts,
      `${svc.name} failover report: RTO ${result.measured.rtoSeconds} s, RPO ${result.measured.rpoSeconds} s`,
      JSON.stringify({
        measured: result.measured,
        targets: result.targets,
        rtoMet: result.rtoMet,
        rpoMet: result.rpoMet,
      }),
      'report',
    );
    return result;
  } catch (err) {
    clock.finished = true;
    // Stopped after the fence began and before a promotion finished: put the old primary back (read_only OFF,
    // heartbeat, VIP), so a failed switchover is not an outage. A server whose promotion began may have taken
    // writes: it is fenced again first, and if that cannot be done the old primary stays fenced (an outage is
    // recoverable; two writers are not).
    if (svc.database && compensation.fenceStarted && !compensation.promoted && patched('fence-undo')) {
      await undoFence(run, plan, acts, compensation);
    } else if (compensation.fencedButNotPromoted && svc.database) {
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
    run.phase = 'failed';
    run.tag([{ key: DrOutcome, value: 'failed' }]);
    // Nothing is left half-done and unreported: people hear which step failed and why.
    await notifyPeople(
      plan,
      acts,
      `FAILOVER OF ${svc.name} STOPPED`,
      `${(err as Error).message}\nsteps: ${run.steps.map((s) => `${s.name}=${s.state}`).join(', ')}`,
      'stopped',
    ).catch(() => undefined);
    throw err;
  } finally {
    await lock?.release();
  }
}

function startedBy(): string {
  const parent = workflowInfo().parent;
  return parent ? `workflow "${parent.workflowId}" (namespace ${parent.namespace})` : 'a client, not a workflow';
}

/** Compensation before promotion (see the catch block of failover): each part reported as a step or a note. */
async function undoFence(
  run: RunbookRun,
  plan: ServicePlan,
  acts: RunbookActivities,
  compensation: { fence: { mysql: { reachable: boolean } } | null; promoting: string | null },
): Promise<void> {
  const svc = plan.service;
  const { primary, heartbeatEvent } = svc.database!;
  const target = compensation.promoting;
  if (target) {
    const refenced = await run
      .step(
        'refence-target',
        () => acts.fencing.fencePrimary({ server: target, heartbeatEvent }),
        (f) => f.detail,
      )
      .catch(() => null);
    if (!refenced?.fenced) {
      run.notes.push(
        `${target} could not be fenced again after its promotion began (${refenced?.detail ?? 'the step failed'}): ${primary} is LEFT FENCED so that two servers never take writes; fence ${target} by hand, then unfence ${primary} (or finish the failover)`,
      );
      return;
    }
  }
  // A fence step that returned "unreachable" changed nothing on the server; one that failed may have changed anything.
  const mysqlTouched = compensation.fence === null || compensation.fence.mysql.reachable;
  const vip = svc.vip;
  await run
    .step(
      'unfence-old-primary',
      async () => {
        const [db, address] = await Promise.allSettled([
          mysqlTouched
            ? acts.topologyChanges.unfencePrimary({ server: primary, heartbeatEvent })
            : Promise.resolve(null),
          vip ? acts.topologyChanges.addVip({ host: vip.primaryHost, address: vip.address, device: vip.device }) : null,
        ]);
        const parts = [
          db.status === 'rejected'
            ? `${primary} NOT made writable: ${reasonOf(db.reason)}`
            : db.value
              ? `${primary} writable again`
              : `${primary} was never reached by the fence: left as it is`,
          vip ? (address.status === 'rejected' ? `VIP NOT back: ${reasonOf(address.reason)}` : 'VIP back') : null,
        ].filter(Boolean);
        if (db.status === 'rejected' || address.status === 'rejected') throw new Error(parts.join('; '));
        return parts.join(', ');
      },
      (d) => d,
    )
    .catch(() => run.notes.push(`COULD NOT UNFENCE ${primary}: the service may have no writable primary`));
  // The target is read-only again: make it a replica of the old primary once more (refused if it took writes).
  if (target && target === svc.database!.replica) {
    await run
      .step(
        'reprotect-target',
        () =>
          acts.topologyChanges.rebuildAsReplica({ service: svc.name, server: target, source: primary, heartbeatEvent }),
        (r) => `${target} replicates from ${primary}${r.alreadyReplicating ? ' (it still did)' : ''}`,
      )
      .catch(() =>
        run.notes.push(
          `${target} is read-only but NOT replicating from ${primary}: re-protect it (failback's re-clone)`,
        ),
      );
  }
}

/**
 * The inventory's autoFailover stands in for the approvers (recorded as such in the report). It
 * approves the failover, not a split-brain risk: an unfenced old primary is fenced through the AWS
 * API or left to a human (runs from before the 'unattended-fence' patch acknowledged it).
 */
function autoApproval(run: RunbookRun, acknowledgeUnfenced: boolean): Approval[] {
  const approval: Approval = {
    step: 'promote',
    approver: 'inventory:autoFailover',
    comment: 'monitor-detected incident; the inventory allows unattended failover',
    acknowledgeUnfenced,
    at: new Date(Date.now()).toISOString(),
  };
  run.approvals.push(approval);
  run.skip('approve-promote', 'unattended: autoFailover in the inventory');
  return [approval];
}

async function watchRtoBudget(
  run: RunbookRun,
  plan: ServicePlan,
  acts: RunbookActivities,
  clockStart: number,
  clock: { finished: boolean },
): Promise<void> {
  const leftMs = clockStart + plan.targets.rtoSeconds * 1000 - Date.now();
  if (leftMs > 0) await sleep(leftMs);
  if (clock.finished) return;
  run.notes.push(
    `RTO budget of ${plan.targets.rtoSeconds} s breached at ${new Date(Date.now()).toISOString()} (phase: ${run.phase})`,
  );
  await notifyPeople(
    plan,
    acts,
    `RTO BREACHED: ${plan.service.name} failover still running`,
    `The ${plan.targets.rtoSeconds} s RTO target has passed; phase: ${run.phase}`,
    'rto-breached',
  ).catch(() => run.notes.push('the RTO breach notification could not be sent'));
}
