/**
 * Point-in-time recovery against the real stack: shop with the binlog archive on is backed up by
 * serviceBackup, a marker row is written, then another, the binlogs are archived, and restoreTest
 * replays the archive onto the restored dump up to a point between the two markers (by GTID and by
 * time): the first marker is there, the second is not. Replayed to the end of the archive, both are
 * there; a point past the archive's end fails at `pitr-reached`. Under a prefix and directory of the
 * test's own; the archive made by the binlogArchive runbook; markers deleted and objects removed afterwards.
 */
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import type { RowDataPacket } from 'mysql2/promise';
import { reportRoot } from '../../activities/reports/restore-test';
import { binlogArchive, restoreTest, serviceBackup } from '../../workflows';
import type { RestoreTestReport, RestoreTestResult, RunbookStatus } from '../../contract';
import { isolatedBackups } from '../helpers/backups';
import { buildAdapters, sandbox, sql, temporal, type TemporalHarness } from '../helpers/stack';

jest.setTimeout(600_000);

const tag = randomUUID().slice(0, 8);
const BEFORE = `pitr-before-${tag}`;
const AFTER = `pitr-after-${tag}`;
/** The marker checks by name: the first marker there; the second absent (0) or there too (1). */
const markerQueries = (after: 0 | 1) => ['before-marker', after ? 'after-marker-there' : 'after-marker'];
const base = sandbox();
const { loaded, local, stores } = isolatedBackups(
  base,
  (inv) => {
    const shop = inv.services.find((s) => s.name === 'shop')!;
    shop.backup!.binlogArchive = true;
    delete shop.rds; // the RDS restore is restore-test.test.ts's subject
    // A restoreTest input names its point-in-time checks; the SQL lives in the inventory.
    shop.restoreTest!.pointInTimeQueries = [
      { name: 'before-marker', sql: `SELECT COUNT(*) FROM orders WHERE customer = '${BEFORE}'`, expect: 1 },
      { name: 'after-marker', sql: `SELECT COUNT(*) FROM orders WHERE customer = '${AFTER}'`, expect: 0 },
      { name: 'after-marker-there', sql: `SELECT COUNT(*) FROM orders WHERE customer = '${AFTER}'`, expect: 1 },
    ];
  },
  'drbook-pitr-test',
);
const adapters = buildAdapters(loaded);
let h: TemporalHarness;

beforeAll(async () => {
  h = await temporal(loaded);
});

afterAll(async () => {
  const conn = await sql(base, 'db-primary');
  await conn.query('DELETE FROM shop.orders WHERE customer IN (?, ?)', [BEFORE, AFTER]);
  await conn.end();
  for (const store of stores.forService('shop')) {
    const objects = await store.list('shop/').catch(() => []);
    await store.remove(objects.map((o) => o.key)).catch(() => undefined);
  }
  rmSync(local, { recursive: true, force: true });
  stores.destroy();
  await h?.close();
  await adapters.close();
});

async function runRestoreTest(input: Parameters<typeof restoreTest>[0]) {
  const workflowId = `restore-pitr-${randomUUID()}`;
  return h.client.workflow
    .execute(restoreTest, { args: [input], taskQueue: h.taskQueue, workflowId, workflowExecutionTimeout: '240s' })
    .then(
      (result) => ({ workflowId, result, failure: null }),
      (err: unknown) => ({ workflowId, result: null as RestoreTestResult | null, failure: err }),
    );
}

async function storedReport(testId: string): Promise<RestoreTestReport> {
  const text = await stores.store('shop', 'primary').get(`${reportRoot('shop')}${testId}.json`);
  return JSON.parse(text!) as RestoreTestReport;
}

