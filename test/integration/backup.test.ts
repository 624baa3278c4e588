/**
 * The nightly backup against the real stack: mariadb-dump → zstd → the local file system and
 * s3proxy (both "regions"), read back and checked; a restore with standard tools only; corrupt
 * copies caught; EBS/RDS snapshots and their DR copies in moto; the whole runbook through Temporal
 * with one failing service. Every test works under a prefix (and a temp directory) of its own
 * and removes it, so the sandbox estate is left as it was found.
 */
import { execFileSync, execSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import { DescribeDBSnapshotsCommand } from '@aws-sdk/client-rds';
import { GetBucketLifecycleConfigurationCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { type LoadedInventory, resolveSecret } from '../../config/load';
import { AwsClients, awsConnectionFromInventory, s3ClientFor } from '../../activities/aws/clients';
import { rdsSnapshotId } from '../../activities/aws/snapshots';
import { planRetention } from '../../workflows/backup-policy';
import { nightlyBackup } from '../../workflows';
import { backupManifest, type BackupManifest, type NightlyBackupSummary } from '../../contract';
import { isolatedBackups } from '../helpers/backups';
import { buildAdapters, failureType, sandbox, sql, temporal, type TemporalHarness } from '../helpers/stack';

const base = sandbox();
const shopOf = (l: LoadedInventory) => l.inventory.services.find((s) => s.name === 'shop')!;

const isolated = (extra?: (inv: LoadedInventory['inventory']) => void) => isolatedBackups(base, extra);

describe('nightly backup on the local stack', () => {
  const awsClients = new AwsClients(awsConnectionFromInventory(base.inventory, base.baseDir));
  afterAll(() => awsClients.destroy());

  describe('dump, verify, manifest, restore by hand', () => {
    const t = isolated();
    const adapters = buildAdapters(t.loaded);
    const { activities } = adapters;
    const backupId = '20240101T030000Z';
    afterAll(async () => {
      await adapters.close();
      await t.cleanUp();
    });

    test(
      'dumps shop to all three destinations with matching SHA-256, ' + 'exact row counts and the GTID position',
      async () => {
        const dump = await activities.dumpDatabase({ service: 'shop', backupId });
        expect(dump.copies.map((c) => [c.destination, c.kind, c.region, c.offsite])).toEqual([
          ['local', 'file', null, false],
          ['primary', 's3', 'us-east-1', false],
          ['offsite', 's3', 'us-west-2', true],
        ]);
        // This attempt's own object: <backupId>/<attempt>/dump.sql.zst (docs/backup.md).
        expect(dump.object.key).toMatch(new RegExp(`^shop/logical/${backupId}/a\\d+-[0-9a-f]{8}/dump\\.sql\\.zst$`));
        expect(dump.copies[0].location).toBe(path.join(t.local, dump.object.key));
        expect(dump.copies[2].location).toBe(`s3://drbook-backups-usw2/${t.prefix}${dump.object.key}`);
        expect(dump.position.gtid).toMatch(/^\d+-\d+-\d+/);
        expect(dump.position.binlogFile).toMatch(/^binlog\.\d+$/);
        expect(dump.rowCounts.exact).toBe(true);
        const conn = await sql(base, 'db-primary');
        try {
          const [rows] = await conn.query('SELECT COUNT(*) AS n FROM shop.orders');
          // The seed's 1000 rows at least; other tests may add some, never between the dump and this check.
          const orders = dump.tables.find((x) => x.table === 'orders')!;
          expect(orders.rows).toBeGreaterThanOrEqual(1000);
          expect(orders.rows).toBeLessThanOrEqual(Number((rows as { n: number }[])[0].n));
        } finally {
          await conn.end();
        }
        // The local copy is what the digest says, and no .partial file is left behind.
        const local = readFileSync(dump.copies[0].location);
        expect(local.length).toBe(dump.object.size);
        expect(execFileSync('sha256sum', [dump.copies[0].location], { encoding: 'utf8' }).split(' ')[0]).toBe(
          dump.object.sha256,
        );
        // The dump text never passes through the worker: its size is zstd's count, its GTID the server's for the
        // dump's binlog position. Both must be what the file itself holds.
        const text = execFileSync('zstd', ['-dc', dump.copies[0].location], { maxBuffer: 1 << 30 });
        expect(dump.object.uncompressedSize).toBe(text.length);
        expect(dump.object.uncompressedSize).toBeGreaterThan(dump.object.size * 2);
        const written = text.toString('latin1');
        expect(written).toContain(
          `MASTER_LOG_FILE='${dump.position.binlogFile}', MASTER_LOG_POS=${dump.position.binlogPos};`,
        );
        expect(written).toContain(`SET GLOBAL gtid_slave_pos='${dump.position.gtid}';`);

        const verified = await Promise.all(
          dump.copies.map((c) =>
            activities.verifyCopy({
              service: 'shop',
              backupId,
              destination: c.destination,
              size: dump.object.size,
              sha256: dump.object.sha256,
              key: dump.object.key,
            }),
          ),
        );
        expect(verified.map((v) => v.sha256)).toEqual([dump.object.sha256, dump.object.sha256, dump.object.sha256]);
        // Unverified until the manifest exists.
        expect((await activities.listBackups({ service: 'shop' })).map((d) => d.backups[0].verified)).toEqual([
          false,
          false,
          false,
        ]);
        const copies = dump.copies.map((c, i) => ({ ...c, ...verified[i] }));
        const manifest = backupManifest({ id: backupId, service: 'shop', kind: 'logical' }, dump, copies, dump);
        await activities.writeManifest({ manifest });
        expect((await activities.listBackups({ service: 'shop' })).map((d) => d.backups[0])).toEqual(
          // The dump and its .sha256, the manifest and its signature.
          Array(3).fill({ id: backupId, verified: true, files: 4, bytes: expect.any(Number) }),
        );
      },
    );

    test(
      'restores with standard tools only: fetch, sha256sum -c, zstd -d, mariadb; ' + 'row counts match the manifest',
      async () => {
        // Fetch the three files from the off-site bucket with a plain S3 client, as an operator would with the aws CLI.
        const dest = shopOf(t.loaded).backup!.destinations.offsite!;
        const s3 = s3ClientFor(dest, awsConnectionFromInventory(base.inventory, base.baseDir));
        const work = mkdtempSync(path.join(tmpdir(), 'drbook-restore-'));
        const scratchDb = `restore_${randomUUID().slice(0, 8)}`;
        const scratch = base.inventory.mysqlServers['db-restore-scratch'];
        try {
          const get = async (key: string) =>
            (
              await s3.send(new GetObjectCommand({ Bucket: dest.bucket, Key: `${t.prefix}${key}` }))
            ).Body!.transformToByteArray();
          for (const file of ['manifest.json', 'manifest.json.sig'])
            writeFileSync(path.join(work, file), await get(`shop/logical/${backupId}/${file}`));
          // The manifest names the dump object of the attempt that was verified.
          const named = (JSON.parse(readFileSync(path.join(work, 'manifest.json'), 'utf8')) as BackupManifest).object
            .key;
          for (const file of ['dump.sql.zst', 'dump.sql.zst.sha256'])
            writeFileSync(path.join(work, file), await get(`${path.posix.dirname(named)}/${file}`));
          execSync('sha256sum -c dump.sql.zst.sha256', { cwd: work, stdio: 'pipe' });
          execSync('zstd -q -d dump.sql.zst -o dump.sql', { cwd: work });
          // Load under another name: the two lines that name the database change, nothing else.
          const cnf = path.join(work, 'client.cnf');
          writeFileSync(
            cnf,
            `[client]\nuser=${scratch.user}\npassword="${resolveSecret(scratch.password, base.baseDir)}"\n` +
              `host=${scratch.host}\nport=${scratch.port}\n`,
            { mode: 0o600 },
          );
          execSync(
            `sed -e 's/^CREATE DATABASE \\(.*\\)\`shop\`/CREATE DATABASE \\1\`${scratchDb}\`/' ` +
              `-e 's/^USE \`shop\`;/USE \`${scratchDb}\`;/' dump.sql | mariadb --defaults-extra-file=client.cnf`,
            { cwd: work, stdio: 'pipe', shell: '/bin/bash' },
          );
          const manifest = JSON.parse(readFileSync(path.join(work, 'manifest.json'), 'utf8')) as BackupManifest;
          const conn = await sql(base, 'db-restore-scratch');
          try {
            for (const { table, rows } of manifest.tables) {
              const [r] = await conn.query(`SELECT COUNT(*) AS n FROM \`${scratchDb}\`.\`${table}\``);
              expect([table, Number((r as { n: number }[])[0].n)]).toEqual([table, rows]);
            }
            expect(manifest.tables.length).toBeGreaterThan(0);
          } finally {
            await conn.query(`DROP DATABASE IF EXISTS \`${scratchDb}\``);
            await conn.end();
          }
        } finally {
          s3.destroy();
          rmSync(work, { recursive: true, force: true });
        }
      },
    );

    test('a truncated local copy and an overwritten S3 copy are caught, non-retryable, naming the copy', async () => {
      const [{ backups }] = await activities.listBackups({ service: 'shop' });
      const manifest = JSON.parse(
        readFileSync(path.join(t.local, 'shop/logical', backups[0].id, 'manifest.json'), 'utf8'),
      ) as BackupManifest;
      const { size, sha256, key } = manifest.object;
      truncateSync(manifest.copies[0].location, size - 100);
      const truncated = await activities
        .verifyCopy({ service: 'shop', backupId, destination: 'local', size, sha256, key })
        .catch((e: unknown) => e);
      expect(failureType(truncated)).toBe('BackupCorrupt');
      expect((truncated as ApplicationFailure).nonRetryable).toBe(true);
      expect((truncated as Error).message).toContain(`${manifest.copies[0].location}: read back ${size - 100} bytes`);

      const dest = shopOf(t.loaded).backup!.destinations.primary!;
      const s3 = s3ClientFor(dest, awsConnectionFromInventory(base.inventory, base.baseDir));
      try {
        await s3.send(
          new PutObjectCommand({
            Bucket: dest.bucket,
            Key: `${t.prefix}${key}`,
            Body: Buffer.alloc(size, 1),
          }),
        );
      } finally {
        s3.destroy();
      }
      const flipped = await activities
        .verifyCopy({ service: 'shop', backupId, destination: 'primary', size, sha256, key })
        .catch((e: unknown) => e);
      expect(failureType(flipped)).toBe('BackupCorrupt');
      expect((flipped as Error).message).toMatch(
        /s3:\/\/drbook-backups-use1\/.*read back \d+ bytes with SHA-256 [0-9a-f]{64}/,
      );
      // The untouched off-site copy still verifies.
      await expect(
        activities.verifyCopy({ service: 'shop', backupId, destination: 'offsite', size, sha256, key }),
      ).resolves.toMatchObject({ sha256 });
    });

    test('retention refuses to delete the newest verified backup', async () => {
      const err = await activities
        .deleteBackups({ service: 'shop', destination: 'offsite', ids: [backupId] })
        .catch((e: unknown) => e);
      expect(failureType(err)).toBe('InvalidInput');
      expect((err as Error).message).toMatch(/newest verified/);
      expect((await activities.listBackups({ service: 'shop' }))[2].backups.map((b) => b.id)).toEqual([backupId]);
    });

    test(
      'a MariaDB dump takes no global read lock: ' + 'a long write holds up neither the dump nor other writes',
      async () => {
        const flushes = async () => {
          const c = await sql(base, 'db-primary');
          try {
            const [r] = await c.query("SHOW GLOBAL STATUS LIKE 'Com_flush'");
            return Number((r as { Value: string }[])[0].Value);
          } finally {
            await c.end();
          }
        };
        // A write that runs for 15 s: FLUSH TABLES WITH READ LOCK would wait for it, and stall every write meanwhile.
        const long = await sql(base, 'db-primary');
        const slow = long
          .query('UPDATE shop.orders SET amount_cents = amount_cents WHERE id = 1 AND SLEEP(15) = 0')
          .finally(() => long.end());
        try {
          await new Promise((r) => setTimeout(r, 500));
          const before = await flushes();
          const started = Date.now();
          const dump = await activities.dumpDatabase({
            service: 'shop',
            backupId: '20240101T040000Z',
            destinations: ['local'],
          });
          const seconds = (Date.now() - started) / 1000;
          expect((await flushes()) - before).toBe(0); // neither mariadb-dump nor the row-count snapshot flushed
          expect(seconds).toBeLessThan(12);
          // Lock-free, and still exact: only the heartbeat (not shop) was written between the two snapshots.
          expect(dump.rowCounts.exact).toBe(true);
        } finally {
          await slow;
        }
      },
    );

    test('a dump of a database that does not exist fails fast, and leaves no object behind', async () => {
      t.loaded.inventory.services[0].backup!.databases = ['no_such_db'];
      const err = await activities
        .dumpDatabase({ service: 'shop', backupId: '20240102T030000Z' })
        .catch((e: unknown) => e);
      t.loaded.inventory.services[0].backup!.databases = ['shop'];
      expect(failureType(err)).toBe('ResourceNotFound');
      expect((err as Error).message).toMatch(/mariadb-dump on db-primary exited 2: .*Unknown database/);
      const listed = await activities.listBackups({ service: 'shop' });
      expect(listed.flatMap((d) => d.backups.map((b) => b.id))).not.toContain('20240102T030000Z');
    });
  });

  describe('nightlyBackup through Temporal', () => {
    const brokenBucket = `drbook-missing-${randomUUID().slice(0, 8)}`;
    const t = isolated((inv) => {
      // ledger: a second service whose off-site bucket does not exist.
      const shop = inv.services.find((s) => s.name === 'shop')!;
      const ledger = structuredClone(shop);
      ledger.name = 'ledger';
      delete ledger.rds;
      delete ledger.backup!.volumeTags;
      ledger.backup!.destinations.offsite!.bucket = brokenBucket;
      inv.services.push(ledger);
    });
    const adapters = buildAdapters(t.loaded);
    let h: TemporalHarness;
    let restoreLifecycles: () => Promise<void> = async () => undefined;
    const buckets = [
      { region: 'us-east-1', bucket: 'drbook-backups-use1' },
      { region: 'us-west-2', bucket: 'drbook-backups-usw2' },
    ];
    let summary: NightlyBackupSummary;

    beforeAll(async () => {
      h = await temporal(t.loaded);
      restoreLifecycles = await t.keepLifecycles();
    });
    afterAll(async () => {
      // Put the buckets' lifecycle back as it was, and remove the snapshots this run took.
      await restoreLifecycles();
      if (summary) await t.removeSnapshots('shop', summary.backupId);
      await h.close();
      await adapters.close();
      await t.cleanUp();
    });

    test(
      'backs up shop, fails ledger loudly, names every failure; ' + 'retention, snapshots, lifecycle and status',
      async () => {
        // A month of older verified backups of shop in the local destination, for retention to work on.
        const old = Array.from({ length: 40 }, (_, i) => {
          const d = new Date(Date.now() - (i + 1) * 86400000);
          return d
            .toISOString()
            .replace(/[-:]/g, '')
            .replace(/\.\d{3}Z$/, 'Z');
        });
        const local = t.stores.store('shop', 'local');
        for (const id of old) {
          await local.put(`shop/logical/${id}/dump.sql.zst`, 'x');
          await local.put(`shop/logical/${id}/manifest.json`, '{}');
        }

        const workflowId = `nightly-${h.taskQueue}`;
        summary = await h.withWorkers(adapters.activities, async () => {
          const result = await h.client.workflow.execute(nightlyBackup, {
            args: [{ services: ['shop', 'ledger'], concurrency: 2 }],
            taskQueue: h.taskQueue,
            workflowId,
            // A bug that fails workflow tasks would otherwise retry them forever: fail the test instead.
            workflowExecutionTimeout: '90s',
          });
          const parentStatus = await h.client.workflow
            .getHandle(workflowId)
            .query<{ steps: { name: string; state: string }[] }>('status');
          expect(parentStatus.steps.map((s) => [s.name, s.state]).sort()).toEqual([
            ['applyArchiveLifecycles', 'failed'],
            ['ledger', 'failed'],
            ['shop', 'succeeded'],
          ]);
          const child = await h.client.workflow
            .getHandle(`backup-shop-${result.backupId}`)
            .query<{ phase: string; steps: { name: string; state: string }[]; compliance: { rule321: boolean }[] }>(
              'status',
            );
          expect(child.phase).toBe('done');
          expect(child.steps.filter((s) => s.state !== 'succeeded')).toEqual([]);
          expect(child.steps.map((s) => s.name)).toEqual(
            expect.arrayContaining([
              'dumpDatabase',
              'verifyCopy local',
              'verifyCopy primary',
              'verifyCopy offsite',
              'writeManifest',
              'snapshotVolumes',
              'copyVolumeSnapshotsToDr',
              'snapshotRdsInstance',
              'copyRdsSnapshotToDr',
              'listBackups',
              'applyRetention local',
            ]),
          );
          expect(child.compliance[0].rule321).toBe(true);
          return result;
        });

        expect(summary.requested).toBe(2);
        expect(summary.succeeded.map((s) => s.service)).toEqual(['shop']);
        expect(summary.succeeded[0]).toMatchObject({ rule321: true, rpoMet: false }); // critical tier: 5 min RPO
        const ledger = summary.failed.find((f) => f.service === 'ledger')!;
        expect(ledger.type).toBe('BackupFailed');
        expect(ledger.reason).toContain(`s3://${brokenBucket}/`);
        expect(ledger.reason).toContain('[ResourceNotFound]');
        // The lifecycle step also names the missing bucket; the real buckets still got their rules.
        expect(summary.failed.find((f) => f.service === '(buckets)')?.reason).toContain(brokenBucket);
        expect(summary.failed).toHaveLength(2);

        // The verified backup is in every destination with its manifest; ledger left nothing verified.
        const listed = await adapters.activities.listBackups({ service: 'shop' });
        // The dump and its .sha256, the manifest and its signature.
        for (const d of listed) expect(d.backups[0]).toMatchObject({ id: summary.backupId, verified: true, files: 4 });
        for (const store of t.stores.forService('ledger').filter((s) => s.name !== 'offsite')) {
          const keys = (await store.list('ledger/logical/')).map((o) => o.key);
          expect([store.name, keys.filter((k) => k.endsWith('manifest.json') || k.endsWith('.zst'))]).toEqual([
            store.name,
            [],
          ]);
        }

        // Retention in the local destination did exactly what the policy says.
        const expected = planRetention(
          [{ id: summary.backupId, verified: true }, ...old.map((id) => ({ id, verified: true }))],
          shopOf(t.loaded).backup!.retention,
          Date.now(),
          undefined,
          // A week's and a month's first verified backup stands for it (the one Object Lock classed as such).
          'first',
        );
        expect(expected.remove.length).toBeGreaterThan(20);
        expect(listed[0].backups.map((b) => b.id)).toEqual(expected.keep.map((k) => k.id));

        // Snapshots and their copies landed in moto, in both regions.
        for (const [region, count] of [
          ['us-east-1', 2],
          ['us-west-2', 2],
        ] as const) {
          const snaps = await awsClients.ec2(region).send(
            new DescribeSnapshotsCommand({
              OwnerIds: ['self'],
              Filters: [{ Name: 'tag:drbook:backup-id', Values: [summary.backupId] }],
            }),
          );
          expect([region, snaps.Snapshots?.filter((s) => s.State === 'completed').length]).toEqual([region, count]);
          const db = await awsClients
            .rds(region)
            .send(new DescribeDBSnapshotsCommand({ DBSnapshotIdentifier: rdsSnapshotId('shop', summary.backupId) }));
          expect([region, db.DBSnapshots?.[0]?.Status]).toEqual([region, 'available']);
        }

        // The archive lifecycle is on both real buckets (the emulator's S3), scoped to shop's prefix.
        for (const b of buckets) {
          const s3 = s3ClientFor({ region: b.region }, awsClients.connection);
          const rules = (await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: b.bucket }))).Rules ?? [];
          s3.destroy();
          expect(rules.find((r) => r.ID === 'drbook-shop')).toMatchObject({
            Filter: { Prefix: `${t.prefix}shop/logical/` },
            Transitions: [
              { Days: 30, StorageClass: 'STANDARD_IA' },
              { Days: 90, StorageClass: 'GLACIER' },
              { Days: 365, StorageClass: 'DEEP_ARCHIVE' },
            ],
            Expiration: { Days: 2555 },
          });
        }
      },
    );
  });
});
