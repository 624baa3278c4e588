/**
 * readiness({ service, alertOnDrift? }): every read-only check a failover depends on, run
 * against the real estate, changing nothing. The failover's dry run, the drill and the hourly
 * readiness schedule use it. Each check names what an operator must fix.
 *
 * Scheduled runs (alertOnDrift) compare their failing checks with the schedule's previous
 * completed run (read by an activity, so the decision replays) and notify people once when a
 * check starts failing and once when it recovers: an estate that stays broken does not page
 * every hour. The run also sets the worker's `drbook_ready` and `drbook_backup_age_seconds` gauges.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { metricMeter, patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import {
  type ServicePlan,
  NETWORK_DEVICE,
  parseInput,
  readinessInput,
  type ReadinessCheck,
  type ReadinessDrift,
  type ReadinessReport,
  type StepRecord,
  type Topology,
  DrOutcome,
  DrRunbook,
  DrService,
  backupTime,
} from '../contract';
import { recordBackupAge } from './metrics';
import { publishStatusPage } from './page';
import { planFor, reasonOf } from './plan';
import { activities, drActivities, readinessChecks, runbookActivities } from './activity-options';
import { dnsRecord } from './dns';
import { notifyPeople } from './steps';

/** Set by Temporal on every run a schedule starts. */
const ScheduledById = defineSearchAttributeKey('TemporalScheduledById', SearchAttributeType.KEYWORD);

/** A service whose RPO its replica covers still needs last night's backup: the nightly interval plus its catch-up window. */
const NIGHTLY_BACKUP_LIMIT_SECONDS = 30 * 3600;

// Read-only checks: a short retry budget, so an unreachable component is reported, not waited for.

