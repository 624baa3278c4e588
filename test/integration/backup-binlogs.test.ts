/**
 * The binlog archive against the real primary: FLUSH BINARY LOGS, every closed log copied to the
 * three destinations with a `.sha256` that `sha256sum -c` accepts, the active log never; a second
 * run copies only the log its own flush closed (idempotent by file name). Under a prefix and a
 * temp directory of the test's own, removed afterwards. The binlogArchive runbook (its own schedule)
 * does the same through Temporal with a user holding only the privileges the archive needs.
 */
import { execSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import type { LoadedInventory } from '../../config/load';
import { awsConnectionFromInventory } from '../../activities/aws/clients';
import { BackupStores } from '../../activities/storage/destinations';
import { binlogArchive } from '../../workflows';
import { assessCompliance } from '../../workflows/backup-policy';
import { buildAdapters, sandbox, sql, temporal, type TemporalHarness } from '../helpers/stack';

const base = sandbox();

describe('binlog archive', () => {
  const inventory = structuredClone(base.inventory);
  const shop = inventory.services.find((s) => s.name === 'shop')!;
  const prefix = `drbook-test-${randomUUID().slice(0, 8)}/`;
  const local = mkdtempSync(path.join(tmpdir(), 'drbook-binlog-test-'));
  shop.backup!.destinations.local = { path: local };
  shop.backup!.destinations.primary!.prefix = prefix;
  shop.backup!.destinations.offsite!.prefix = prefix;
  shop.backup!.binlogArchive = true;
  const loaded: LoadedInventory = { ...base, inventory };
  const adapters = buildAdapters(loaded);
  const stores = new BackupStores(inventory, base.baseDir, awsConnectionFromInventory(inventory, base.baseDir));
  afterAll(async () => {
    for (const store of stores.forService('shop')) {
      const objects = await store.list('shop/').catch(() => []);
      await store.remove(objects.map((o) => o.key)).catch(() => undefined);
    }
    stores.destroy();
    await adapters.close();
    rmSync(local, { recursive: true, force: true });
  });

  test('copies every closed binlog with its SHA-256 to every destination, never the active one; a rerun copies only what its flush closed', async () => {
    const first = await adapters.activities.archiveBinlogs({ service: 'shop' });
    expect(first.copied.length).toBeGreaterThan(0);
    expect(first.alreadyArchived).toEqual([]);
    expect(first.copied).not.toContain(first.active);
    expect(first.newest).toBe(first.copied[first.copied.length - 1]);
    expect(first.destinations).toEqual(['local', 'primary', 'offsite']);
    const dir = path.join(local, 'shop/binlog', first.server);
    for (const log of first.copied) execSync(`sha256sum -c ${log}.sha256`, { cwd: dir, stdio: 'pipe' });
    expect(existsSync(path.join(dir, first.active))).toBe(false);
    for (const store of stores.forService('shop').filter((s) => s.kind === 's3')) {
      const keys = (await store.list(`shop/binlog/${first.server}/`)).map((o) => o.key.split('/').pop());
      for (const log of first.copied) expect(keys).toEqual(expect.arrayContaining([log, `${log}.sha256`]));
    }

    const second = await adapters.activities.archiveBinlogs({ service: 'shop' });
    // The first run's active log was closed by the second run's flush: that one, and only that one, is new.
    expect(second.copied).toEqual([first.active]);
    expect(second.alreadyArchived).toEqual(expect.arrayContaining(first.copied));
    execSync(`sha256sum -c ${first.active}.sha256`, { cwd: dir, stdio: 'pipe' });

    // Compliance with the archive: the data-loss window is the newest archived log's age, not the nightly interval.
    const now = Date.parse(second.newestClosedAt!) + 60_000;
    const c = assessCompliance({
      service: 'shop',
      copies: [
        { kind: 'file', offsite: false },
        { kind: 's3', offsite: false },
        { kind: 's3', offsite: true },
      ],
      backupId: '20240101T030000Z',
      endedAtMs: Date.parse('2024-01-01T03:10:00Z'),
      previousVerifiedId: null,
      nowMs: now,
      rpoSeconds: 300,
      intervalSeconds: 86400,
      newestBinlogClosedAtMs: Date.parse(second.newestClosedAt!),
    });
    expect(c).toMatchObject({ exposureSeconds: 60, rpoMet: true });
    expect(
      assessCompliance({
        ...{ service: 'shop', copies: [], backupId: '20240101T030000Z' },
        endedAtMs: Date.parse('2024-01-01T03:10:00Z'),
        previousVerifiedId: null,
        nowMs: now + 600_000,
        rpoSeconds: 300,
        intervalSeconds: 86400,
        newestBinlogClosedAtMs: Date.parse(second.newestClosedAt!),
      }).problems,
    ).toContain("the newest archived binlog is 11 min old; the tier's RPO is 5 min (archive binlogs more often)");
  });
});

describe('binlogArchive runbook (the scheduled one), with a least-privilege database user', () => {
  // The archive needs RELOAD (FLUSH BINARY LOGS), BINLOG MONITOR (SHOW BINARY LOGS) and REPLICATION
  // SLAVE (reading the logs over the replication protocol), and nothing else: the run below uses such a user.
  const inventory = structuredClone(base.inventory);
  const shop = inventory.services.find((s) => s.name === 'shop')!;
  const prefix = `drbook-test-${randomUUID().slice(0, 8)}/`;
  const local = mkdtempSync(path.join(tmpdir(), 'drbook-binlog-run-'));
  shop.backup!.destinations.local = { path: local };
  shop.backup!.destinations.primary!.prefix = prefix;
  shop.backup!.destinations.offsite!.prefix = prefix;
  shop.backup!.binlogArchive = true;
  const user = `drbook_arch_${randomUUID().slice(0, 6)}`;
  const passwordFile = path.join(local, '..', `${path.basename(local)}.pw`);
  const password = randomUUID();
  writeFileSync(passwordFile, password, { mode: 0o600 });
  inventory.mysqlServers['db-primary'] = {
    ...inventory.mysqlServers['db-primary'],
    user,
    password: { file: passwordFile },
  };
  const loaded: LoadedInventory = { ...base, inventory };
  const stores = new BackupStores(inventory, base.baseDir, awsConnectionFromInventory(inventory, base.baseDir));
  let adapters: ReturnType<typeof buildAdapters>;
  let h: TemporalHarness;
  beforeAll(async () => {
    const conn = await sql(base, 'db-primary');
    await conn.query('SET SESSION sql_log_bin = 0');
    await conn.query(`CREATE USER '${user}'@'127.0.0.1' IDENTIFIED BY ?`, [password]);
    await conn.query(`GRANT RELOAD, BINLOG MONITOR, REPLICATION SLAVE ON *.* TO '${user}'@'127.0.0.1'`);
    await conn.end();
    adapters = buildAdapters(loaded);
    h = await temporal(loaded);
  });
  afterAll(async () => {
    const conn = await sql(base, 'db-primary');
    await conn.query('SET SESSION sql_log_bin = 0');
    await conn.query(`DROP USER IF EXISTS '${user}'@'127.0.0.1'`);
    await conn.end();
    for (const store of stores.forService('shop')) {
      const objects = await store.list('shop/').catch(() => []);
      await store.remove(objects.map((o) => o.key)).catch(() => undefined);
    }
    stores.destroy();
    await h?.close();
    await adapters?.close();
    rmSync(local, { recursive: true, force: true });
    rmSync(passwordFile, { force: true });
  });

  test('archives every service with the option (only shop here); a second run copies only the log the first left open; a service without the option is refused before anything runs', async () => {
    const run = (args: unknown) =>
      h.client.workflow.execute(binlogArchive, {
        args: [args],
        taskQueue: h.taskQueue,
        workflowId: `binlog-archive-${randomUUID()}`,
        workflowExecutionTimeout: '120s',
      });
    await h.withWorkers(adapters.activities, async () => {
      const first = await run({});
      expect(first.failed).toEqual([]);
      expect(first.archived.map((a) => a.service)).toEqual(['shop']);
      expect(first.archived[0].copied.length).toBeGreaterThan(0);
      const second = await run({ services: ['shop'] });
      expect(second.archived[0].copied).toHaveLength(1);
      expect(second.archived[0].copied[0]).not.toBe(first.archived[0].newest);
      expect(Date.parse(second.archived[0].newestClosedAt!)).toBeGreaterThanOrEqual(
        Date.parse(first.archived[0].newestClosedAt!),
      );
      const dir = path.join(local, 'shop/binlog', first.archived[0].server);
      for (const log of [...first.archived[0].copied, ...second.archived[0].copied])
        execSync(`sha256sum -c ${log}.sha256`, { cwd: dir, stdio: 'pipe' });

      const refused = await run({ services: ['wiki'] }).catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(WorkflowFailedError);
      const cause = (refused as WorkflowFailedError).cause as ApplicationFailure;
      expect(cause.type).toBe('NotConfigured');
      expect(cause.message).toMatch(/no backup section with binlogArchive: true in the inventory for: wiki/);
    });
  });
});
