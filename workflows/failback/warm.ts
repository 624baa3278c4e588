/** The steps of a warm service's failback, in the order the runbook takes them (index.ts). */
import { ApplicationFailure, patched, workflowInfo } from '@temporalio/workflow';
import type { ServicePlan } from '../../contract';
import { pushRefence, pushUnfence } from '../compensations';
import { ErrorType, failure } from '../../contract';
import { dnsSwitch } from '../dns';
import { gateApprovals } from '../plan';
import { allSteps, approvalTimeoutMs, round1 } from '../steps';
import { readLiveTopology } from '../topology';
import type { Failback } from './context';

/** The original primary (home) and the DR server that is primary now. */
export interface Roles {
  db: NonNullable<ServicePlan['service']['database']>;
  original: string;
  dr: string;
}

export function warmRoles({ svc }: Failback): Roles {
  const db = svc.database;
  if (!db?.replica || svc.strategy !== 'warm') {
    throw ApplicationFailure.create({
      type: ErrorType.NotConfigured,
      message:
        'failback needs a warm service with a database replica; ' +
        `${svc.name} is ${svc.strategy}${db?.replica ? '' : ' without a replica'}`,
      nonRetryable: true,
    });
  }
  return { db, original: db.primary, dr: db.replica };
}

/** Live roles: only a service on its DR side fails back. */
export async function refuseIfAtHome(fb: Failback, { original }: Roles): Promise<void> {
  if (!patched('failback-live-topology')) return;
  const live = await readLiveTopology(fb.run, fb.plan, fb.acts);
  if (live.writable === original) {
    throw ApplicationFailure.create({
      type: ErrorType.AlreadyAtHome,
      message: `${fb.svc.name} is at home (${live.detail}): nothing to fail back`,
      nonRetryable: true,
    });
  }
}

/** Assess: the original already primary with the DR side replicating from it is nothing to fail back. */
export async function alreadyInPlace({ run, acts }: Failback, { original, dr }: Roles): Promise<boolean> {
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
          message:
            `neither ${original} nor ${dr} is in a state failback knows ` +
            `(original read_only=${p.readOnly}, DR read_only=${r.readOnly})`,
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
  return topology.inPlace;
}

/**
 * Re-protect: the original primary replicates from DR, caught up. After an unplanned failover it may hold
 * transactions the DR side never got (lost in the crash): then, with approval, it is re-cloned from DR.
 */
export async function reprotectOriginal(fb: Failback, { db, original, dr }: Roles): Promise<void> {
  const { run, plan, svc, input, acts } = fb;
  const divergence = await run.step(
    'check-divergence',
    () => acts.reads.countErrantTransactions({ server: original, source: dr }),
    (d) =>
      d.errant ? `${original} holds ${d.errant} transaction(s) ${dr} lacks` : `${original} holds nothing ${dr} lacks`,
  );
  const rebuild = { service: svc.name, server: original, source: dr, heartbeatEvent: db.heartbeatEvent };
  if (divergence.errant > 0) {
    await run.gate('discard-divergent', {
      needed: gateApprovals(svc, input.mode),
      timeoutMs: approvalTimeoutMs(plan.targets.rtoSeconds, Date.now()),
      question:
        `${original} holds ${divergence.errant} transaction(s) that never reached ${dr} (lost at the failover): ` +
        `discard them and re-clone ${original} from ${dr}?`,
    });
    run.startChanging();
    await run.step(
      'reclone-original',
      () => acts.longWaits.recloneFromSource(rebuild),
      (r) =>
        `${original} re-cloned from ${dr} (${r.databases.join(', ')}; ` +
        `${Math.round(r.bytes / 1024)} KiB) and replicating`,
    );
  } else {
    await run.step(
      'reprotect-original',
      () => acts.topologyChanges.rebuildAsReplica(rebuild),
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
}

/** The switch-back gate; returns when the switch started (the failback's RTO clock). */
export async function approveSwitchBack({ run, plan, svc, input }: Failback, question: string): Promise<number> {
  await run.gate('switch-back', {
    needed: gateApprovals(svc, input.mode),
    timeoutMs: approvalTimeoutMs(plan.targets.rtoSeconds, Date.now()),
    question,
  });
  run.startChanging();
  return Date.now();
}

/** Fence DR, let the original catch up (nothing lost), promote it. Undone if it stops before the promotion is done. */
export async function fenceDrAndPromoteOriginal(fb: Failback, { db, original, dr }: Roles): Promise<void> {
  const { run, svc, acts } = fb;
  const vip = svc.vip;
  fb.fencing = {
    service: svc.name,
    server: dr,
    heartbeatEvent: db.heartbeatEvent,
    vip: vip ? { host: vip.drHost, address: vip.address, device: vip.device } : null,
    result: null,
    promoting: null,
    reprotect: original,
  };
  pushUnfence(fb.compensations, run, acts, fb.fencing);
  const fence = await run.step(
    'fence-dr',
    async () => {
      const mysql = await acts.fencing.fencePrimary({ server: dr, heartbeatEvent: db.heartbeatEvent });
      if (!mysql.fenced) throw failure(ErrorType.FenceFailed, mysql.detail);
      if (vip) await acts.topologyChanges.removeVip({ host: vip.drHost, address: vip.address, device: vip.device });
      return mysql;
    },
    (f) => f.detail,
  );
  fb.fencing.result = fence;
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
  pushRefence(fb.compensations, run, acts, fb.fencing, original);
  await run.step(
    'promote-original',
    () => acts.topologyChanges.promoteReplica({ server: original, heartbeatEvent: db.heartbeatEvent }),
    (p) => `${original} primary at ${p.gtids}`,
  );
  fb.compensations.clear();
}

/** Re-protect DR and bring traffic back (VIP, DNS), together. */
export async function bringTrafficBack({ run, svc, acts }: Failback, { db, original, dr }: Roles): Promise<void> {
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
          () => acts.longWaits.switchDnsRecord(dnsSwitch(dns, 'primary')),
          (r) => `${r.name} → ${r.value}`,
        )
      : null,
  ]);
}

/** Tell the application, verify health and a write on the original: the failback's RTO, from the switch's start. */
export async function notifyAndVerify(fb: Failback, { db, original }: Roles, switchStartedAt: number): Promise<void> {
  const { run, plan, svc, acts } = fb;
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
  const recoveredAt = (await verifyHealth(fb)) ?? Date.now();
  await run.step(
    'verify-writes',
    () => acts.reads.verifyWritable({ server: original, heartbeatTable: db.heartbeatTable }),
    (w) => `${w.server} accepted a write`,
  );
  run.measured.rtoSeconds = round1((recoveredAt - switchStartedAt) / 1000);
}

/** The first healthy check after the switch, or null when the inventory has no health URL. */
export async function verifyHealth({ run, svc, acts }: Failback): Promise<number | null> {
  const url = svc.health.httpUrl;
  if (!url) return null;
  const healthy = await run.step(
    'verify-health',
    () => acts.longWaits.waitUntilHealthy({ url, timeoutSeconds: 300 }),
    (h) => `${url}: HTTP ${h.status}`,
  );
  return healthy.at;
}

/** DR back to warm standby: compute stopped, the RDS DR read replica re-created from the primary. */
export async function drBackToStandby({ run, svc, acts }: Failback): Promise<void> {
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
      `RDS ${rdsDr.instance} stays standalone: re-create the cross-region read replica of ${rds.instance} by hand ` +
        '(RDS cannot demote a promoted instance)',
    );
  }
}