export async function readiness(rawInput: unknown): Promise<ReadinessReport> {
  const input = parseInput(readinessInput, rawInput);
  const plan = await planFor(input.service);
  const { service: svc } = plan;
  upsertSearchAttributes([
    { key: DrService, value: svc.name },
    { key: DrRunbook, value: 'readiness' },
  ]);
  const primarySide = activities(readinessChecks);
  const drSide = drActivities(plan, readinessChecks);

  const checks: ReadinessCheck[] = [];
  let expectedRpoSeconds: number | null = null;
  /** The checks with their times, for the run's page in the Web UI (rewritten as each check starts and ends). */
  const steps: StepRecord[] = [];
  const page = (outcome: string | null = null) =>
    publishStatusPage({
      runbook: 'readiness',
      service: svc.name,
      phase: `checking (${checks.length} done)`,
      outcome,
      facts: [
        ['Tier', `${svc.tier}: RTO ${plan.targets.rtoSeconds} s, RPO ${plan.targets.rpoSeconds} s`],
        ...(expectedRpoSeconds === null ? [] : [['Data loss if it failed over now', `${expectedRpoSeconds} s`]]),
      ] as [string, string][],
      steps,
      problems: checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`),
      next: [
        'Each failing check names what to fix; the run changes nothing.',
        `The service's runbooks and this report: \`drctl status ${svc.name}\`; again now: \`drctl readiness ${svc.name}\``,
      ],
    });
  page();
  async function check(name: string, run: () => Promise<string>): Promise<void> {
    const step: StepRecord = { name, state: 'running', startedAt: new Date().toISOString(), attempts: 1 };
    steps.push(step);
    page();
    try {
      checks.push({ name, ok: true, detail: await run() });
    } catch (err) {
      checks.push({ name, ok: false, detail: reasonOf(err) });
    }
    const done = checks.at(-1)!;
    Object.assign(step, {
      state: done.ok ? 'succeeded' : 'failed',
      detail: done.detail,
      endedAt: new Date().toISOString(),
    });
    page();
  }

  // The live roles first: who is writable now (failed over? split?) decides what every other check means.
  let topology: Topology | undefined;
  if (svc.database && patched('readiness-live-topology')) {
    await check('topology', async () => {
      topology = await drSide.discoverTopology({ service: svc.name });
      if (topology.state !== 'normal') throw new CheckFailed(topology.detail);
      return topology.detail;
    });
    const live = topology;
    if (live && (live.state === 'split' || live.state === 'unknown')) {
      // Not a drift to compare with last hour's: two writers, or none known, is told at once, every run.
      await notifyPeople(
        plan,
        runbookActivities(plan),
        `[drbook] ${svc.name} topology ${live.state.toUpperCase()}: ${live.writers.join(', ') || 'no writable member'}`,
        `${live.detail}\n${live.members.map((m) => `${m.server}: ${m.reachable ? `read_only=${m.readOnly ? 'ON' : 'OFF'}, replication ${m.replication?.configured ? `from ${m.replication.source ?? '?'}${m.replication.sourceServer ? ` (${m.replication.sourceServer})` : ''}` : 'none'}, GTID ${m.gtidPosition}` : `unreachable: ${m.error}`}`).join('\n')}`,
        `topology-${live.state}`,
      ).catch(() => undefined);
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
        const from = `${s.sourceHost}:${s.sourcePort}`;
        // Matched against the primary's replication address (histories recorded before it was reported carry no sourceServer).
        if (s.sourceServer !== undefined && s.sourceServer !== db.primary) {
          throw new CheckFailed(
            `${replica} replicates from ${from}${s.sourceServer ? ` (${s.sourceServer})` : ''}, not from ${db.primary}'s replication address`,
          );
        }
        return `${replica} replicates from ${from}${s.sourceServer ? ` (${s.sourceServer})` : ''}`;
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
      const rec = await drSide.readDnsRecord(dnsRecord(dns));
      if (!rec) throw new CheckFailed(`${dns.record} ${dns.type} is missing from ${dns.hostedZone}`);
      return `${rec.name} ${rec.type} ${rec.values.join(',')} ttl ${rec.ttl}`;
    });
  }

  const vip = svc.vip;
  if (vip) {
    // The device goes into a remote shell command: refuse anything but a device name (the inventory
    // refuses it too; this holds whatever produced the plan).
    const safeDevice = () => {
      if (!NETWORK_DEVICE.test(vip.device))
        throw new CheckFailed(
          `vip.device ${JSON.stringify(vip.device)} is not a network device name: refusing to pass it to a remote shell`,
        );
    };
    await check('vip-on-primary-host', async () => {
      safeDevice();
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
      safeDevice();
      await drSide.runRemoteCommand({ host: vip.drHost, command: `ip -o link show dev ${vip.device}` });
      return `${vip.drHost} reachable with its pinned host key; ${vip.device} present`;
    });
  }

  // Checks added after the first histories were recorded: old runs replay without them.
  let backupAgeSeconds: number | null = null;
  if (patched('readiness-drift-checks')) {
    const rds = svc.rds;
    if (rds && svc.tier === 'critical') {
      await check('rds-multi-az', async () => {
        const r = await primarySide.describeRdsInstance({ region: rds.region, instance: rds.instance });
        if (!r.multiAz)
          throw new CheckFailed(`${rds.instance} (${rds.region}) is not Multi-AZ: a critical service's must be`);
        return `${rds.instance} (${rds.region}) Multi-AZ`;
      });
    }

    const sshHosts = [
      ...new Set([vip?.primaryHost, vip?.drHost, ...(svc.backup?.paths ?? []).map((p) => p.host)]),
    ].filter((h): h is string => Boolean(h));
    if (sshHosts.length) {
      await check('ssh-host-keys-match', async () => {
        const problems: string[] = [];
        for (const host of sshHosts.sort()) {
          await drSide.runRemoteCommand({ host, command: 'true' }).catch((err: unknown) => {
            problems.push(reasonOf(err));
          });
        }
        if (problems.length) throw new CheckFailed(problems.join('; '));
        return `${sshHosts.join(', ')}: pinned host key presented`;
      });
    }

    if (svc.backup) {
      const replicated = Boolean(db?.replica || svc.rds?.drReplica);
      const limit = replicated ? NIGHTLY_BACKUP_LIMIT_SECONDS : plan.targets.rpoSeconds;
      const why = replicated ? 'the nightly backup plus its catch-up window; the replica covers the RPO' : 'the RPO';
      await check('verified-backup-recent', async () => {
        const newest = await drSide.pickNewestVerifiedBackup({ service: svc.name });
        backupAgeSeconds = Math.max(0, Math.round((Date.now() - backupTime(newest.backupId)) / 1000));
        const text = `newest verified backup ${newest.backupId} (${newest.destination}) is ${hours(backupAgeSeconds)} old`;
        if (backupAgeSeconds > limit) throw new CheckFailed(`${text}: over ${hours(limit)} (${why})`);
        return `${text}; limit ${hours(limit)} (${why})`;
      });
    }
  }

  const ready = checks.every((c) => c.ok);
  page(ready ? `READY (${checks.length} checks passed)` : `NOT READY (${checks.filter((c) => !c.ok).length} failing)`);
  upsertSearchAttributes([{ key: DrOutcome, value: ready ? 'ready' : 'not-ready' }]);
  const tags = { service: svc.name };
  metricMeter
    .createGauge('drbook_ready', 'int', '1 when every readiness check of the service passed')
    .set(ready ? 1 : 0, tags);
  if (backupAgeSeconds !== null) recordBackupAge(svc.name, backupAgeSeconds);
  const report: ReadinessReport = { service: svc.name, ready, checks, expectedRpoSeconds, targets: plan.targets };
  if (topology) report.topology = topology;
  if (input.alertOnDrift) report.drift = await alertOnDrift(plan, checks);
  return report;
}

