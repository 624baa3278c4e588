/**
 * Live topology: who is writable now, read from the servers, never from the inventory's role names.
 *
 * The inventory names a service's members (database.primary = the home side, replica, drServer); each member is
 * read for read_only, SHOW REPLICA STATUS (its Master_Host:Master_Port matched against the members' replication
 * addresses) and its GTID position, and the service gets one state: normal, failed-over, degraded, split or
 * unknown (contract/topology.ts). Every runbook acts on that: the backup reads from the member writable now and
 * refuses a fenced one, the monitor probes the writable member, readiness reports the state, failover refuses a
 * service already failed over and failback one at home, and a split stops them all.
 */
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import {
  type Service,
  ErrorType,
  type Topology,
  type TopologyMember,
  type TopologyState,
  workflowIdFor,
} from '../../contract';
import { failure } from '../errors';
import { createMysqlActivities, type MysqlActivities, type MysqlPools } from './index';

type Members = { server: string; role: TopologyMember['role'] }[];

/** The service's members in inventory order: home first. */
export function membersOf(svc: Service): Members {
  const db = svc.database;
  if (!db) return [];
  const members: Members = [{ server: db.primary, role: 'primary' }];
  if (db.replica && db.replica !== db.primary) members.push({ server: db.replica, role: 'replica' });
  if (db.drServer && !members.some((m) => m.server === db.drServer))
    members.push({ server: db.drServer, role: 'drServer' });
  return members;
}

const healthyFrom = (m: TopologyMember, source: string) =>
  Boolean(m.replication?.configured && m.replication.ioRunning && m.replication.sqlRunning) &&
  m.replication?.sourceServer === source;

/** The state of a service from its members' evidence (pure: unit-tested in test/unit/topology.test.ts). */
export function classifyTopology(
  service: string,
  members: TopologyMember[],
  since: string | null = null,
  readAt = new Date().toISOString(),
): Topology {
  const home = members.find((m) => m.home)?.server ?? '';
  const writers = members.filter((m) => m.reachable && m.readOnly === false).map((m) => m.server);
  const unreachable = members.filter((m) => !m.reachable).map((m) => m.server);
  const writable = writers.length === 1 ? writers[0] : null;
  const replicas = writable ? members.filter((m) => healthyFrom(m, writable)).map((m) => m.server) : [];
  const fenced = members
    .filter((m) => m.reachable && m.readOnly === true && !m.replication?.configured)
    .map((m) => m.server);
  const down = unreachable.length ? `; unreachable: ${unreachable.join(', ')}` : '';
  let state: TopologyState;
  let detail: string;
  if (writers.length >= 2) {
    state = 'split';
    detail =
      `SPLIT: ${writers.join(' and ')} are all writable; fence all but one (drctl resolve) before any ` +
      `runbook runs`;
  } else if (writable === null) {
    state = unreachable.length ? 'unknown' : 'degraded';
    detail = unreachable.length
      ? `unknown: no member answered as writable${down}`
      : `degraded: no writable member (${members.map((m) => m.server).join(', ')} all read-only)`;
  } else if (writable !== home) {
    state = 'failed-over';
    detail =
      `failed over to ${writable}${since ? ` since ${since}` : ''}, failback ` +
      `pending${fenced.length ? `; fenced: ${fenced.join(', ')}` : ''}${down}`;
  } else {
    // At home: every replica must replicate from the home member (a cold drServer is a standby, not a replica).
    const broken = members.filter((m) => m.role === 'replica' && !replicas.includes(m.server)).map((m) => m.server);
    state = broken.length ? 'degraded' : 'normal';
    detail = broken.length
      ? `degraded: ${home} writable, but ${broken.join(', ')} not replicating from it${down}`
      : `normal: ${home} writable${replicas.length ? `, ${replicas.join(', ')} replicating from it` : ''}`;
  }
  return { service, state, home, writable, writers, replicas, fenced, detail, since, readAt, members };
}

const TRANSIENT = /ECONNRESET|EPIPE|PROTOCOL_CONNECTION_LOST/;

/** `serviceNamed` looks a service up in the worker's inventory (and fails, typed, for an unknown one). */
/** One member as it answers now: reachable, read_only, replication, GTID position; or the error it gave. */
async function readMember(
  read: MysqlActivities,
  server: string,
  role: TopologyMember['role'],
  home: boolean,
): Promise<TopologyMember> {
  const member: TopologyMember = {
    server,
    role,
    home,
    reachable: false,
    error: null,
    readOnly: null,
    replication: null,
    gtidPosition: null,
  };
  try {
    const info = await read.pingDatabase({ server });
    member.reachable = true;
    member.readOnly = info.readOnly;
    const r = await read.readReplicationStatus({ server });
    member.replication = {
      configured: r.configured,
      ioRunning: r.ioRunning,
      sqlRunning: r.sqlRunning,
      source: r.sourceHost === null ? null : `${r.sourceHost}:${r.sourcePort}`,
      sourceServer: r.sourceServer,
      secondsBehind: r.secondsBehind,
      lastError: r.lastIoError || r.lastSqlError,
    };
    member.gtidPosition = (await read.readGtidPosition({ server })).gtids;
  } catch (err) {
    member.error = (err as Error).message;
  }
  return member;
}

