/**
 * readiness({ service }): every read-only check a failover depends on, run against the
 * real estate, changing nothing. The failover's dry run and the hourly readiness
 * schedule both use it. Each check names what an operator must fix.
 */
import { proxyActivities, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../workers/adapters';
import {
  drTaskQueue,
  NON_RETRYABLE,
  parseInput,
  readinessInput,
  type ReadinessCheck,
  type ReadinessReport,
} from './contract';
import { DrOutcome, DrRunbook, DrService } from './messages';
import { planFor, reasonOf } from './plan';

// Read-only checks: a short retry budget, so an unreachable component is reported, not waited for.
const readOnly = {
  startToCloseTimeout: '30s',
  retry: { maximumAttempts: 2, initialInterval: '1s', nonRetryableErrorTypes: NON_RETRYABLE },
} as const;

export async function readiness(rawInput: unknown): Promise<ReadinessReport> {
  const input = parseInput(readinessInput, rawInput);
  const plan = await planFor(input.service);
  const { service: svc } = plan;
  upsertSearchAttributes([
    { key: DrService, value: svc.name },
    { key: DrRunbook, value: 'readiness' },
  ]);
  const primarySide = proxyActivities<Activities>(readOnly);
  const drSide = proxyActivities<Activities>({
    ...readOnly,
    taskQueue: drTaskQueue(workflowInfo().taskQueue, plan.regions.dr),
  });

  const checks: ReadinessCheck[] = [];
  let expectedRpoSeconds: number | null = null;
  async function check(name: string, run: () => Promise<string>): Promise<void> {
    try {
      checks.push({ name, ok: true, detail: await run() });
    } catch (err) {
      checks.push({ name, ok: false, detail: reasonOf(err) });
    }
  }

  if (svc.health.elbTargetGroup) {
    const tg = svc.health.elbTargetGroup;
    await check('primary-targets-healthy', async () => {
      const h = await primarySide.readTargetHealth({ region: tg.region, targetGroup: tg.name });
      if (h.healthy === 0) throw new CheckFailed(`no healthy target in ${tg.name} (${h.total} registered)`);
      return `${h.healthy}/${h.total} targets healthy in ${tg.name}`;
    });
  }

  const db = svc.database;
  if (db) {
    await check('primary-database-reachable', async () => {
      const info = await primarySide.pingDatabase({ server: db.primary });
      return `${db.primary}: ${info.version}${info.readOnly ? ' (read_only=ON)' : ''}, ${info.latencyMs} ms`;
    });
    const replica = db.replica;
    if (replica) {
      await check('replica-replicating', async () => {
        const s = await drSide.readReplicationStatus({ server: replica });
        if (!s.configured) throw new CheckFailed(`${replica} is not replicating from anything`);
        if (!s.ioRunning || !s.sqlRunning) {
          throw new CheckFailed(
            `${replica}: IO thread ${s.ioRunning ? 'running' : 'stopped'}, SQL thread ${s.sqlRunning ? 'running' : 'stopped'} ${s.lastIoError || s.lastSqlError}`.trim(),
          );
        }
        return `${replica} replicates from ${s.sourceHost}:${s.sourcePort}`;
      });
      await check('replica-lag-within-rpo', async () => {
        const lag = await drSide.measureReplicaLag({ primary: db.primary, replica, heartbeatTable: db.heartbeatTable });
        expectedRpoSeconds = lag.heartbeatLagSeconds;
        const text = `${lag.transactionsBehind ?? '?'} transactions, heartbeat ${lag.heartbeatLagSeconds ?? '?'} s behind`;
        if (lag.heartbeatLagSeconds === null) throw new CheckFailed(`cannot date the replica's data: ${text}`);
        if (lag.heartbeatLagSeconds > plan.targets.rpoSeconds)
          throw new CheckFailed(`${text}: over the ${plan.targets.rpoSeconds} s RPO`);
        return text;
      });
    }
  }

  if (svc.rds?.drReplica) {
    const { region, instance } = svc.rds.drReplica;
    await check('rds-dr-replica-available', async () => {
      const r = await drSide.describeRdsInstance({ region, instance });
      if (r.status !== 'available') throw new CheckFailed(`${instance} is ${r.status}`);
      return `${instance} (${region}) available, replica of ${r.replicaOf ?? 'nothing'}`;
    });
  }

  const compute = svc.drCompute;
  if (compute) {
    await check('dr-instances-present', async () => {
      const found = await drSide.findInstancesByTags({ region: compute.region, tags: compute.tags });
      if (found.length === 0)
        throw new CheckFailed(`no instance tagged ${JSON.stringify(compute.tags)} in ${compute.region}`);
      return found.map((i) => `${i.id} ${i.state}`).join(', ');
    });
  }

  const dns = svc.dns;
  if (dns) {
    await check('dns-record-present', async () => {
      const rec = await drSide.readDnsRecord({ zone: dns.hostedZone, name: dns.record, type: dns.type });
      if (!rec) throw new CheckFailed(`${dns.record} ${dns.type} is missing from ${dns.hostedZone}`);
      return `${rec.name} ${rec.type} ${rec.values.join(',')} ttl ${rec.ttl}`;
    });
  }

  const vip = svc.vip;
  if (vip) {
    await check('vip-on-primary-host', async () => {
      const r = await primarySide.runRemoteCommand({
        host: vip.primaryHost,
        command: `ip -o addr show dev ${vip.device}`,
      });
      if (!r.stdout.includes(` ${vip.address} `) && !r.stdout.includes(` ${vip.address}\n`)) {
        throw new CheckFailed(`${vip.address} is not on ${vip.primaryHost} ${vip.device}`);
      }
      return `${vip.address} on ${vip.primaryHost} ${vip.device}`;
    });
    await check('dr-host-reachable', async () => {
      await drSide.runRemoteCommand({ host: vip.drHost, command: `ip -o link show dev ${vip.device}` });
      return `${vip.drHost} reachable with its pinned host key; ${vip.device} present`;
    });
  }

  const ready = checks.every((c) => c.ok);
  upsertSearchAttributes([{ key: DrOutcome, value: ready ? 'ready' : 'not-ready' }]);
  return { service: svc.name, ready, checks, expectedRpoSeconds, targets: plan.targets };
}

/** A check that ran and found a problem (as opposed to one that could not run). */
class CheckFailed extends Error {}