test(
  'restoreTest replays the binlog archive to a GTID or a time between two marker rows: ' +
    'the first is restored, the second not; to the end of the archive, both; past its end, pitr-reached fails',
  async () => {
    await h.withWorkers(adapters.activities, async () => {
      await h.client.workflow.execute(serviceBackup, {
        args: [{ service: 'shop', backupId: '20240401T030000Z', snapshots: false }],
        taskQueue: h.taskQueue,
        workflowId: `backup-pitr-${randomUUID()}`,
        workflowExecutionTimeout: '120s',
      });

      // Two markers after the backup, with a point between them: a GTID, and a second boundary in time
      // (binlog events carry whole seconds, so the second marker waits for the server's clock to pass it).
      const conn = await sql(base, 'db-primary');
      let pointGtid: string;
      let pointTime: string;
      try {
        await conn.query("INSERT INTO shop.orders (customer, amount_cents, source) VALUES (?, 1, 'pitr-test')", [
          BEFORE,
        ]);
        const [[g]] = await conn.query<RowDataPacket[]>('SELECT @@last_gtid AS g, UNIX_TIMESTAMP(NOW(6)) AS t');
        pointGtid = String(g.g);
        const boundary = Math.floor(Number(g.t)) + 1;
        pointTime = new Date(boundary * 1000).toISOString();
        await conn.query('SELECT SLEEP(?)', [boundary - Number(g.t) + 0.05]);
        await conn.query("INSERT INTO shop.orders (customer, amount_cents, source) VALUES (?, 1, 'pitr-test')", [
          AFTER,
        ]);
      } finally {
        await conn.end();
      }
      expect(pointGtid).toMatch(/^\d+-\d+-\d+$/);
      // The scheduled runbook archives them (FLUSH BINARY LOGS closes the log holding the markers).
      const archived = await h.client.workflow.execute(binlogArchive, {
        args: [{ services: ['shop'] }],
        taskQueue: h.taskQueue,
        workflowId: `binlog-archive-pitr-${randomUUID()}`,
        workflowExecutionTimeout: '120s',
      });
      expect(archived.archived[0].copied.length).toBeGreaterThan(0);

      // 1. To the GTID of the first marker's transaction.
      const byGtid = await runRestoreTest({
        service: 'shop',
        pointInTime: { gtid: pointGtid, queries: markerQueries(0) },
      });
      expect(byGtid.failure).toBeNull();
      expect(byGtid.result).toMatchObject({ outcome: 'passed', failedCheck: null });
      const r1 = await storedReport(byGtid.result!.testId);
      const checks1 = Object.fromEntries(r1.checks.map((c) => [c.name, c]));
      for (const name of [
        'row-counts',
        'pitr-replay',
        'pitr-reached',
        'pitr-query:before-marker',
        'pitr-query:after-marker',
      ])
        expect([name, checks1[name]?.ok]).toEqual([name, true]);
      expect(r1.pitr).toMatchObject({ target: { kind: 'gtid', value: pointGtid }, reached: true, lastGtid: pointGtid });
      expect(r1.pitr!.logs[0]).toBe(`${r1.backup.position!.binlogFile}@${r1.backup.position!.binlogCreatedAt}`);
      expect(r1.cleanup.every((c) => c.done)).toBe(true);
      const status = await h.client.workflow.getHandle(byGtid.workflowId).query<RunbookStatus>('status');
      expect(status.steps.map((s) => s.name)).toEqual([
        'pickNewestVerifiedBackup',
        'fetchManifest',
        'verifyBackupChecksum',
        'restoreIntoScratch',
        'validateRestore',
        'replayBinlogsToPoint',
        'validatePointInTime',
        'dropScratchDatabase',
        'publishRestoreReport',
      ]);

      // 2. To the second between the markers.
      const byTime = await runRestoreTest({
        service: 'shop',
        pointInTime: { time: pointTime, queries: markerQueries(0) },
      });
      expect(byTime.failure).toBeNull();
      const r2 = await storedReport(byTime.result!.testId);
      expect(r2.pitr).toMatchObject({ target: { kind: 'time', value: pointTime }, reached: true });
      expect(Date.parse(r2.pitr!.lastEventAt!)).toBeLessThan(Date.parse(pointTime));

      // 3. To the end of the archive: both markers.
      const toEnd = await runRestoreTest({ service: 'shop', pointInTime: { queries: markerQueries(1) } });
      expect(toEnd.failure).toBeNull();
      const r3 = await storedReport(toEnd.result!.testId);
      expect(r3.pitr).toMatchObject({ target: { kind: 'end', value: null }, reached: true });
      expect(r3.checks.find((c) => c.name === 'rpo-archive-age')).toMatchObject({ gate: false });

      // 4. A point the archive does not reach yet.
      const later = new Date(Date.now() + 3600_000).toISOString();
      const tooLate = await runRestoreTest({ service: 'shop', pointInTime: { time: later } });
      expect(tooLate.failure).toBeInstanceOf(WorkflowFailedError);
      const cause = (tooLate.failure as WorkflowFailedError).cause;
      expect(cause).toBeInstanceOf(ApplicationFailure);
      expect((cause as ApplicationFailure).type).toBe('RestoreTestFailed');
      expect((cause as ApplicationFailure).message).toMatch(
        /failed at check pitr-reached: the archive ends at .* \(archive binlogs more often\)/,
      );
    });
  },
);

