/**
 * The RDS DR read replica through a failover and its failback:
 *
 *   promoteRdsReplica   the DR read replica becomes a standalone primary, with one PromoteReadReplica
 *   recreateRdsReplica  after failback: the promoted DR instance is deleted (final snapshot kept) and a new
 *                       cross-region read replica of the primary is created under its name, then waited for
 *
 * "Promote requested" is recorded on the instance itself, as a tag, before PromoteReadReplica is called.
 * A tag outlives the worker, the activity attempt and the run; any worker in either region reads it in the
 * same DescribeDBInstances that reads the instance's state, and operators see it in the console. Heartbeat
 * details do not: the SDK throttles heartbeats, so a detail recorded just before a SIGKILL may never reach
 * the server, and a new run (a reset, a second failover) never sees an earlier run's details.
 */
import { Context } from '@temporalio/activity';
import {
  AddTagsToResourceCommand,
  CreateDBInstanceReadReplicaCommand,
  DeleteDBInstanceCommand,
  DescribeDBInstancesCommand,
  PromoteReadReplicaCommand,
  waitUntilDBInstanceDeleted,
} from '@aws-sdk/client-rds';
import { ErrorType } from '../../contract';
import { aws, awsFailure, failure } from '../errors';
import { whileHeartbeating } from '../process/heartbeat';
import type { AwsClients } from './clients';

/** Written before PromoteReadReplica: `<ISO time> <workflow id>/<run id>`. */
export const PROMOTE_REQUESTED_TAG = 'drbook:promote-requested';
/** Written once RDS accepted PromoteReadReplica (same value). */
export const PROMOTE_ACCEPTED_TAG = 'drbook:promote-accepted';

export interface RdsReplicaTiming {
  /**
   * A request recorded this long ago, on an instance still available and still a replica, and never accepted,
   * is taken as lost (the worker died between the tag and the call, or RDS refused it as busy) and is made
   * again. On AWS a second request while a promotion is under way is refused with InvalidDBInstanceState,
   * which is waited on like the first, so a request made again never promotes twice. On an emulator that
   * promotes before it answers (inventory `aws.emulator.rdsPromotesBeforeAnswering`) it is 0: there a request
   * on an instance still a replica was never made.
   */
  requestLostAfterMs: number;
  /** Polling interval bounds while waiting for RDS. */
  minPollMs: number;
  maxPollMs: number;
  /** How long a promotion or a replica creation may take before the attempt fails (retryable). */
  waitMs: number;
}

const DEFAULT_TIMING: RdsReplicaTiming = {
  requestLostAfterMs: 120_000,
  minPollMs: 1000,
  maxPollMs: 15_000,
  waitMs: 30 * 60_000,
};

interface RdsState {
  arn: string;
  status: string;
  replicaOf: string | null;
  instanceClass: string | undefined;
  tags: Record<string, string>;
}

const isNotFound = (err: unknown) => /^DBInstanceNotFound/.test((err as Error).name ?? '');
const isBusy = (err: unknown) => /^InvalidDBInstanceState/.test((err as Error).name ?? '');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Who asks, for the marker: the run (from an activity), or this process (a script, a test). */
function requester(): string {
  let run: { workflowId: string; runId: string } | undefined;
  try {
    run = Context.current().info.workflowExecution;
  } catch {
    run = undefined;
  }
  return run ? `${run.workflowId}/${run.runId}` : `pid ${process.pid}`;
}

/** A tag value AWS accepts: letters, digits, spaces and _.:/=+-@ only, at most 256 characters. */
const tagValue = (s: string) => s.replace(/[^\p{L}\p{N}\s_.:/=+\-@]/gu, '_').slice(0, 256);

/** When a marker was written (its first word), epoch ms; null for no marker or one drbook cannot read. */
function markedAt(value: string | undefined): number | null {
  if (value === undefined) return null;
  const t = Date.parse(value.split(' ')[0]);
  return Number.isNaN(t) ? null : t;
}

