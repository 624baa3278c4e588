/**
 * The RDS half of a restore test, run on the DR side: restore the newest RDS snapshot held in the
 * DR region into a throw-away instance, wait until it is available, check it, delete it. The
 * instance is named `drbook-restore-test-…`; deleteRestoredRdsInstance refuses any other name.
 */
import {
  DeleteDBInstanceCommand,
  DescribeDBInstancesCommand,
  paginateDescribeDBSnapshots,
  RestoreDBInstanceFromDBSnapshotCommand,
  type DBInstance,
  type DBSnapshot,
} from '@aws-sdk/client-rds';
import { ErrorType } from '../../contract';
import type { AwsClients } from '../aws/clients';
import { aws, awsFailure, failure } from '../errors';
import { heartbeat } from '../process/heartbeat';

export const RESTORED_RDS_INSTANCE = /^drbook-restore-test-[a-z0-9-]{1,40}$/;
const POLL_MS = 5000;

export interface RestoredRdsInstance {
  region: string;
  instance: string;
  snapshot: string;
  snapshotCreatedAt: string | null;
  status: string;
  engine: string | null;
  endpoint: string | null;
  seconds: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The instance as RDS describes it now; null when there is none. */
async function describe(clients: AwsClients, region: string, instance: string): Promise<DBInstance | null> {
  try {
    const out = await clients.rds(region).send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: instance }));
    return out.DBInstances?.[0] ?? null;
  } catch (err) {
    if (/DBInstanceNotFound/.test((err as Error).name)) return null;
    throw awsFailure(err, `RDS instance ${instance} (${region})`);
  }
}

export function createRdsRestoreActivities(clients: AwsClients) {
  return {
    /**
     * Restore the newest available snapshot of `sourceInstance` in the DR region (the nightly backup's
     * copies, `drbook-<service>-…`, or any other snapshot of that instance) into `instance`, and wait
     * until it is available. Idempotent: an instance already restored under that name is waited for.
     */
    async restoreRdsSnapshotInDr({
      service,
      region,
      sourceInstance,
      instance,
    }: {
      service: string;
      region: string;
      sourceInstance: string;
      instance: string;
    }): Promise<RestoredRdsInstance> {
      if (!RESTORED_RDS_INSTANCE.test(instance))
        throw failure(
          ErrorType.InvalidInput,
          `"${instance}" is not a restore-test instance name (drbook-restore-test-…)`,
        );
      const started = performance.now();
      // Every page: a region holding more than one page of snapshots (100) has the newest anywhere in the list.
      const all = await aws(`RDS snapshots (${region})`, async () => {
        const found: DBSnapshot[] = [];
        for await (const page of paginateDescribeDBSnapshots({ client: clients.rds(region) }, { MaxRecords: 100 }))
          found.push(...(page.DBSnapshots ?? []));
        return found;
      });
      const snapshots = all
        .filter(
          (s) =>
            s.Status === 'available' &&
            (s.DBSnapshotIdentifier?.startsWith(`drbook-${service}-`) || s.DBInstanceIdentifier === sourceInstance),
        )
        .sort((a, b) => (b.SnapshotCreateTime?.getTime() ?? 0) - (a.SnapshotCreateTime?.getTime() ?? 0));
      const existing = await describe(clients, region, instance);
      const tagged = existing?.TagList?.find((t) => t.Key === 'drbook:restored-from')?.Value;
      const snapshot = tagged ?? snapshots[0]?.DBSnapshotIdentifier;
      if (!snapshot)
        throw failure(
          ErrorType.ResourceNotFound,
          `no available RDS snapshot of ${sourceInstance} (${service}) in ${region}`,
        );
      const chosen = snapshots.find((s) => s.DBSnapshotIdentifier === snapshot);
      if (!existing) {
        await aws(`RDS snapshot ${snapshot} restore to ${instance} (${region})`, () =>
          clients.rds(region).send(
            new RestoreDBInstanceFromDBSnapshotCommand({
              DBInstanceIdentifier: instance,
              DBSnapshotIdentifier: snapshot,
              DBInstanceClass: 'db.t3.micro',
              PubliclyAccessible: false,
              MultiAZ: false,
              Tags: [
                { Key: 'drbook:service', Value: service },
                { Key: 'drbook:purpose', Value: 'restore-test' },
                { Key: 'drbook:restored-from', Value: snapshot },
              ],
            }),
          ),
        );
      }
      for (;;) {
        const db = await describe(clients, region, instance);
        if (!db)
          throw failure(ErrorType.ResourceNotFound, `RDS instance ${instance} (${region}) disappeared while restoring`);
        if (db.DBInstanceStatus === 'available') {
          return {
            region,
            instance,
            snapshot,
            snapshotCreatedAt: chosen?.SnapshotCreateTime?.toISOString() ?? null,
            status: db.DBInstanceStatus,
            engine: db.Engine ? `${db.Engine} ${db.EngineVersion ?? ''}`.trim() : null,
            endpoint: db.Endpoint?.Address ? `${db.Endpoint.Address}:${db.Endpoint.Port ?? ''}` : null,
            seconds: (performance.now() - started) / 1000,
          };
        }
        if (/failed|incompatible|storage-full/.test(db.DBInstanceStatus ?? ''))
          throw failure(ErrorType.RdsRestoreFailed, `RDS instance ${instance} (${region}) is ${db.DBInstanceStatus}`);
        heartbeat({ instance, status: db.DBInstanceStatus });
        await sleep(POLL_MS);
      }
    },

    /** Delete a restore-test instance (no final snapshot) and wait until it is gone. Idempotent. */
    async deleteRestoredRdsInstance({
      region,
      instance,
    }: {
      region: string;
      instance: string;
    }): Promise<{ instance: string; region: string; deleted: boolean }> {
      if (!RESTORED_RDS_INSTANCE.test(instance))
        throw failure(ErrorType.InvalidInput, `refusing to delete "${instance}": not a restore-test instance`);
      const db = await describe(clients, region, instance);
      if (!db) return { instance, region, deleted: false };
      if (db.DBInstanceStatus !== 'deleting') {
        await aws(`RDS instance ${instance} (${region})`, () =>
          clients.rds(region).send(
            new DeleteDBInstanceCommand({
              DBInstanceIdentifier: instance,
              SkipFinalSnapshot: true,
              DeleteAutomatedBackups: true,
            }),
          ),
        );
      }
      while (await describe(clients, region, instance)) {
        heartbeat({ instance, status: 'deleting' });
        await sleep(POLL_MS);
      }
      return { instance, region, deleted: true };
    },
  };
}

export type RdsRestoreActivities = ReturnType<typeof createRdsRestoreActivities>;
