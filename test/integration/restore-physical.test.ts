/**
 * A physical backup restored into a scratch MariaDB instance of its own, on the real stack: shop is
 * copied by mariabackup (takePhysicalBackup), a marker row written before the copy is there and one
 * written after is not, every table's row count equals the source's at the copy, the copy is at the
 * manifest's GTID, and nothing is left behind (no mariadbd, no directory) — also when the object is
 * corrupt (refused before any instance starts). Then restoreTest, for a service with physical backups,
 * restores the newest one made by serviceBackup the same way after the logical restore and reports it.
 * Under a prefix and directory of the test's own.
 */
import { execSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { RowDataPacket } from 'mysql2/promise';
import { reportRoot } from '../../activities/reports/restore-test';
import { restoreTest, serviceBackup } from '../../workflows';
import type { RestoreTestReport, RunbookStatus } from '../../contract';
import { isolatedBackups, publishBackup } from '../helpers/backups';
import { buildAdapters, failureType, sandbox, sql, temporal, type TemporalHarness } from '../helpers/stack';

jest.setTimeout(600_000);

const base = sandbox();
const { loaded, local, stores } = isolatedBackups(
  base,
  (inv) => {
    const shop = inv.services.find((s) => s.name === 'shop')!;
    shop.backup!.physical = true;
    delete shop.rds; // the RDS restore is restore-test.test.ts's subject
  },
  'drbook-physical-restore-test',
);
const shop = loaded.inventory.services.find((s) => s.name === 'shop')!;
const adapters = buildAdapters(loaded);
const tag = randomUUID().slice(0, 8);
const BEFORE = `physical-before-${tag}`;
const AFTER = `physical-after-${tag}`;

/** Scratch instances this activity could have left: its work directories, and mariadbd processes on them. */
function leftovers(): string[] {
  const dirs = readdirSync(tmpdir()).filter((d) => d.startsWith('drbook-physical-') && !d.includes('test'));
  const procs = execSync('ps -eo args', { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.startsWith('mariadbd') && l.includes('/drbook-physical-'));
  return [...dirs, ...procs];
}

let h: TemporalHarness;
beforeAll(async () => {
  h = await temporal(loaded);
});

afterAll(async () => {
  await h?.close();
  const conn = await sql(base, 'db-primary');
  await conn.query('DELETE FROM shop.orders WHERE customer IN (?, ?)', [BEFORE, AFTER]);
  await conn.end();
  for (const store of stores.forService('shop')) {
    const objects = await store.list('shop/').catch(() => []);
    await store.remove(objects.map((o) => o.key)).catch(() => undefined);
  }
  rmSync(local, { recursive: true, force: true });
  stores.destroy();
  await adapters.close();
});

test(
  'a mariabackup copy restores into a scratch instance with the source rows at the copy, its GTID, and no trace ' +
    'left; a corrupt copy is refused before any instance starts',
  async () => {
    const a = adapters.activities;
    const before = leftovers();
    const conn = await sql(base, 'db-primary');
    let expected: { database: string; table: string; rows: number }[];
    try {
      await conn.query("INSERT INTO shop.orders (customer, amount_cents, source) VALUES (?, 1, 'physical-test')", [
        BEFORE,
      ]);
      const [tables] = await conn.query<RowDataPacket[]>(
        "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop' AND TABLE_TYPE = " +
          "'BASE TABLE'",
      );
      expected = [];
      for (const { t } of tables as { t: string }[]) {
        const [[c]] = await conn.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM shop.\`${t}\``);
        expected.push({ database: 'shop', table: t, rows: Number(c.n) });
      }
    } finally {
      await conn.end();
    }
    const backupId = '20240501T030000Z';
    const p = await a.takePhysicalBackup({ service: 'shop', backupId });
    await publishBackup(a, p, 'physical'); // verified and signed: a restore reads the signed manifest first
    const after = await sql(base, 'db-primary');
    await after.query("INSERT INTO shop.orders (customer, amount_cents, source) VALUES (?, 1, 'physical-test')", [
      AFTER,
    ]);
    await after.end();

    const r = await a.restorePhysicalIntoScratch({
      service: 'shop',
      backupId,
      destination: 'primary',
      size: p.object.size,
      sha256: p.object.sha256,
      databases: shop.backup!.databases,
      gtid: p.position.gtid,
      expectedTables: expected,
      queries: [
        { name: 'before', sql: `SELECT COUNT(*) FROM orders WHERE customer = '${BEFORE}'`, expect: 1 },
        { name: 'after', sql: `SELECT COUNT(*) FROM orders WHERE customer = '${AFTER}'`, expect: 0 },
      ],
    });
    const checks = Object.fromEntries(r.checks.map((c) => [c.name, c]));
    for (const name of [
      'physical-schema-present',
      'physical-row-counts',
      'physical-position',
      'physical-query:before',
      'physical-query:after',
    ])
      expect([name, checks[name]?.ok, checks[name]?.detail]).toEqual([name, true, expect.any(String)]);
    expect(checks['physical-row-counts'].gate).toBe(true);
    expect(r.gtid).toBe(p.position.gtid);
    expect(r.sha256).toBe(p.object.sha256);
    expect(r.cleanedUp).toBe(true);
    expect(r.seconds.prepare).toBeGreaterThan(0);
    expect(r.seconds.start).toBeGreaterThan(0);
    expect(leftovers()).toEqual(before);

    // One flipped byte in the local copy: BackupCorrupt, and still nothing left behind.
    const file = path.join(local, p.object.key);
    const bytes = readFileSync(file);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    writeFileSync(file, bytes);
    const corrupt = await a
      .restorePhysicalIntoScratch({
        service: 'shop',
        backupId,
        destination: 'local',
        size: p.object.size,
        sha256: p.object.sha256,
        databases: shop.backup!.databases,
      })
      .catch((err: unknown) => err);
    expect(failureType(corrupt)).toBe('BackupCorrupt');
    expect(leftovers()).toEqual(before);
    expect(existsSync(file)).toBe(true);
  },
);

test(
  'restoreTest restores the newest physical backup into a scratch instance after the logical one, ' +
    'reports it, and leaves nothing behind',
  async () => {
    const before = leftovers();
    await h.withWorkers(adapters.activities, async () => {
      const backupId = '20240502T030000Z';
      await h.client.workflow.execute(serviceBackup, {
        args: [{ service: 'shop', backupId, snapshots: false }],
        taskQueue: h.taskQueue,
        workflowId: `backup-physical-${randomUUID()}`,
        workflowExecutionTimeout: '240s',
      });
      const workflowId = `restore-physical-${randomUUID()}`;
      const result = await h.client.workflow.execute(restoreTest, {
        args: [{ service: 'shop' }],
        taskQueue: h.taskQueue,
        workflowId,
        workflowExecutionTimeout: '300s',
      });
      expect(result).toMatchObject({ outcome: 'passed', failedCheck: null, backupId });
      const status = await h.client.workflow.getHandle(workflowId).query<RunbookStatus>('status');
      expect(status.steps.map((s) => s.name)).toEqual([
        'pickNewestVerifiedBackup',
        'fetchManifest',
        'verifyBackupChecksum',
        'restoreIntoScratch',
        'validateRestore',
        'pickNewestVerifiedBackup physical',
        'fetchManifest physical',
        'restorePhysicalIntoScratch',
        'dropScratchDatabase',
        'publishRestoreReport',
      ]);
      const text = await stores.store('shop', 'primary').get(`${reportRoot('shop')}${result.testId}.json`);
      const report = JSON.parse(text!) as RestoreTestReport;
      const checks = Object.fromEntries(report.checks.map((c) => [c.name, c]));
      for (const name of [
        'physical-restore',
        'physical-schema-present',
        'physical-position',
        'physical-query:orders-have-customers',
        'physical-cleanup',
      ])
        expect([name, checks[name]?.ok]).toEqual([name, true]);
      expect(report.physical).toMatchObject({ backupId, cleanedUp: true });
      expect(report.physical!.rows).toBeGreaterThan(0);
    });
    expect(leftovers()).toEqual(before);
  },
);
