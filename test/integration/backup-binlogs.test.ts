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
import { publishBackup } from '../helpers/backups';
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

  test(
    'copies every closed binlog with its SHA-256 to every destination, never the active one; ' +
      'a rerun copies only what its flush closed',
    async () => {
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
      expect(second.copied).toEqual([
        expect.stringMatching(new RegExp(`^${first.active.replace('.', '\\.')}@\\d{8}T\\d{6}Z$`)),
      ]);
      expect(second.alreadyArchived).toEqual(expect.arrayContaining(first.copied));
      execSync(`sha256sum -c ${second.copied[0]}.sha256`, { cwd: dir, stdio: 'pipe' });

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
    },
  );
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

  test(
    'archives every service with the option (only shop here); a second run copies only the log the first left open; ' +
      'a service without the option is refused before anything runs',
    async () => {
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
    },
  );
});

describe('binlog archive after RESET MASTER (the numbering starts again)', () => {
  // ledger: a service whose primary is the cold DR server. Nothing replicates from that server, so its binary
  // log can be reset here without touching the estate's replication (re-clone does the same on a real server).
  const inventory = structuredClone(base.inventory);
  const shop = inventory.services.find((s) => s.name === 'shop')!;
  const tag = randomUUID().slice(0, 6);
  const DB = `ledger_${tag}`;
  const SCRATCH = `restore_ledger_${tag}`;
  const local = mkdtempSync(path.join(tmpdir(), 'drbook-binlog-reset-'));
  const ledger = structuredClone(shop);
  ledger.name = 'ledger';
  delete ledger.rds;
  delete ledger.backup!.volumeTags;
  ledger.database = { ...shop.database!, primary: 'db-cold-dr' };
  ledger.backup!.databases = [DB];
  ledger.backup!.binlogArchive = true;
  ledger.backup!.destinations = { local: { path: local } };
  inventory.services.push(ledger);
  const loaded: LoadedInventory = { ...base, inventory };
  const adapters = buildAdapters(loaded);
  const stores = new BackupStores(inventory, base.baseDir, awsConnectionFromInventory(inventory, base.baseDir));
  const write = async (statements: string[]) => {
    const conn = await sql(base, 'db-cold-dr');
    try {
      for (const s of statements) await conn.query(s);
    } finally {
      await conn.end();
    }
  };
  /** Every archived log of the cold DR server and the SHA-256 its .sha256 holds. */
  const archive = async () => {
    const root = 'ledger/binlog/db-cold-dr/';
    const out = new Map<string, string>();
    const store = stores.store('ledger', 'local');
    for (const o of await store.list(root))
      if (!o.key.endsWith('.sha256')) out.set(o.key.slice(root.length), (await store.get(`${o.key}.sha256`))!);
    return out;
  };
  afterAll(async () => {
    await write([`DROP DATABASE IF EXISTS \`${DB}\``, 'SET GLOBAL read_only = ON']).catch(() => undefined);
    const conn = await sql(base, 'db-restore-scratch');
    await conn.query(`DROP DATABASE IF EXISTS \`${SCRATCH}\``).catch(() => undefined);
    await conn.end();
    stores.destroy();
    await adapters.close();
    rmSync(local, { recursive: true, force: true });
  });

  test(
    'a new binlog.000001 is archived beside the old one, ' +
      'never over it, and point-in-time recovery replays the new numbering',
    async () => {
      // The archive reads the member writable now (live topology): ledger's primary takes writes for this test,
      // and is read-only again afterwards, as every server of the stack starts.
      await write([
        'SET GLOBAL read_only = OFF',
        `CREATE DATABASE \`${DB}\``,
        `CREATE TABLE \`${DB}\`.entries (id INT PRIMARY KEY, note VARCHAR(64) NOT NULL)`,
        `INSERT INTO \`${DB}\`.entries VALUES (1, 'before the reset')`,
      ]);
      const first = await adapters.activities.archiveBinlogs({ service: 'ledger' });
      expect(first.copied.some((f) => f.startsWith('binlog.000001@'))).toBe(true);
      const before = await archive();

      // As a re-clone does (it sets the position it continues from), the GTID sequence goes on after the reset:
      // a replay under gtid_strict_mode must never apply a lower sequence number than the scratch server has.
      await write([
        'RESET MASTER',
        "SET GLOBAL gtid_binlog_state = '0-4-1000000'",
        `INSERT INTO \`${DB}\`.entries VALUES (2, 'after the reset')`,
      ]);
      const second = await adapters.activities.archiveBinlogs({ service: 'ledger' });
      // The new numbering's first log is archived under a key of its own...
      const reborn = second.copied.find((f) => f.startsWith('binlog.000001@'));
      expect(reborn).toBeDefined();
      expect(before.has(reborn!)).toBe(false);
      // ...and every log archived before the reset is still there, byte for byte.
      const after = await archive();
      for (const [file, sum] of before) expect([file, after.get(file)]).toEqual([file, sum]);
      execSync(`sha256sum -c ${[...after.keys()].map((f) => `${f}.sha256`).join(' ')}`, {
        cwd: path.join(local, 'ledger/binlog/db-cold-dr'),
        stdio: 'pipe',
        shell: '/bin/bash',
      });

      // A backup in the new numbering, a change after it, archived: the replay starts at the backup's own log.
      const manifest = await publishBackup(
        adapters.activities,
        await adapters.activities.dumpDatabase({ service: 'ledger', backupId: '20240201T030000Z' }),
      );
      expect(manifest.position.binlogCreatedAt).toMatch(/^\d{8}T\d{6}Z$/);
      await write([`INSERT INTO \`${DB}\`.entries VALUES (3, 'after the backup')`]);
      await adapters.activities.archiveBinlogs({ service: 'ledger' });
      const databases = [{ source: DB, scratch: SCRATCH }];
      await adapters.activities.restoreIntoScratch({
        service: 'ledger',
        backupId: manifest.id,
        destination: 'local',
        server: 'db-restore-scratch',
        databases,
        size: manifest.object.size,
        sha256: manifest.object.sha256,
      });
      const replayed = await adapters.activities.replayBinlogsToPoint({
        service: 'ledger',
        destination: 'local',
        sourceServer: 'db-cold-dr',
        server: 'db-restore-scratch',
        databases,
        from: manifest.position,
      });
      expect(replayed.logs[0]).toBe(`${manifest.position.binlogFile}@${manifest.position.binlogCreatedAt}`);
      expect(replayed.logs.every((l) => !before.has(l))).toBe(true); // nothing from before the reset
      const conn = await sql(base, 'db-restore-scratch');
      try {
        const [rows] = await conn.query(`SELECT id, note FROM \`${SCRATCH}\`.entries ORDER BY id`);
        expect(rows).toEqual([
          { id: 1, note: 'before the reset' },
          { id: 2, note: 'after the reset' },
          { id: 3, note: 'after the backup' },
        ]);
      } finally {
        await conn.end();
      }
    },
  );
});
