/** The database's checks: its live roles first, then the primary, the replica's threads and its lag. */
import { patched } from '@temporalio/workflow';
import type { TopologyMember } from '../../contract';
import { runbookActivities } from '../activity-options';
import { notifyPeople } from '../steps';
import { check, CheckFailed, type Readiness } from './checks';

/** Who is writable now (failed over? split?) decides what every other check means. */
export async function readLiveRoles(r: Readiness): Promise<void> {
  const { plan, svc } = r;
  if (!svc.database || !patched('readiness-live-topology')) return;
  await check(r, 'topology', async () => {
    r.topology = await r.drSide.discoverTopology({ service: svc.name });
    if (r.topology.state !== 'normal') throw new CheckFailed(r.topology.detail);
    return r.topology.detail;
  });
  const live = r.topology;
  if (live && (live.state === 'split' || live.state === 'unknown')) {
    // Not a drift to compare with last hour's: two writers, or none known, is told at once, every run.
    await notifyPeople(
      plan,
      runbookActivities(plan),
      `[drbook] ${svc.name} topology ${live.state.toUpperCase()}: ${live.writers.join(', ') || 'no writable member'}`,
      `${live.detail}\n${live.members.map(memberLine).join('\n')}`,
      `topology-${live.state}`,
    ).catch(() => undefined);
  }
}

/** One member as the topology notice lists it. */
function memberLine(m: TopologyMember): string {
  if (!m.reachable) return `${m.server}: unreachable: ${m.error}`;
  const rep = m.replication;
  const from = rep?.configured
    ? `from ${rep.source ?? '?'}${rep.sourceServer ? ` (${rep.sourceServer})` : ''}`
    : 'none';
  return `${m.server}: read_only=${m.readOnly ? 'ON' : 'OFF'}, replication ${from}, GTID ${m.gtidPosition}`;
}

export async function checkDatabase(r: Readiness): Promise<void> {
  const db = r.svc.database;
  if (!db) return;
  await check(r, 'primary-database-reachable', async () => {
    const info = await r.primarySide.pingDatabase({ server: db.primary });
    return `${db.primary}: ${info.version}${info.readOnly ? ' (read_only=ON)' : ''}, ${info.latencyMs} ms`;
  });
  if (!db.replica) return;
  await check(r, 'replica-replicating', () => replicaReplicating(r, db.primary, db.replica!));
  await check(r, 'replica-lag-within-rpo', () => replicaLagWithinRpo(r, db.primary, db.replica!, db.heartbeatTable));
}

async function replicaReplicating(r: Readiness, primary: string, replica: string): Promise<string> {
  const s = await r.drSide.readReplicationStatus({ server: replica });
  if (!s.configured) throw new CheckFailed(`${replica} is not replicating from anything`);
  if (!s.ioRunning || !s.sqlRunning) {
    throw new CheckFailed(
      (
        `${replica}: IO thread ${s.ioRunning ? 'running' : 'stopped'}, ` +
        `SQL thread ${s.sqlRunning ? 'running' : 'stopped'} ${s.lastIoError || s.lastSqlError}`
      ).trim(),
    );
  }
  const from = `${s.sourceHost}:${s.sourcePort}${s.sourceServer ? ` (${s.sourceServer})` : ''}`;
  // Matched against the primary's replication address (histories recorded before it was reported carry no
  // sourceServer).
  if (s.sourceServer !== undefined && s.sourceServer !== primary) {
    throw new CheckFailed(`${replica} replicates from ${from}, not from ${primary}'s replication address`);
  }
  return `${replica} replicates from ${from}`;
}

async function replicaLagWithinRpo(
  r: Readiness,
  primary: string,
  replica: string,
  heartbeatTable: string,
): Promise<string> {
  const { rpoSeconds } = r.plan.targets;
  const lag = await r.drSide.measureReplicaLag({ primary, replica, heartbeatTable });
  r.expectedRpoSeconds = lag.heartbeatLagSeconds;
  const text = `${lag.transactionsBehind ?? '?'} transactions, heartbeat ${lag.heartbeatLagSeconds ?? '?'} s behind`;
  if (lag.heartbeatLagSeconds === null) throw new CheckFailed(`cannot date the replica's data: ${text}`);
  if (lag.heartbeatLagSeconds > rpoSeconds) throw new CheckFailed(`${text}: over the ${rpoSeconds} s RPO`);
  return text;
}