/**
 * Compare with the schedule's previous completed run; notify once per change. Outside a schedule
 * there is no previous run: every failing check counts as new.
 */
async function alertOnDrift(plan: ServicePlan, checks: ReadinessCheck[]): Promise<ReadinessDrift> {
  const { previousScheduledReadiness } = activities(readinessChecks);
  const info = workflowInfo();
  const scheduleId = info.typedSearchAttributes.get(ScheduledById);
  const previous = scheduleId ? await previousScheduledReadiness({ scheduleId, workflowId: info.workflowId }) : null;
  const before = previous?.failing ?? {};
  const failing = checks.filter((c) => !c.ok);
  const newlyFailing = failing.filter((c) => !(c.name in before));
  const recovered = Object.keys(before).filter((name) => checks.some((c) => c.name === name && c.ok));
  const drift: ReadinessDrift = {
    previous: previous ? previous.workflowId : null,
    newlyFailing: newlyFailing.map((c) => c.name),
    recovered,
    notified: false,
  };
  if (newlyFailing.length === 0 && recovered.length === 0) return drift;
  const svc = plan.service.name;
  const subject = [
    newlyFailing.length ? `${svc} readiness drift: ${drift.newlyFailing.join(', ')} failing` : '',
    recovered.length ? `${svc} readiness recovered: ${recovered.join(', ')}` : '',
  ]
    .filter(Boolean)
    .join('; ');
  const message = [
    ...newlyFailing.map((c) => `FAILING ${c.name}: ${c.detail}`),
    ...recovered.map((name) => `RECOVERED ${name} (was: ${before[name]})`),
    `still failing: ${
      failing
        .filter((c) => c.name in before)
        .map((c) => c.name)
        .join(', ') || 'none'
    }`,
    `compared with ${previous ? `${previous.workflowId} (closed ${previous.closedAt})` : 'no earlier scheduled run'}`,
    `latest readiness: drctl status ${svc}`,
  ].join('\n');
  await notifyPeople(plan, runbookActivities(plan), `[drbook] ${subject}`, message, 'readiness-drift');
  drift.notified = true;
  return drift;
}

const hours = (s: number) =>
  s >= 3600 ? `${Math.round(s / 360) / 10} h` : s >= 60 ? `${Math.round(s / 60)} min` : `${s} s`;

/** A check that ran and found a problem (as opposed to one that could not run). */
class CheckFailed extends Error {}
