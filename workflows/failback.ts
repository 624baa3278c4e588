/**
 * failback({ service })
 *
 *   assess topology → re-protect (old primary becomes a replica of the DR side, caught up)
 *   → approval gate → fence the DR primary → catch up → promote the original primary
 *   → re-protect the DR side → VIP and DNS back → notify → verify → DR compute back to standby
 *   → RDS DR read replica re-created from the primary (the promoted one deleted, final snapshot kept)
 *
 * A planned switchover: it loses nothing (RPO 0), measures its own RTO (fence to healthy),
 * and refuses to rebuild an old primary that holds transactions the DR side lacks.
 */
import { ApplicationFailure, patched, workflowInfo } from '@temporalio/workflow';
import {
  ErrorType,
  failbackInput,
  failure,
  parseInput,
  type FailbackInput,
  DrMode,
  DrOutcome,
  DrRunbook,
  DrService,
  type ServicePlan,
  type FailbackReport,
} from '../contract';
import { holdServiceLockIfPatched } from './lock';
import { approvalsByMode, gateApprovals, planFor } from './plan';
import { requireWorkflowId, RunbookRun } from './runbook';
import { runbookActivities, type RunbookActivities } from './activity-options';
import { allSteps, approvalTimeoutMs, notifyPeople, round1 } from './steps';
import { readLiveTopology } from './topology';

export async function failback(rawInput: FailbackInput): Promise<FailbackReport> {
  const input = parseInput(failbackInput, rawInput);
  requireWorkflowId('failback', input.service);
  const plan = await planFor(input.service);
  const run = new RunbookRun('failback', plan.service.name, plan.targets, plan.approvers, Date.now());
  run.requireSignedApprovals(plan);
  const acts = runbookActivities(plan, run);
  // One topology change per service at a time, the re-clone of a diverged old primary included.
  const lock = await holdServiceLockIfPatched(run, plan, acts.reads);
  try {
    return await failBackService(input, plan, run, acts);
  } finally {
    await lock?.release();
  }
}

