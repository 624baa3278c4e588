/**
 * The fleet run: N small databases on the stack's primary, one generated inventory with a
 * service per database (written to a file and loaded the way a worker loads it), one
 * `nightlyBackup` with concurrency 8 through Temporal, served by in-process workers on a task
 * queue of the benchmark's own. Reports wall time, orchestration overhead per service (a
 * child's wall time minus the time its activities were running, from its history) and the
 * largest workflow history. Drops the databases, backups and lifecycle rules afterwards.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import {
  GetBucketLifecycleConfigurationCommand,
  PutBucketLifecycleConfigurationCommand,
  DeleteBucketLifecycleCommand,
  type LifecycleRule,
} from '@aws-sdk/client-s3';
import { Client, Connection } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { tsToMs } from '@temporalio/common/lib/time';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import type { Connection as MysqlConnection } from 'mysql2/promise';
import type { LoadedInventory } from '../../config/load';
import { s3ClientFor, awsConnectionFromInventory } from '../../activities/aws/clients';
import { BackupStores } from '../../activities/storage/destinations';
import { buildAdapters } from '../../activities';
import { nightlyBackup } from '../../workflows';
import { drTaskQueue, type NightlyBackupSummary } from '../../contract';
import { absoluteSecrets, benchService, writeInventory } from './inventory';

type HistoryEvent = NonNullable<
  Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>['events']
>[number];

const ms = (e: HistoryEvent) => tsToMs(e.eventTime);

/** Wall time and time inside activities (union of started→closed intervals) of one workflow run. */
function timings(events: HistoryEvent[]): { wallMs: number; activityMs: number } {
  const started = new Map<number, number>();
  const intervals: [number, number][] = [];
  for (const e of events) {
    if (e.activityTaskStartedEventAttributes) started.set(Number(e.eventId), ms(e));
    const closed =
      e.activityTaskCompletedEventAttributes ??
      e.activityTaskFailedEventAttributes ??
      e.activityTaskTimedOutEventAttributes;
    if (closed?.startedEventId) intervals.push([started.get(Number(closed.startedEventId)) ?? ms(e), ms(e)]);
  }
  intervals.sort((a, b) => a[0] - b[0]);
  let activityMs = 0;
  let end = -Infinity;
  for (const [s, f] of intervals) {
    if (f <= end) continue;
    activityMs += f - Math.max(s, end);
    end = f;
  }
  return { wallMs: ms(events[events.length - 1]) - ms(events[0]), activityMs };
}

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];

