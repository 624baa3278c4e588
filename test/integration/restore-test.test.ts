/**
 * The monthly restore test against the real stack: backups made by the nightly runbook (and by its
 * activities) in s3proxy and the local file system, restored through Temporal into the real scratch
 * MariaDB, validated, reported (JSON/Markdown/HTML in the primary destination), cleaned up; corrupt,
 * truncated and mis-counted backups fail with the check named and alert; a cancelled restore still
 * drops its scratch database; the RDS path restores a snapshot in moto's DR region and deletes it.
 * Everything lives under a prefix and directory of the test's own and is removed afterwards.
 */
import { randomUUID } from 'node:crypto';
import { DeleteDBSnapshotCommand, DescribeDBInstancesCommand } from '@aws-sdk/client-rds';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { RowDataPacket } from 'mysql2/promise';
import { AwsClients, awsConnectionFromInventory } from '../../activities/aws/clients';
import { rdsSnapshotId } from '../../activities/aws/snapshots';
import { reportRoot } from '../../activities/reports/restore-test';
import { manifestKey, signatureKey } from '../../activities/storage/layout';
import { restoreTest, serviceBackup } from '../../workflows';
import type { BackupManifest, RestoreTestReport, RestoreTestResult, RunbookStatus } from '../../contract';
import { isolatedBackups, publishBackup } from '../helpers/backups';
import { buildAdapters, eventually, sandbox, sql, temporal, type TemporalHarness } from '../helpers/stack';

jest.setTimeout(120_000);

const base = sandbox();
const BULK_DB = `drbook_restore_bulk_${randomUUID().slice(0, 6)}`;

/** The sandbox inventory with backups under a prefix of this test's own, plus `bulk` (a big database). */
function isolated() {
  return isolatedBackups(
    base,
    (inventory) => {
      const shop = inventory.services.find((s) => s.name === 'shop')!;
      const bulk = structuredClone(shop);
      bulk.name = 'bulk';
      delete bulk.rds;
      delete bulk.backup!.volumeTags;
      bulk.backup!.databases = [BULK_DB];
      bulk.restoreTest!.queries = [];
      inventory.services.push(bulk);
    },
    'drbook-restore-test',
  );
}

const t = isolated();
const adapters = buildAdapters(t.loaded);
const awsClients = new AwsClients(awsConnectionFromInventory(base.inventory, base.baseDir));
const alerts: { target: string; subject: string; message: string }[] = [];
/** The real activities; notifyTarget also records what it was asked to send. */
const activities = {
  ...adapters.activities,
  notifyTarget: async (args: Parameters<typeof adapters.activities.notifyTarget>[0]) => {
    alerts.push({ target: args.target, subject: args.subject, message: args.message });
    return adapters.activities.notifyTarget(args);
  },
};
let h: TemporalHarness;
const rdsSnapshots: { region: string; id: string }[] = [];

/**
 * A verified backup of `service` made by the backup activities themselves (dump → verify each copy → signed manifest).
 */
async function makeBackup(service: string, backupId: string): Promise<BackupManifest> {
  return publishBackup(adapters.activities, await adapters.activities.dumpDatabase({ service, backupId }));
}

async function scratchDatabases(like: string): Promise<string[]> {
  const conn = await sql(base, 'db-restore-scratch');
  try {
    const [rows] = await conn.query<RowDataPacket[]>(
      'SELECT SCHEMA_NAME AS s FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?',
      [like],
    );
    return rows.map((r) => String(r.s));
  } finally {
    await conn.end();
  }
}

async function storedReport(service: string, testId: string) {
  const store = t.stores.store(service, 'primary');
  const root = reportRoot(service);
  const [json, md, html] = await Promise.all(['json', 'md', 'html'].map((ext) => store.get(`${root}${testId}.${ext}`)));
  return { json: JSON.parse(json!) as RestoreTestReport & { history: { id: string }[] }, md: md!, html: html! };
}

/** Run restoreTest to its end; a failed run's failure is returned, not thrown. */
async function runRestoreTest(input: Parameters<typeof restoreTest>[0], workflowId = `restore-${randomUUID()}`) {
  return h.client.workflow
    .execute(restoreTest, { args: [input], taskQueue: h.taskQueue, workflowId, workflowExecutionTimeout: '100s' })
    .then(
      (result) => ({ result, failure: null }),
      (err: unknown) => ({ result: null as RestoreTestResult | null, failure: err }),
    );
}

