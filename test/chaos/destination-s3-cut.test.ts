/**
 * The backup destination fails mid-upload. A service's dump (~20 MB, incompressible, so S3
 * multipart with several parts) goes to a local directory and to S3 (s3proxy) through a fault
 * proxy that cuts the link after 12 MiB and keeps refusing until the attempt has failed.
 * Then: nothing of the failed attempt is left looking complete or marked verified (no object,
 * no checksum, no manifest, no `.partial` in either destination), and the activity's retry
 * writes a complete object whose bytes and SHA-256, read back past the proxy, match the manifest.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { LoadedInventory } from '../../config/load';
import { awsConnectionFromInventory } from '../../activities/aws/clients';
import { BackupStores, type S3Store } from '../../activities/storage/destinations';
import { backupRoot, checksumLine, manifestKey, serviceRoot } from '../../activities/storage/layout';
import { serviceBackup } from '../../workflows';
import type { BackupManifest } from '../../contract';
import { recordChaos } from '../helpers/chaos';
import { cut, pass, proxyEstate, type ProxiedEstate } from '../helpers/fault-proxy';
import { buildAdapters, eventually, sandbox, sql, temporal, type TemporalHarness } from '../helpers/stack';
import { restoreSandboxTopology } from '../helpers/topology';

jest.setTimeout(180_000);

const SERVICE = 'chaos-upload';
const DATABASE = 'chaos_upload';
const ROWS = 20_000; // x 1 KiB of random bytes: ~20 MB after zstd, three 8 MiB parts
const CUT_AFTER = 12 * 1024 * 1024; // inside the second part

describe('backup destination cut mid-upload', () => {
  const base = sandbox();
  const localDir = mkdtempSync(path.join(tmpdir(), 'drbook-chaos-upload-'));
  // A service of the test's own on the scratch server (no replica, no schedule, no other test reads it).
  const wiki = base.inventory.services.find((s) => s.name === 'wiki')!;
  const loaded: LoadedInventory = {
    ...base,
    inventory: {
      ...base.inventory,
      services: [
        ...base.inventory.services,
        {
          ...wiki,
          name: SERVICE,
          database: { ...wiki.database!, primary: 'db-scratch' },
          backup: {
            ...wiki.backup!,
            databases: [DATABASE],
            destinations: { local: { path: localDir }, primary: wiki.backup!.destinations.primary },
          },
        },
      ],
    },
  };
  /** Reads the destinations past the proxy: what is really stored. */
  const stores = new BackupStores(
    loaded.inventory,
    loaded.baseDir,
    awsConnectionFromInventory(loaded.inventory, loaded.baseDir),
  );
  let estate: ProxiedEstate;
  let adapters: ReturnType<typeof buildAdapters>;
  let t: TemporalHarness;

  beforeAll(async () => {
    const c = await sql(loaded, 'db-scratch');
    try {
      await c.query(`CREATE DATABASE IF NOT EXISTS ${DATABASE}`);
      await c.query(`CREATE OR REPLACE TABLE ${DATABASE}.blobs (id INT PRIMARY KEY, b VARBINARY(1024) NOT NULL)`);
      await c.query(`INSERT INTO ${DATABASE}.blobs SELECT seq, RANDOM_BYTES(1024) FROM ${DATABASE}.seq_1_to_${ROWS}`);
    } finally {
      await c.end();
    }
    estate = await proxyEstate(loaded, { s3: [`${SERVICE}/primary`] });
    adapters = buildAdapters(estate.loaded);
    t = await temporal(estate.loaded);
    await restoreSandboxTopology(t);
  });
  afterAll(async () => {
    await t?.close();
    await adapters?.close();
    await estate?.close();
    const s3 = stores.store(SERVICE, 'primary');
    await s3.remove((await s3.list(serviceRoot(SERVICE))).map((o) => o.key)).catch(() => undefined);
    stores.destroy();
    rmSync(localDir, { recursive: true, force: true });
    const c = await sql(loaded, 'db-scratch');
    await c.query(`DROP DATABASE IF EXISTS ${DATABASE}`).finally(() => c.end());
  });

  /** Every file and object a backup id has, in both destinations, relative to the backup's directory. */
  async function stored(backupId: string) {
    const root = backupRoot(SERVICE, backupId);
    const of = async (d: 'local' | 'primary') =>
      (await stores.store(SERVICE, d).list(root)).map((o) => o.key.slice(root.length)).sort();
    return { local: await of('local'), s3: await of('primary') };
  }

  test('no partial object is ever marked verified; the retry writes a complete, verified one', async () => {
    const backupId = new Date()
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z');
    const s3proxy = estate.proxies[`s3:${SERVICE}/primary`];
    s3proxy.set(cut(CUT_AFTER));

    const { result, firstFailure, afterFailure } = await t.withWorkers(adapters.activities, async () => {
      const handle = await t.client.workflow.start(serviceBackup, {
        taskQueue: t.taskQueue,
        workflowId: `chaos-backup-${randomUUID()}`,
        args: [{ service: SERVICE, backupId, snapshots: false }],
      });
      // The first attempt has failed once the activity waits for its second (the retry interval is 30 s).
      const failed = await eventually(
        async () => {
          const pending = (await handle.describe()).raw.pendingActivities ?? [];
          const dump = pending.find((p) => p.activityType?.name === 'dumpDatabase');
          return dump && (dump.attempt ?? 1) >= 2 ? (dump.lastFailure?.message ?? '?') : null;
        },
        90_000,
        'the first dump attempt to fail',
      );
      // What the failed attempt left, before the link heals and the retry starts.
      const left = await stored(backupId);
      s3proxy.set(pass);
      return { result: await handle.result(), firstFailure: failed, afterFailure: left };
    });

    // The cut really happened mid-upload, and the failure names the object and the cause.
    expect(s3proxy.stats.resets).toBeGreaterThanOrEqual(1);
    // Each attempt has its own object (docs/backup.md): the failure names the first attempt's.
    const attemptKey = new RegExp(`${SERVICE}/logical/${backupId}/a\\d+-[0-9a-f]{8}/dump\\.sql\\.zst`);
    expect(firstFailure).toMatch(new RegExp(`s3://drbook-backups-use1/\\S*${attemptKey.source}`));
    const failedKey = attemptKey.exec(firstFailure)![0];
    expect(firstFailure).toMatch(/ECONNRESET|socket hang up|EPIPE/);
    const leftNothing = afterFailure.local.length === 0 && afterFailure.s3.length === 0;

    // The retry's copy: complete, verified, and what the manifest says, byte for byte.
    const s3 = stores.store(SERVICE, 'primary') as S3Store;
    const manifest = JSON.parse((await s3.get(manifestKey(SERVICE, backupId)))!) as BackupManifest;
    const hash = createHash('sha256');
    let bytes = 0;
    expect(manifest.object.key).not.toBe(failedKey);
    for await (const chunk of await s3.read(manifest.object.key)) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    const sha256 = hash.digest('hex');
    const complete =
      result.sha256 === sha256 &&
      manifest.verified &&
      bytes === manifest.object.size &&
      sha256 === manifest.object.sha256 &&
      (await s3.get(`${manifest.object.key}.sha256`)) === checksumLine(sha256);
    recordChaos({
      fault: 'S3 destination cut mid-upload (backup)',
      runs: 1,
      survived: leftNothing && complete ? 1 : 0,
      duplicated: 0,
    });
    expect(afterFailure).toEqual({ local: [], s3: [] });
    expect(result.sha256).toBe(sha256);
    expect(manifest.object.size).toBeGreaterThan(CUT_AFTER + 8 * 1024 * 1024); // three parts: the cut was mid-upload
    expect({ bytes, sha256 }).toEqual({ bytes: manifest.object.size, sha256: manifest.object.sha256 });
    expect(await s3.get(`${manifest.object.key}.sha256`)).toBe(checksumLine(sha256));
    expect(manifest.copies.map((c) => [c.destination, c.size, c.sha256])).toEqual([
      ['local', bytes, sha256],
      ['primary', bytes, sha256],
    ]);
    // The failed attempt's unfinished multipart upload (its abort could not get through) is gone too.
    expect(await s3.abortUnfinishedUploads(failedKey)).toBe(0);
    // Exactly one backup's files, each once, in each destination: nothing left over from the failed attempt.
    const attempt = path.posix.dirname(manifest.object.key.slice(backupRoot(SERVICE, backupId).length));
    const files = [`${attempt}/dump.sql.zst`, `${attempt}/dump.sql.zst.sha256`, 'manifest.json', 'manifest.json.sig'];
    expect(await stored(backupId)).toEqual({ local: files, s3: files });
  });
});