export async function runFleet(
  base: LoadedInventory,
  conn: MysqlConnection,
  work: string,
  /** `mark`: appended to the wall-time line (a run on a busy machine, scripts/bench/shared-machine.ts). */
  opts: { services: number; concurrency: number; log: (s: string) => void; mark?: string },
): Promise<string[]> {
  const { log } = opts;
  const run = randomUUID().slice(0, 8);
  const names = Array.from({ length: opts.services }, (_, i) => `drfleet_${String(i + 1).padStart(3, '0')}`);
  const lines: string[] = [];

  // 1. The databases: a few hundred rows each, like a small service's, never binlogged.
  let t0 = Date.now();
  await conn.query('SET SESSION sql_log_bin = 0');
  for (const db of names) {
    await conn.query(`CREATE DATABASE IF NOT EXISTS ${db}`);
    await conn.query(
      `CREATE TABLE IF NOT EXISTS ${db}.items (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, price DECIMAL(10,2) ` +
        `NOT NULL, updated_at DATETIME NOT NULL)`,
    );
    await conn.query(
      `INSERT IGNORE INTO ${db}.items SELECT seq, CONCAT('item ', seq, ' ', MD5(seq)), seq / 3, '2024-01-01' + ` +
        `INTERVAL seq MINUTE FROM ${db}.seq_1_to_500`,
    );
  }
  await conn.query('SET SESSION sql_log_bin = 1');
  log(`\nfleet: ${names.length} databases created in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  // 2. The generated inventory, loaded as a worker loads one.
  const inv = absoluteSecrets(base);
  const prefix = `drbench-fleet-${run}/`;
  inv.services = names.map((db) =>
    benchService(inv, db.replace('_', '-'), db, path.join(work, 'fleet-backups'), prefix),
  );
  const loaded = writeInventory(inv, path.join(work, 'fleet-inventory.yaml'));
  const adapters = buildAdapters(loaded);
  const stores = new BackupStores(
    loaded.inventory,
    loaded.baseDir,
    awsConnectionFromInventory(loaded.inventory, loaded.baseDir),
  );

  // nightlyBackup puts the services' archive rules on the buckets: put back what was there afterwards.
  const awsConnection = awsConnectionFromInventory(base.inventory, base.baseDir);
  const shop = inv.services[0].backup!.destinations;
  const buckets = [shop.primary!, shop.offsite!].map((d) => ({ region: d.region, bucket: d.bucket }));
  const savedRules = new Map<string, LifecycleRule[] | null>();
  for (const b of buckets) {
    const s3 = s3ClientFor({ region: b.region }, awsConnection);
    try {
      savedRules.set(
        b.bucket,
        (await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: b.bucket }))).Rules ?? [],
      );
    } catch {
      savedRules.set(b.bucket, null);
    } finally {
      s3.destroy();
    }
  }

  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // installed already
  }
  const { connectionOptions, namespace } = loadClientConnectConfig();
  const connection = await Connection.connect(connectionOptions);
  const client = new Client({ connection, namespace });
  const native = await NativeConnection.connect(connectionOptions);
  const taskQueue = `bench-fleet-${run}`;
  try {
    const workflowBundle = await bundleWorkflowCode({
      workflowsPath: require.resolve('../../workflows'),
      logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: console.error },
    });
    const workers = await Promise.all(
      [taskQueue, drTaskQueue(taskQueue, loaded.inventory.regions.dr)].map((q) =>
        Worker.create({ connection: native, namespace, taskQueue: q, workflowBundle, activities: adapters.activities }),
      ),
    );
    const workflowId = `bench-fleet-${run}`;
    t0 = Date.now();
    const summary: NightlyBackupSummary = await workers[0].runUntil(() =>
      workers[1].runUntil(() =>
        client.workflow.execute(nightlyBackup, {
          taskQueue,
          workflowId,
          args: [{ concurrency: opts.concurrency, snapshots: false }],
          workflowExecutionTimeout: '1h',
        }),
      ),
    );
    const wallSeconds = (Date.now() - t0) / 1000;

    // 3. Histories: every run of the parent (continue-as-new chain) and every child.
    let parentMax = 0;
    let parentRuns = 0;
    const described = await client.workflow.getHandle(workflowId).describe();
    let runId: string | undefined = described.raw.workflowExecutionInfo?.firstRunId || described.runId;
    while (runId) {
      const events: HistoryEvent[] = (await client.workflow.getHandle(workflowId, runId).fetchHistory()).events ?? [];
      parentRuns++;
      parentMax = Math.max(parentMax, events.length);
      runId = events[events.length - 1]?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
    }
    const overheads: number[] = [];
    const walls: number[] = [];
    let childMax = 0;
    for (const s of summary.succeeded) {
      const h = await client.workflow.getHandle(`backup-${s.service}-${summary.backupId}`).fetchHistory();
      const events = h.events ?? [];
      childMax = Math.max(childMax, events.length);
      const t = timings(events);
      walls.push(t.wallMs);
      overheads.push(t.wallMs - t.activityMs);
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    lines.push(
      '',
      `fleet: ${names.length} services, one nightlyBackup, concurrency ${opts.concurrency}, batchSize 100 ` +
        `(continue-as-new), snapshots off`,
      `  succeeded ${summary.succeeded.length}, failed ${summary.failed.length}` +
        (summary.failed.length ? ` (first: ${summary.failed[0].service}: ${summary.failed[0].reason})` : '') +
        `, runs ${summary.runs}`,
      `  wall time ${wallSeconds.toFixed(1)} s (${((wallSeconds * 1000) / names.length).toFixed(0)} ms per ` +
        `service at concurrency ${opts.concurrency})${opts.mark ?? ''}`,
      `  per service (child workflow): wall median ${pct(walls, 50)} ms, p95 ${pct(walls, 95)} ms; orchestration ` +
        `overhead (wall − time in activities) mean ${mean(overheads).toFixed(0)} ms, median ${pct(overheads, 50)} ` +
        `ms, p95 ${pct(overheads, 95)} ms`,
      `  largest history: parent ${parentMax} events (${parentRuns} runs), child ${childMax} events`,
    );
    for (const l of lines) log(l);
  } finally {
    await native.close();
    await connection.close();
    // 4. Clean up: backups, databases, lifecycle rules.
    for (const svc of loaded.inventory.services) {
      for (const store of stores.forService(svc.name)) {
        const objects = await store.list(`${svc.name}/`).catch(() => []);
        await store.remove(objects.map((o) => o.key)).catch(() => undefined);
      }
    }
    stores.destroy();
    await adapters.close();
    await conn.query('SET SESSION sql_log_bin = 0');
    for (const db of names) await conn.query(`DROP DATABASE IF EXISTS ${db}`);
    await conn.query('SET SESSION sql_log_bin = 1');
    for (const b of buckets) {
      const s3 = s3ClientFor({ region: b.region }, awsConnection);
      const rules = savedRules.get(b.bucket);
      try {
        if (rules && rules.length)
          await s3.send(
            new PutBucketLifecycleConfigurationCommand({ Bucket: b.bucket, LifecycleConfiguration: { Rules: rules } }),
          );
        else await s3.send(new DeleteBucketLifecycleCommand({ Bucket: b.bucket }));
      } catch (err) {
        log(`  (could not restore the lifecycle of ${b.bucket}: ${(err as Error).message})`);
      } finally {
        s3.destroy();
      }
    }
    log(`fleet: cleaned up (databases dropped, backups removed, bucket lifecycles restored)`);
  }
  return lines;
}