export function createTopologyDiscoveryActivities(serviceNamed: (service: string) => Service, pools: MysqlPools) {
  const servers = createMysqlActivities(pools);

  /** Every member read at once; a member that does not answer is evidence too (reachable: false, the error). */
  async function discover(service: string): Promise<Topology> {
    const svc = serviceNamed(service);
    const members = membersOf(svc);
    if (members.length === 0)
      throw failure(ErrorType.NotConfigured, `service ${service} has no database members to read`, { service });
    const read = await Promise.all(members.map((m) => readMember(servers, m.server, m.role, m.role === 'primary')));
    // A connection reset says nothing about the server: fail the attempt (retryable, as every other step's
    // transient fault is), so the retry reads it again. Refused and timed-out members are evidence.
    const reset = read.find((m) => m.error !== null && TRANSIENT.test(m.error));
    if (reset)
      throw failure(ErrorType.ECONNRESET, `${service}: reading ${reset.server} was cut off: ${reset.error}`, {
        service,
      });
    return classifyTopology(service, read);
  }

  /**
   * The member a backup of `service` reads from: the writable one (or, with backup.source: replica, a healthy
   * replica of it), or the member the caller named. Refuses, with a typed failure, a split service, one with no
   * writable member, and a named member that is fenced or read-only and not replicating.
   */
  async function backupSource(
    service: string,
    options: { named?: string; preferReplica?: boolean } = {},
  ): Promise<{ server: string; topology: Topology }> {
    const topology = await discover(service);
    const { named, preferReplica } = options;
    if (topology.state === 'split')
      throw failure(ErrorType.SplitBrain, `${service}: ${topology.detail}: not backing up`, { service });
    if (named) {
      const m = topology.members.find((x) => x.server === named);
      if (!m)
        throw failure(ErrorType.InvalidInput, `source ${named} is not a member of ${service}`, { service, named });
      if (!m.reachable) throw failure(ErrorType.TopologyUnknown, `${named} did not answer: ${m.error}`, { service });
      const replicating = topology.writable !== null && topology.replicas.includes(named);
      if (m.readOnly && !replicating)
        throw failure(
          ErrorType.SourceNotWritable,
          `${named} is read-only and replicates from nothing (fenced: its data stopped advancing); ${service}'s ` +
            `writable member is ${topology.writable ?? 'none'} (${topology.detail}): refusing to back it up`,
          { service, source: named, writable: topology.writable },
        );
      return { server: named, topology };
    }
    if (topology.writable === null)
      throw failure(
        topology.state === 'unknown' ? ErrorType.TopologyUnknown : ErrorType.SourceNotWritable,
        `${service}: ${topology.detail}: no writable member to back up`,
        { service },
      );
    if (preferReplica && topology.replicas.length) return { server: topology.replicas[0], topology };
    return { server: topology.writable, topology };
  }

  /** The newest completed failover of the service (its workflow id is failover-<service>), for "since". */
  async function failedOverSince(service: string): Promise<string | null> {
    let client;
    try {
      client = Context.current().client;
    } catch {
      return null; // called outside an activity (tests): no Temporal to ask
    }
    try {
      const info = await client.workflow.getHandle(workflowIdFor('failover', service)).describe();
      return info.status.name === 'COMPLETED' && info.closeTime ? info.closeTime.toISOString() : null;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      return null;
    }
  }

  return {
    discover,
    backupSource,
    activities: {
      /**
       * Who is writable now, from the servers themselves: every member's read_only, replication (source matched
       * by replication address) and GTID position, and the state (normal, failed-over, degraded, split, unknown).
       */
      async discoverTopology({ service }: { service: string }): Promise<Topology> {
        const topology = await discover(service);
        if (topology.state !== 'failed-over') return topology;
        const since = await failedOverSince(service);
        return classifyTopology(service, topology.members, since, topology.readAt);
      },

      /** The monitor's database probe: the member writable now answers and accepts it is writable. */
      async probeWritableMember({
        service,
      }: {
        service: string;
      }): Promise<{ ok: boolean; server: string | null; state: TopologyState; detail: string }> {
        const topology = await discover(service);
        return {
          ok: topology.writable !== null,
          server: topology.writable,
          state: topology.state,
          detail: topology.writable ? `${topology.writable}: writable (${topology.state})` : topology.detail,
        };
      },
    },
  };
}

export type TopologyDiscoveryActivities = ReturnType<typeof createTopologyDiscoveryActivities>['activities'];