beforeAll(async () => {
  h = await temporal(t.loaded);
});

afterAll(async () => {
  for (const s of rdsSnapshots)
    await awsClients
      .rds(s.region)
      .send(new DeleteDBSnapshotCommand({ DBSnapshotIdentifier: s.id }))
      .catch(() => undefined);
  const conn = await sql(base, 'db-primary');
  await conn.query('SET SESSION sql_log_bin = 0');
  await conn.query(`DROP DATABASE IF EXISTS \`${BULK_DB}\``);
  await conn.end();
  await t.cleanUp();
  awsClients.destroy();
  await h?.close();
  await adapters.close();
});

describe('restoreTest on the local stack', () => {
  test(
    'a nightly backup restores into scratch, validates, is reported with restore time and backup age, and is ' +
      'cleaned up; the RDS snapshot is restored in the DR region and deleted',
    async () => {
      await h.withWorkers(activities, async () => {
        // The nightly runbook's own per-service workflow makes the backup.
        const backupId = '20240301T030000Z';
        await h.client.workflow.execute(serviceBackup, {
          args: [{ service: 'shop', backupId, snapshots: false }],
          taskQueue: h.taskQueue,
          workflowId: `backup-${randomUUID()}`,
          workflowExecutionTimeout: '90s',
        });
        // An RDS snapshot of shop-db in the DR region, as the nightly run leaves one.
        const snapId = '20240301T030001Z';
        const snap = await adapters.activities.snapshotRdsInstance({
          service: 'shop',
          backupId: snapId,
          region: base.inventory.regions.primary,
          instance: 'shop-db',
        });
        rdsSnapshots.push({ region: snap.region, id: snap.id });
        const copy = await adapters.activities.copyRdsSnapshotToDr({
          source: snap,
          drRegion: base.inventory.regions.dr,
        });
        rdsSnapshots.push({ region: copy.region, id: copy.id });
        expect(copy.id).toBe(rdsSnapshotId('shop', snapId));

        const workflowId = `restore-${randomUUID()}`;
        const { result, failure } = await runRestoreTest({ service: 'shop' }, workflowId);
        expect(failure).toBeNull();
        expect(result).toMatchObject({ service: 'shop', outcome: 'passed', backupId, failedCheck: null });
        expect(result!.measured.restoreSeconds).toBeGreaterThan(0);
        expect(result!.measured.rtoSeconds).toBeGreaterThanOrEqual(result!.measured.restoreSeconds!);
        expect(result!.measured.backupAgeSeconds).toBeGreaterThanOrEqual(0);
        expect(result!.measured.bytesRestored).toBeGreaterThan(10_000);
        expect(result!.report!.html).toMatch(
          new RegExp(`^s3://drbook-backups-use1/${t.prefix}shop/reports/restore-test/${result!.testId}\\.html$`),
        );
        expect(alerts).toEqual([]);

        const status = await h.client.workflow.getHandle(workflowId).query<RunbookStatus>('status');
        expect(status.steps.map((s) => [s.name, s.state])).toEqual([
          ['pickNewestVerifiedBackup', 'succeeded'],
          ['fetchManifest', 'succeeded'],
          ['verifyBackupChecksum', 'succeeded'],
          ['restoreIntoScratch', 'succeeded'],
          ['validateRestore', 'succeeded'],
          ['restoreRdsSnapshotInDr', 'succeeded'],
          ['dropScratchDatabase', 'succeeded'],
          ['deleteRestoredRdsInstance', 'succeeded'],
          ['publishRestoreReport', 'succeeded'],
        ]);
        expect(status.measured.rtoSeconds).toBe(result!.measured.rtoSeconds);

        const { json, md, html } = await storedReport('shop', result!.testId);
        const byName = Object.fromEntries(json.checks.map((c) => [c.name, c]));
        for (const name of ['backup-available', 'checksum', 'restore', 'schema-present', 'row-counts', 'rds-restore'])
          expect([name, byName[name]?.ok]).toEqual([name, true]);
        expect(byName['query:orders-have-customers']).toMatchObject({ ok: true, gate: true });
        expect(byName['row-counts'].detail).toMatch(/tables, \d+ rows, all equal to the manifest/);
        // shop is critical (RPO 5 min) and warm: the age is evidence, reported, not a failure.
        expect(byName['rpo-backup-age']).toMatchObject({ gate: false });
        expect(json.rds).toMatchObject({
          snapshot: expect.stringMatching(/^drbook-shop-/),
          status: 'available',
          deleted: true,
        });
        expect(json.cleanup.every((c) => c.done)).toBe(true);
        expect(json.cleanup.map((c) => c.detail).join(' ')).toContain(`dropped ${json.scratch!.databases[0].scratch}`);
        expect(md).toContain('restore time (RTO evidence');
        expect(md).toContain('backup age at test time (RPO evidence)');
        expect(html).toMatch(/^<!doctype html>/);
        expect(html).toContain('<p class="banner passed">PASSED');
        expect(html).not.toMatch(/<script|src=|href=/);

        // Nothing left behind: no scratch database, no restored RDS instance.
        expect(json.scratch!.databases[0].scratch).toMatch(/^restore_shop_[a-z0-9]{8}$/);
        expect(await scratchDatabases(json.scratch!.databases[0].scratch)).toEqual([]);
        const instances = await awsClients.rds(base.inventory.regions.dr).send(new DescribeDBInstancesCommand({}));
        expect((instances.DBInstances ?? []).map((i) => i.DBInstanceIdentifier)).not.toContain(json.rds!.instance);
      });
    },
  );

  test.each([
    ['one flipped byte', 'checksum'],
    ['a truncated object', 'checksum'],
    ['manifest row counts that disagree', 'row-counts'],
    ['a manifest rewritten in the bucket', 'manifest'],
  ] as const)(
    'a backup with %s fails at check %s, alerts naming it, and leaves no scratch database',
    async (what, checkName) => {
      const backupId =
        {
          'one flipped byte': '20240302T030000Z',
          'a truncated object': '20240303T030000Z',
          'a manifest rewritten in the bucket': '20240306T030000Z',
        }[what as string] ?? '20240304T030000Z';
      const manifest = await makeBackup('shop', backupId);
      const primary = t.stores.store('shop', 'primary');
      if (what === 'manifest row counts that disagree' || what === 'a manifest rewritten in the bucket') {
        const wrong = structuredClone(manifest);
        wrong.tables.find((x) => x.table === 'orders')!.rows += 1;
        const body = JSON.stringify(wrong);
        await primary.put(manifestKey('shop', backupId), body);
        // Signed with the worker's own key, the wrong counts reach the row-count check; unsigned, nothing does.
        if (what === 'manifest row counts that disagree')
          await primary.put(signatureKey('shop', backupId), t.stores.keyring.sign(body));
      } else {
        const chunks: Buffer[] = [];
        for await (const c of await primary.read(manifest.object.key)) chunks.push(c as Buffer);
        const bytes = Buffer.concat(chunks);
        const damaged = what === 'one flipped byte' ? Buffer.from(bytes) : bytes.subarray(0, bytes.length - 100);
        if (what === 'one flipped byte') damaged[Math.floor(damaged.length / 2)] ^= 0x01;
        const w = primary.openWriter(manifest.object.key, () => undefined);
        w.stream.end(damaged);
        await w.finish();
      }
      alerts.length = 0;
      const { failure } = await h.withWorkers(activities, () =>
        runRestoreTest({ service: 'shop', backupId, rds: false }),
      );
      expect(failure).toBeInstanceOf(WorkflowFailedError);
      const cause = (failure as WorkflowFailedError).cause as ApplicationFailure;
      expect(cause.type).toBe('RestoreTestFailed');
      expect(cause.message).toContain(`failed at check ${checkName}`);
      const result = cause.details![0] as RestoreTestResult;
      expect(result).toMatchObject({ outcome: 'failed', failedCheck: checkName, backupId });
      if (checkName === 'row-counts') expect(cause.message).toMatch(/shop\.orders: manifest \d+, restored \d+/);
      else if (checkName === 'manifest')
        expect(cause.message).toMatch(/manifest\.json: the signature does not verify with any backup-signing key/);
      else expect(cause.message).toMatch(/the manifest says \d+ bytes with SHA-256/);

      // Every notification target was alerted, naming the check and linking the report.
      expect(alerts.map((a) => a.target).sort()).toEqual(base.inventory.notifications.map((n) => n.name).sort());
      for (const a of alerts) {
        expect(a.subject).toContain(`FAILED at check ${checkName}`);
        expect(a.message).toContain(result.report!.html);
      }
      const { json } = await storedReport('shop', result.testId);
      expect(json.checks.find((c) => c.name === checkName)).toMatchObject({ ok: false, gate: true });
      expect(json.history.length).toBeGreaterThanOrEqual(1); // the earlier tests of shop
      if (checkName === 'checksum' || checkName === 'manifest') {
        expect(json.scratch).toBeNull(); // nothing restored from a corrupt object or an unauthenticated manifest
        expect(json.checks.map((c) => c.name)).not.toContain('restore');
      } else {
        expect(json.cleanup).toEqual([{ done: true, detail: expect.stringContaining('dropped restore_shop_') }]);
        expect(await scratchDatabases(json.scratch!.databases[0].scratch)).toEqual([]);
      }
    },
  );

  test('cancelling the workflow mid-restore still drops the scratch database', async () => {
    // A database big enough that its restore takes seconds: generated server-side, kept out of the binlog.
    const conn = await sql(base, 'db-primary');
    try {
      await conn.query('SET SESSION sql_log_bin = 0');
      await conn.query(`CREATE DATABASE \`${BULK_DB}\``);
      await conn.query(
        `CREATE TABLE \`${BULK_DB}\`.events (id INT PRIMARY KEY, kind VARCHAR(32) NOT NULL, payload TEXT NOT ` +
          `NULL, KEY (kind))`,
      );
      await conn.query(
        `INSERT INTO \`${BULK_DB}\`.events SELECT seq, ELT(1 + seq % 4, 'view', 'cart', 'checkout', 'login'), ` +
          `CONCAT(SHA2(seq, 256), REPEAT(MD5(seq), 4)) FROM \`${BULK_DB}\`.seq_1_to_300000`,
      );
    } finally {
      await conn.end();
    }
    await makeBackup('bulk', '20240305T030000Z');

    const workflowId = `restore-${randomUUID()}`;
    await h.withWorkers(activities, async () => {
      const handle = await h.client.workflow.start(restoreTest, {
        args: [{ service: 'bulk', parallel: 1 }],
        taskQueue: h.taskQueue,
        workflowId,
        workflowExecutionTimeout: '100s',
      });
      // Cancel once the restore is running and rows are arriving in the scratch database.
      const scratch = await eventually(
        async () => {
          // (no `status` until the run has looked its service up)
          const s = await handle.query<RunbookStatus>('status').catch(() => null);
          if (!s?.steps.some((x) => x.name === 'restoreIntoScratch' && x.state === 'running')) return null;
          const c = await sql(base, 'db-restore-scratch');
          try {
            const [rows] = await c.query<RowDataPacket[]>(
              'SELECT TABLE_SCHEMA AS s FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE ' +
                "'restore\\_bulk\\_%' AND TABLE_NAME = 'events' AND TABLE_ROWS > 0",
            );
            return rows[0] ? String(rows[0].s) : null;
          } finally {
            await c.end();
          }
        },
        60_000,
        'the restore to be loading rows',
      );
      await handle.cancel();
      const failure = await handle.result().catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(WorkflowFailedError);
      expect((failure as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);

      expect(await scratchDatabases(scratch)).toEqual([]);
      const status = await handle.query<RunbookStatus>('status');
      const steps = Object.fromEntries(status.steps.map((s) => [s.name, s.state]));
      expect(steps).toMatchObject({ restoreIntoScratch: 'failed', dropScratchDatabase: 'succeeded' });
      expect(status.phase).toBe('cancelled');
    });
    // The report says what happened, clean-up included; a cancellation is not an alert.
    const store = t.stores.store('bulk', 'primary');
    const keys = (await store.list(reportRoot('bulk'))).map((o) => o.key).filter((k) => k.endsWith('.json'));
    expect(keys).toHaveLength(1);
    const report = JSON.parse((await store.get(keys[0]))!) as RestoreTestReport;
    expect(report).toMatchObject({ outcome: 'cancelled', failedCheck: null });
    expect(report.cleanup).toEqual([
      { done: true, detail: expect.stringContaining(`dropped ${report.scratch!.databases[0].scratch}`) },
    ]);
    expect(alerts.filter((a) => a.subject.includes('bulk'))).toEqual([]);
  });
});
