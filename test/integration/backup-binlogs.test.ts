/**
 * The binlog archive against the real primary: FLUSH BINARY LOGS, every closed log copied to the
 * three destinations with a `.sha256` that `sha256sum -c` accepts, the active log never; a second
 * run copies only the log its own flush closed (idempotent by file name). Under a prefix and a
 * temp directory of the test's own, removed afterwards.
 */
import { execSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { LoadedInventory } from '../../config/load';
import { awsConnectionFromInventory } from '../../activities/aws/clients';
import { BackupStores } from '../../activities/storage/destinations';
import { assessCompliance } from '../../workflows/backup-policy';
import { buildAdapters, sandbox } from '../helpers/stack';

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