/** An RDS instance read, tagged and waited for, with this worker's polling budget. */
function rdsInstances(clients: AwsClients, timing: Partial<RdsReplicaTiming>) {
  const atOnce = clients.connection.emulator?.rdsPromotesBeforeAnswering === true;
  const t = { ...DEFAULT_TIMING, ...(atOnce ? { requestLostAfterMs: 0 } : {}), ...timing };
  const keepsSource = clients.connection.emulator?.rdsKeepsReplicaSourceAfterPromote === true;

  async function readInstance(region: string, instance: string): Promise<RdsState | null> {
    try {
      const out = await clients.rds(region).send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: instance }));
      const db = out.DBInstances?.[0];
      if (!db) return null;
      return {
        arn: db.DBInstanceArn ?? '',
        status: db.DBInstanceStatus ?? 'unknown',
        replicaOf: db.ReadReplicaSourceDBInstanceIdentifier ?? null,
        instanceClass: db.DBInstanceClass,
        tags: Object.fromEntries((db.TagList ?? []).map((tag) => [tag.Key ?? '', tag.Value ?? ''])),
      };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw awsFailure(err, `RDS instance ${instance} (${region})`);
    }
  }

  async function mustRead(region: string, instance: string): Promise<RdsState> {
    const s = await readInstance(region, instance);
    if (!s) throw failure(ErrorType.ResourceNotFound, `RDS instance ${instance} (${region}) does not exist`);
    return s;
  }

  /**
   * No longer a replica. On AWS: RDS cleared its source. In an emulator that keeps the source after a
   * promotion (inventory `aws.emulator.rdsKeepsReplicaSourceAfterPromote`): drbook saw the promotion accepted.
   */
  const promoted = (s: RdsState) => s.replicaOf === null || (keepsSource && PROMOTE_ACCEPTED_TAG in s.tags);

  const tag = (region: string, s: RdsState, key: string, value: string) =>
    aws(`RDS tag ${key} on ${s.arn}`, () =>
      clients
        .rds(region)
        .send(new AddTagsToResourceCommand({ ResourceName: s.arn, Tags: [{ Key: key, Value: value }] })),
    );

  /** Poll `read` until `done` says yes, heartbeating `progress`; a wait past the budget fails (retryable). */
  async function pollUntil<T>(
    progress: Record<string, unknown>,
    read: () => Promise<T>,
    done: (s: T) => boolean,
    onEach: (s: T) => Promise<void> = async () => undefined,
  ): Promise<T> {
    const deadline = Date.now() + t.waitMs;
    return whileHeartbeating(
      progress,
      (async () => {
        for (let pause = t.minPollMs; ; pause = Math.min(pause * 2, t.maxPollMs)) {
          const s = await read();
          if (done(s)) return s;
          await onEach(s);
          if (Date.now() > deadline)
            throw failure(
              ErrorType.RdsWaitTimedOut,
              `${String(progress.instance)}: still not ${String(progress.waitingFor)}`,
              {
                ...progress,
              },
            );
          await sleep(pause);
        }
      })(),
    );
  }

  return { t, readInstance, mustRead, promoted, tag, pollUntil };
}

/** The DR read replica promoted, once, however often the step is retried. */
function createPromoteActivities(clients: AwsClients, timing: Partial<RdsReplicaTiming> = {}) {
  const { t, mustRead, promoted, tag, pollUntil } = rdsInstances(clients, timing);

  return {
    /**
     * Promote the RDS DR read replica to a standalone instance, once. Before PromoteReadReplica the request is
     * tagged on the instance; an attempt that finds a request waits for it instead of calling again (unless the
     * request is stale: see `requestLostAfterMs`). InvalidDBInstanceState means RDS is busy with the instance,
     * typically the promotion already under way: wait. Success: the instance available and no longer a replica.
     */
    async promoteRdsReplica({
      region,
      instance,
    }: {
      region: string;
      instance: string;
    }): Promise<{ instance: string; alreadyPromoted: boolean; requests: number; requestedBy: string | null }> {
      const before = await mustRead(region, instance);
      const alreadyPromoted = promoted(before) && before.status === 'available';
      const progress: Record<string, unknown> = {
        instance,
        waitingFor: 'available and no longer a replica',
        requests: 0,
        status: before.status,
      };

      const requestNeeded = (s: RdsState) => {
        const requestedAt = markedAt(s.tags[PROMOTE_REQUESTED_TAG]);
        if (requestedAt === null) return true;
        if (PROMOTE_ACCEPTED_TAG in s.tags) return false;
        return s.status === 'available' && Date.now() - requestedAt > t.requestLostAfterMs;
      };

      const request = async (s: RdsState) => {
        const marker = tagValue(`${new Date().toISOString()} ${requester()}`);
        await tag(region, s, PROMOTE_REQUESTED_TAG, marker);
        progress.requests = Number(progress.requests) + 1;
        try {
          await clients
            .rds(region)
            .send(new PromoteReadReplicaCommand({ DBInstanceIdentifier: instance, BackupRetentionPeriod: 7 }));
        } catch (err) {
          if (isBusy(err)) {
            progress.refused = `${(err as Error).name}: ${(err as Error).message} (in progress: waiting)`;
            return;
          }
          throw awsFailure(err, `RDS promote ${instance} (${region})`);
        }
        await tag(region, s, PROMOTE_ACCEPTED_TAG, marker);
      };

      const last = await pollUntil(
        progress,
        () => mustRead(region, instance),
        (s) => promoted(s) && s.status === 'available',
        async (s) => {
          progress.status = s.status;
          if (!promoted(s) && requestNeeded(s)) await request(s);
        },
      );
      return {
        instance,
        alreadyPromoted,
        requests: Number(progress.requests),
        requestedBy: last.tags[PROMOTE_REQUESTED_TAG] ?? null,
      };
    },
  };
}

