/**
 * The physical backup option against the real stack: mariabackup streamed through zstd to the
 * local file system and both buckets, every copy read back and checked, and the copy usable with
 * standard tools only (zstd -d | mbstream -x, then mariabackup --prepare). Then serviceBackup
 * through Temporal with both options on (physical + binlog archive): both manifests written, and
 * the data-loss window measured from the binlog archive instead of the nightly interval.
 * Everything lives under a prefix and temp directory of the test's own and is removed.
 */
import { execSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { archiveRule } from '../../activities/storage';
import { serviceBackup } from '../../workflows';
import type { BackupManifest, ServiceBackupResult } from '../../contract';
import { isolatedBackups } from '../helpers/backups';
import { buildAdapters, sandbox, temporal, type TemporalHarness } from '../helpers/stack';

const base = sandbox();

const isolated = (options: { physical?: boolean; binlogArchive?: boolean }) =>
  isolatedBackups(
    base,
    (inventory) => Object.assign(inventory.services.find((s) => s.name === 'shop')!.backup!, options),
    'drbook-physical-test',
  );

describe('physical backup (mariabackup, streamed)', () => {
  const t = isolated({ physical: true });
  const adapters = buildAdapters(t.loaded);
  const { activities } = adapters;
  const backupId = '20240102T030000Z';
  const work = mkdtempSync(path.join(tmpdir(), 'drbook-physical-restore-'));
  afterAll(async () => {
    await adapters.close();
    await t.cleanUp();
    rmSync(work, { recursive: true, force: true });
  });

  test('is taken, verified in every destination, and prepares with mbstream -x + mariabackup --prepare', async () => {
    const p = await activities.takePhysicalBackup({ service: 'shop', backupId });
    expect(p.ranOn).toBe('primary-host'); // db-primary's sshHost (the local path: backup-physical-ssh.test.ts)
    expect(p.copies.map((c) => c.destination)).toEqual(['local', 'primary', 'offsite']);
    expect(p.object.key).toMatch(new RegExp(`^shop/physical/${backupId}/a\\d+-[0-9a-f]{8}/backup\\.xbstream\\.zst$`));
    expect(p.object.uncompressedSize).toBeGreaterThan(p.object.size);
    expect(p.position.binlogFile).toMatch(/^binlog\.\d+$/);
    expect(p.databases).toContain('shop');
    for (const c of p.copies) {
      await expect(
        activities.verifyCopy({
          service: 'shop',
          backupId,
          destination: c.destination,
          size: p.object.size,
          sha256: p.object.sha256,
          kind: 'physical',
          key: p.object.key,
        }),
      ).resolves.toMatchObject({ sha256: p.object.sha256, size: p.object.size });
    }
    // Standard tools only, from the local copy (MariaDB marks a prepared backup "log-applied").
    const dir = path.dirname(path.join(t.local, p.object.key));
    execSync('sha256sum -c backup.xbstream.zst.sha256', { cwd: dir, stdio: 'pipe' });
    const target = path.join(work, 'data');
    execSync(`mkdir -p ${target} && zstd -q -d -c backup.xbstream.zst | mbstream -x -C ${target}`, {
      cwd: dir,
      stdio: 'pipe',
      shell: '/bin/bash',
    });
    execSync(`mariabackup --prepare --target-dir=${target}`, { stdio: 'pipe' });
    expect(existsSync(path.join(target, 'shop', 'orders.ibd'))).toBe(true);
    expect(readFileSync(path.join(target, 'xtrabackup_checkpoints'), 'utf8')).toMatch(
      /backup_type = (full-prepared|log-applied)/,
    );
    // The archive lifecycle covers physical backups (and archived binlogs) under rules of their own.
    const archive = {
      standardIaAfter: 30 * 86400,
      glacierAfter: 90 * 86400,
      deepArchiveAfter: 365 * 86400,
      expireAfter: 2555 * 86400,
    };
    expect(archiveRule('shop', 'p/', archive, 'physical')).toMatchObject({
      ID: 'drbook-shop-physical',
      Filter: { Prefix: 'p/shop/physical/' },
    });
    expect(archiveRule('shop', 'p/', archive, 'binlog')).toMatchObject({
      ID: 'drbook-shop-binlog',
      Filter: { Prefix: 'p/shop/binlog/' },
    });
  });
});

describe('serviceBackup with the physical and binlog-archive options', () => {
  const t = isolated({ physical: true, binlogArchive: true });
  const adapters = buildAdapters(t.loaded);
  let harness: TemporalHarness;
  beforeAll(async () => {
    harness = await temporal(t.loaded);
  });
  afterAll(async () => {
    await harness?.close();
    await adapters.close();
    await t.cleanUp();
  });

  test(
    'writes a logical and a physical manifest, ' + 'archives binlogs, and measures the RPO from the archive',
    async () => {
      const backupId = '20240103T030000Z';
      const result: ServiceBackupResult = await harness.withWorkers(adapters.activities, () =>
        harness.client.workflow.execute(serviceBackup, {
          taskQueue: harness.taskQueue,
          workflowId: `test-physical-${randomUUID()}`,
          args: [{ service: 'shop', backupId, snapshots: false }],
        }),
      );
      expect(result.physical?.manifestKey).toBe(`shop/physical/${backupId}/manifest.json`);
      const manifest = JSON.parse(
        readFileSync(path.join(t.local, 'shop/physical', backupId, 'manifest.json'), 'utf8'),
      ) as BackupManifest;
      expect(manifest).toMatchObject({ kind: 'physical', verified: true, object: { sha256: result.physical!.sha256 } });
      expect(manifest.copies).toHaveLength(3);
      expect(result.binlogs?.copied.length).toBeGreaterThan(0);
      expect(result.binlogs?.newest).toMatch(/^binlog\.\d+@\d{8}T\d{6}Z$/); // name and creation time
      // shop is critical (RPO 5 min): a nightly dump alone leaves a day; the archive closes the gap.
      expect(result.compliance.exposureSeconds).toBeLessThan(300);
      expect(result.compliance.rpoMet).toBe(true);
      expect(result.compliance.rule321).toBe(true);
    },
  );
});