test(
  'pointInTime.queries name inventory queries: ' + 'ad-hoc SQL and unknown names are refused before anything runs',
  async () => {
    await h.withWorkers(adapters.activities, async () => {
      // What an attacker would ask for: the admin user's view of the server, its first cell into history.
      const hashes = { name: 'hashes', sql: 'SELECT authentication_string FROM mysql.user LIMIT 1', expect: 'x' };
      const adHoc = await runRestoreTest({ service: 'shop', pointInTime: { queries: [hashes] } });
      const unknown = await runRestoreTest({ service: 'shop', pointInTime: { queries: ['before-marker', 'users'] } });
      for (const [run, named] of [
        [adHoc, /pointInTime\.queries\.0: ad-hoc SQL is not accepted/],
        [unknown, /pointInTime\.queries\.1: no inventory query named "users" \(known: orders-have-customers, before-/],
      ] as const) {
        expect(run.failure).toBeInstanceOf(WorkflowFailedError);
        const cause = (run.failure as WorkflowFailedError).cause as ApplicationFailure;
        expect({ type: cause.type, message: cause.message }).toEqual({
          type: 'InvalidInput',
          message: expect.stringMatching(named),
        });
        const scheduled = (await h.client.workflow.getHandle(run.workflowId).fetchHistory()).events!.flatMap(
          (e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? [],
        );
        expect(scheduled).toEqual(['describeService']);
      }
    });
  },
);

test(
  'a log missing from the archive between the backup ' + 'and the point is refused before anything is replayed',
  async () => {
    // Each archive run flushes, so three runs leave at least three closed logs in the archive, whatever
    // the server's binlog history (a fresh CI server may have only one or two before this test).
    for (let i = 0; i < 3; i++) await adapters.activities.archiveBinlogs({ service: 'shop' });
    const r3 = (await stores.store('shop', 'local').list('shop/binlog/'))
      .map((o) => o.key)
      .filter((k) => /binlog\.\d+@\d{8}T\d{6}Z$/.test(k))
      .sort();
    expect(r3.length).toBeGreaterThanOrEqual(3);
    const [first, middle] = r3.slice(-3);
    await stores.store('shop', 'local').remove([middle]);
    const server = first.split('/')[2];
    const [firstLog, firstCreated] = path.basename(first).split('@');
    const gap = await adapters.activities
      .replayBinlogsToPoint({
        service: 'shop',
        destination: 'local',
        sourceServer: server,
        server: 'db-restore-scratch',
        databases: [{ source: 'shop', scratch: 'restore_shop_gaptest' }],
        from: { gtid: '0-1-1', binlogFile: firstLog, binlogPos: 4, binlogCreatedAt: firstCreated },
      })
      .catch((err: unknown) => err);
    expect(gap).toBeInstanceOf(ApplicationFailure);
    expect((gap as ApplicationFailure).type).toBe('PitrArchiveGap');
    expect((gap as ApplicationFailure).message).toContain(`lacks the logs between ${path.basename(first)} and`);
  },
);

test('database names from a manifest that are not plain identifiers are refused before any log is read', async () => {
  // `--rewrite-db=shop->mysql->restore_…` would replay shop's events into another database; `--…` reads as an option.
  for (const source of ['shop->mysql', '--no-defaults', 'shop` ; DROP DATABASE x', 'shop\nmysql']) {
    const refused = await adapters.activities
      .replayBinlogsToPoint({
        service: 'shop',
        destination: 'local',
        sourceServer: 'db-primary',
        server: 'db-scratch',
        databases: [{ source, scratch: 'restore_shop_hostile' }],
        from: { gtid: '0-1-1', binlogFile: 'binlog.000001', binlogPos: 4 },
      })
      .catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(ApplicationFailure);
    expect({ type: (refused as ApplicationFailure).type, message: (refused as ApplicationFailure).message }).toEqual({
      type: 'InvalidInput',
      message: expect.stringContaining(JSON.stringify(source)),
    });
  }
});