/** After failback: the DR read replica created again from the primary. */
function createRecreateActivities(clients: AwsClients, timing: Partial<RdsReplicaTiming> = {}) {
  const { t, readInstance, mustRead, promoted, pollUntil } = rdsInstances(clients, timing);

  return {
    /**
     * After failback: make the DR instance a read replica of the primary again. RDS cannot demote a promoted
     * instance, so it is deleted with a final snapshot (the writes it took while it was primary are kept there)
     * and a cross-region read replica of the primary is created under the same name and waited for until
     * available. A replica of the primary that drbook never asked to promote is left as it is.
     */
    async recreateRdsReplica({
      region,
      instance,
      source,
    }: {
      region: string;
      instance: string;
      source: { region: string; instance: string };
    }): Promise<{ instance: string; recreated: boolean; finalSnapshot: string | null; replicaOf: string }> {
      const primary = await mustRead(source.region, source.instance);
      const isSource = (id: string | null) => id === source.instance || id === primary.arn;
      const progress: Record<string, unknown> = { instance, waitingFor: 'a read replica of ' + source.instance };
      let finalSnapshot: string | null = null;
      let recreated = false;

      const current = await readInstance(region, instance);
      // A standalone instance, or one drbook asked to promote: never to be trusted as a replica again.
      const replaceable = (s: RdsState) => promoted(s) || PROMOTE_REQUESTED_TAG in s.tags;
      if (current && !replaceable(current) && !isSource(current.replicaOf)) {
        throw failure(
          ErrorType.NotConfigured,
          `RDS ${instance} (${region}) replicates from ${current.replicaOf}, not ${source.instance}: not replaced`,
          { instance, replicaOf: current.replicaOf },
        );
      }
      if (current && replaceable(current)) {
        // Named after the promotion it keeps (the request's time), so every snapshot of this kind is distinct.
        const promotedAt = markedAt(current.tags[PROMOTE_REQUESTED_TAG]) ?? Date.now();
        const stamp = new Date(promotedAt).toISOString().replace(/[-:.]/g, '').toLowerCase();
        const snapshot = `${instance}-promoted-${stamp}`;
        progress.waitingFor = `deleted (final snapshot ${snapshot})`;
        // Found deleting: an earlier attempt deleted it, with the snapshot it named.
        if (current.status !== 'deleting') {
          finalSnapshot = snapshot;
          try {
            await clients.rds(region).send(
              new DeleteDBInstanceCommand({
                DBInstanceIdentifier: instance,
                FinalDBSnapshotIdentifier: snapshot,
                DeleteAutomatedBackups: false,
              }),
            );
          } catch (err) {
            // Gone already: the SDK's own retry of a delete that was accepted (moto answers a cross-region
            // replica's delete with a 500 after removing it), or another attempt's delete.
            if (!isNotFound(err))
              throw awsFailure(err, `RDS delete ${instance} (${region}), final snapshot ${snapshot}`);
          }
        }
        await whileHeartbeating(
          progress,
          aws(`RDS wait deleted ${instance} (${region})`, () =>
            waitUntilDBInstanceDeleted(
              { client: clients.rds(region), maxWaitTime: t.waitMs / 1000, minDelay: 1, maxDelay: 15 },
              { DBInstanceIdentifier: instance },
            ),
          ),
        );
      }
      if (!current || replaceable(current)) {
        progress.waitingFor = 'a read replica of ' + source.instance;
        try {
          await clients.rds(region).send(
            new CreateDBInstanceReadReplicaCommand({
              DBInstanceIdentifier: instance,
              // Cross-region: the source by ARN, from which the SDK derives the source region and pre-signs the URL.
              SourceDBInstanceIdentifier: primary.arn,
              DBInstanceClass: primary.instanceClass,
            }),
          );
          recreated = true;
        } catch (err) {
          // A retry after the create was accepted: the replica exists and is waited for below.
          if (!/^DBInstanceAlreadyExists/.test((err as Error).name ?? ''))
            throw awsFailure(err, `RDS create read replica ${instance} (${region}) of ${primary.arn}`);
        }
      }
      const ready = await pollUntil(
        progress,
        () => mustRead(region, instance),
        (s) => s.status === 'available' && isSource(s.replicaOf) && !replaceable(s),
      );
      return { instance, recreated, finalSnapshot, replicaOf: ready.replicaOf! };
    },
  };
}

export function createRdsReplicaActivities(clients: AwsClients, timing: Partial<RdsReplicaTiming> = {}) {
  return {
    ...createPromoteActivities(clients, timing),
    ...createRecreateActivities(clients, timing),
  };
}

export type RdsReplicaActivities = ReturnType<typeof createRdsReplicaActivities>;