async function failBackService(
  input: { service: string; mode: 'real' | 'drill' },
  plan: ServicePlan,
  run: RunbookRun,
  acts: RunbookActivities,
): Promise<FailbackReport> {
  const svc = plan.service;
  const db = svc.database;
  run.tag([
    { key: DrService, value: svc.name },
    { key: DrRunbook, value: 'failback' },
    { key: DrMode, value: input.mode },
  ]);
  const report = (outcome: FailbackReport['outcome']): FailbackReport => ({
    runbook: 'failback',
    service: svc.name,
    outcome,
    measured: run.measured,
    targets: plan.targets,
    steps: run.steps,
    approvals: run.approvals,
    notes: run.notes,
  });
  if (svc.strategy === 'hot') return failBackHot();
  if (!db?.replica || svc.strategy !== 'warm') {
    throw ApplicationFailure.create({
      type: ErrorType.NotConfigured,
      message: `failback needs a warm service with a database replica; ${svc.name} is ${svc.strategy}${db?.replica ? '' : ' without a replica'}`,
      nonRetryable: true,
    });
  }
  const original = db.primary;
  const dr = db.replica;

  // ------------------------------------------------------------------ 0. live roles: only a service on its DR side fails back
  if (patched('failback-live-topology')) {
    const live = await readLiveTopology(run, plan, acts);
    if (live.writable === original) {
      throw ApplicationFailure.create({
        type: ErrorType.AlreadyAtHome,
        message: `${svc.name} is at home (${live.detail}): nothing to fail back`,
        nonRetryable: true,
      });
    }
  }

  // ------------------------------------------------------------------ 1. assess
  const topology = await run.step(
    'assess',
    async () => {
      const [p, r] = await Promise.all([
        acts.reads.pingDatabase({ server: original }),
        acts.reads.pingDatabase({ server: dr }),
      ]);
      const drReplication = await acts.reads.readReplicationStatus({ server: dr });
      const inPlace = !p.readOnly && r.readOnly && drReplication.configured && drReplication.sqlRunning;
      if (!inPlace && r.readOnly) {
        throw ApplicationFailure.create({
          type: ErrorType.NotConfigured,
          message: `neither ${original} nor ${dr} is in a state failback knows (original read_only=${p.readOnly}, DR read_only=${r.readOnly})`,
          nonRetryable: true,
        });
      }
      return {
        inPlace,
        detail: inPlace
          ? `${original} is primary, ${dr} replicates: nothing to fail back`
          : `${dr} is primary; ${original} is read-only`,
      };
    },
    (t) => t.detail,
  );
  if (topology.inPlace) {
    run.phase = 'done';
    run.tag([{ key: DrOutcome, value: 'already-in-place' }]);
    return report('already-in-place');
  }

  // ------------------------------------------------------------------ 2. re-protect: the original primary replicates from DR
  // After an unplanned failover the old primary may hold transactions the DR side never got
  // (lost in the crash). It cannot simply replicate then: with approval, it is re-cloned from DR.
  const divergence = await run.step(
    'check-divergence',
    () => acts.reads.countErrantTransactions({ server: original, source: dr }),
    (d) =>
      d.errant ? `${original} holds ${d.errant} transaction(s) ${dr} lacks` : `${original} holds nothing ${dr} lacks`,
  );
  if (divergence.errant > 0) {
    await run.gate('discard-divergent', {
      needed: gateApprovals(svc, approvalsByMode(svc, input.mode)),
      timeoutMs: approvalTimeoutMs(plan.targets.rtoSeconds, Date.now()),
      question: `${original} holds ${divergence.errant} transaction(s) that never reached ${dr} (lost at the failover): discard them and re-clone ${original} from ${dr}?`,
    });
    run.startChanging();
    await run.step(
      'reclone-original',
      () =>
        acts.longWaits.recloneFromSource({
          service: svc.name,
          server: original,
          source: dr,
          heartbeatEvent: db.heartbeatEvent,
        }),
      (r) =>
        `${original} re-cloned from ${dr} (${r.databases.join(', ')}; ${Math.round(r.bytes / 1024)} KiB) and replicating`,
    );
  } else {
    await run.step(
      'reprotect-original',
      () =>
        acts.topologyChanges.rebuildAsReplica({
          service: svc.name,
          server: original,
          source: dr,
          heartbeatEvent: db.heartbeatEvent,
        }),
      (r) =>
        r.alreadyReplicating ? `${original} already replicates from ${dr}` : `${original} now replicates from ${dr}`,
    );
  }
  await run.step(
    'wait-original-caught-up',
    async () => {
      const { gtids } = await acts.reads.readGtidPosition({ server: dr });
      return acts.longWaits.waitForCatchUp({
        replica: original,
        gtids,
        heartbeatTable: db.heartbeatTable,
        timeoutSeconds: 600,
      });
    },
    (c) => `${original} applied ${c.waitedFor}`,
  );

  // ------------------------------------------------------------------ 3. gate
  await run.gate('switch-back', {
    needed: gateApprovals(svc, approvalsByMode(svc, input.mode)),
    timeoutMs: approvalTimeoutMs(plan.targets.rtoSeconds, Date.now()),
    question: `switch ${svc.name} back to ${original} (caught up with ${dr})`,
  });
  run.startChanging();
  const switchStartedAt = Date.now();

  // ------------------------------------------------------------------ 4. fence DR, catch up, promote the original
  const fence = await run.step(
    'fence-dr',
    async () => {
      const mysql = await acts.fencing.fencePrimary({ server: dr, heartbeatEvent: db.heartbeatEvent });
      if (!mysql.fenced) throw failure(ErrorType.FenceFailed, mysql.detail);
      if (svc.vip)
        await acts.topologyChanges.removeVip({
          host: svc.vip.drHost,
          address: svc.vip.address,
          device: svc.vip.device,
        });
      return mysql;
    },
    (f) => f.detail,
  );
  await run.step(
    'catch-up',
    () =>
      acts.longWaits.waitForCatchUp({
        replica: original,
        gtids: fence.finalGtids,
        heartbeatTable: db.heartbeatTable,
        timeoutSeconds: 300,
      }),
    (c) => `${original} applied ${c.waitedFor}: nothing lost`,
  );
  run.measured.rpoSeconds = 0;
  await run.step(
    'promote-original',
    () => acts.topologyChanges.promoteReplica({ server: original, heartbeatEvent: db.heartbeatEvent }),
    (p) => `${original} primary at ${p.gtids}`,
  );
  // ------------------------------------------------------------------ 5. re-protect DR and bring traffic back, together
  const vip = svc.vip;
  const dns = svc.dns;
  await allSteps([
    run.step(
      'reprotect-dr',
      () =>
        acts.topologyChanges.rebuildAsReplica({
          service: svc.name,
          server: dr,
          source: original,
          heartbeatEvent: db.heartbeatEvent,
        }),
      () => `${dr} replicates from ${original}`,
    ),
    vip
      ? run.step(
          'move-vip-back',
          () => acts.topologyChanges.addVip({ host: vip.primaryHost, address: vip.address, device: vip.device }),
          (r) => `${vip.address} ${r.added ? 'added to' : 'already on'} ${vip.primaryHost}`,
        )
      : null,
    dns
      ? run.step(
          'switch-dns-back',
          () =>
            acts.longWaits.switchDnsRecord({
              zone: dns.hostedZone,
              zoneId: dns.hostedZoneId,
              name: dns.record,
              type: dns.type,
              ttl: dns.ttl,
              value: dns.primaryValue,
            }),
          (r) => `${r.name} → ${r.value}`,
        )
      : null,
  ]);
  const key = `${workflowInfo().workflowId}/${workflowInfo().runId}`;
  if (svc.applicationWebhook) {
    await run.step(
      'notify-application',
      () =>
        // The URL (a secret: it carries a token) is resolved by the activity from the service's name.
        acts.notifications.callApplicationWebhook({
          service: svc.name,
          primary: { server: original, ...plan.endpoints[original] },
          idempotencyKey: `${key}/app`,
        }),
      (r) => `${original} posted to the application webhook: HTTP ${r.status}`,
    );
  }
  let recoveredAt = Date.now();
  if (svc.health.httpUrl) {
    const url = svc.health.httpUrl;
    const healthy = await run.step(
      'verify-health',
      () => acts.longWaits.waitUntilHealthy({ url, timeoutSeconds: 300 }),
      (h) => `${url}: HTTP ${h.status}`,
    );
    recoveredAt = healthy.at;
  }
  await run.step(
    'verify-writes',
    () => acts.reads.verifyWritable({ server: original, heartbeatTable: db.heartbeatTable }),
    (w) => `${w.server} accepted a write`,
  );
  run.measured.rtoSeconds = round1((recoveredAt - switchStartedAt) / 1000);

  // ------------------------------------------------------------------ 6. DR back to warm standby
  const compute = svc.drCompute;
  if (compute) {
    await run.step(
      'stop-dr-compute',
      () => acts.longWaits.stopDrInstances({ region: compute.region, tags: compute.tags }),
      (r) => `${r.stopped.length} stopped`,
    );
  }
  const rds = svc.rds;
  const rdsDr = rds?.drReplica;
  if (rds && rdsDr && patched('failback-recreate-rds-replica')) {
    // RDS cannot demote the instance the failover promoted: it is replaced by a new read replica of the primary.
    await run.step(
      'reprotect-rds',
      () =>
        acts.longWaits.recreateRdsReplica({
          region: rdsDr.region,
          instance: rdsDr.instance,
          source: { region: rds.region, instance: rds.instance },
        }),
      (r) =>
        r.recreated
          ? `${r.instance} re-created as a read replica of ${rds.instance}` +
            (r.finalSnapshot ? ` (the promoted instance's data: final snapshot ${r.finalSnapshot})` : '')
          : `${r.instance} already replicates from ${rds.instance}`,
    );
  } else if (rds && rdsDr) {
    run.notes.push(
      `RDS ${rdsDr.instance} stays standalone: re-create the cross-region read replica of ${rds.instance} by hand (RDS cannot demote a promoted instance)`,
    );
  }
  await run.step(
    'notify-people',
    () =>
      notifyPeople(
        plan,
        acts,
        `${svc.name} failed back to ${original}`,
        `RTO ${run.measured.rtoSeconds} s, RPO 0 s`,
        'failed-back',
      ),
    () => plan.notificationTargets.join(', '),
  );
  run.phase = 'done';
  run.tag([{ key: DrOutcome, value: 'completed' }]);
  return report('completed');

  /** Hot: both sides serve; failing back is pointing DNS at the primary side again, with the same gate. */
  async function failBackHot(): Promise<FailbackReport> {
    const dnsRecord = svc.dns;
    if (!dnsRecord) {
      throw ApplicationFailure.create({
        type: ErrorType.NotConfigured,
        message: `${svc.name} is hot but has no DNS record to switch back`,
        nonRetryable: true,
      });
    }
    await run.gate('switch-back', {
      needed: gateApprovals(svc, approvalsByMode(svc, input.mode)),
      timeoutMs: approvalTimeoutMs(plan.targets.rtoSeconds, Date.now()),
      question: `point ${dnsRecord.record} back at ${dnsRecord.primaryValue}`,
    });
    run.startChanging();
    const startedAt = Date.now();
    await run.step(
      'switch-dns-back',
      () =>
        acts.longWaits.switchDnsRecord({
          zone: dnsRecord.hostedZone,
          zoneId: dnsRecord.hostedZoneId,
          name: dnsRecord.record,
          type: dnsRecord.type,
          ttl: dnsRecord.ttl,
          value: dnsRecord.primaryValue,
        }),
      (r) => `${r.name} → ${r.value}`,
    );
    let recoveredAt = Date.now();
    if (svc.health.httpUrl) {
      const url = svc.health.httpUrl;
      recoveredAt = (
        await run.step(
          'verify-health',
          () => acts.longWaits.waitUntilHealthy({ url, timeoutSeconds: 300 }),
          (h) => `${url}: HTTP ${h.status}`,
        )
      ).at;
    }
    run.measured.rtoSeconds = round1((recoveredAt - startedAt) / 1000);
    run.measured.rpoSeconds = 0;
    run.phase = 'done';
    run.tag([{ key: DrOutcome, value: 'completed' }]);
    return report('completed');
  }
}
