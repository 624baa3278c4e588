/**
 * Backups cannot be rewritten, and what a restore loads is what the backup run signed, against the real
 * stack (mariadb-dump, s3proxy, the local file system, the scratch and cold-DR MariaDB servers):
 *  - every attempt at a backup writes its own object: a superseded attempt that finishes late cannot
 *    overwrite the copy a later attempt verified, and one that fails cannot delete it (its abort removes
 *    only its own key); a backup id with a manifest is refused (BackupExists), never rewritten;
 *  - manifests are signed (Ed25519, the worker's key) and `openssl pkeyutl -verify` accepts them by hand;
 *    a manifest rewritten by whoever can write the bucket (with a matching object and .sha256) is refused
 *    by fetchManifest, verifyBackupChecksum and every loader (scratch, cold DR, physical) before anything
 *    is loaded or dropped; an unsigned one only when the inventory accepts unsigned backups that old.
 * Under a prefix and a directory of the test's own, removed afterwards.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { resolveSecret } from '../../config/load';
import { checksumLine, dumpKey, manifestKey, signatureKey } from '../../activities/storage/layout';
import type { BackupManifest } from '../../contract';
import { isolatedBackups, publishBackup } from '../helpers/backups';
import { buildAdapters, failureType, sandbox, sql } from '../helpers/stack';

jest.setTimeout(120_000);

const base = sandbox();
/** A row written between two dumps of one backup id (removed afterwards). */
const LATE_ROW = 'integrity-late-attempt';

describe('backups cannot be rewritten', () => {
  const t = isolatedBackups(base, undefined, 'drbook-integrity');
  const adapters = buildAdapters(t.loaded);
  const { activities } = adapters;
  const shop = t.loaded.inventory.services.find((s) => s.name === 'shop')!;
  afterAll(async () => {
    const primary = await sql(base, 'db-primary');
    await primary.query('DELETE FROM shop.orders WHERE customer = ?', [LATE_ROW]);
    await primary.end();
    await adapters.close();
    await t.cleanUp();
  });

  test(
    'each attempt writes its own object: a superseded attempt that finishes late or fails never overwrites or ' +
      'deletes the verified copy; a taken id is refused',
    async () => {
      const backupId = '20240110T030000Z';
      const later = await activities.dumpDatabase({ service: 'shop', backupId });
      expect(later.object.key).toMatch(new RegExp(`^shop/logical/${backupId}/a\\d+-[0-9a-f]{8}/dump\\.sql\\.zst$`));
      for (const c of later.copies) expect(c.location.endsWith(later.object.key)).toBe(true);

      // An earlier attempt, superseded (its heartbeat timed out) but still running, finishes after the later one
      // was verified: it writes beside it, not over it. A row written in between makes its dump differ (two dumps
      // of the same rows in the same second are byte-identical), so the checks below would see an overwrite.
      const primary = await sql(base, 'db-primary');
      try {
        await primary.query("INSERT INTO shop.orders (customer, amount_cents, source) VALUES (?, 1, 'integrity')", [
          LATE_ROW,
        ]);
      } finally {
        await primary.end();
      }
      const late = await activities.dumpDatabase({ service: 'shop', backupId });
      expect(late.object.key).not.toBe(later.object.key);
      expect(late.object.sha256).not.toBe(later.object.sha256);
      // Another superseded attempt fails after opening its writers: its abort takes back only what it wrote.
      shop.backup!.databases = ['no_such_db'];
      const failed = await activities.dumpDatabase({ service: 'shop', backupId }).catch((e: unknown) => e);
      shop.backup!.databases = ['shop'];
      expect(failureType(failed)).toBe('ResourceNotFound');

      // The verified copy is intact in every destination, and the manifest names it.
      for (const c of later.copies)
        await expect(
          activities.verifyCopy({
            service: 'shop',
            backupId,
            destination: c.destination,
            size: later.object.size,
            sha256: later.object.sha256,
            key: later.object.key,
          }),
        ).resolves.toMatchObject({ sha256: later.object.sha256 });
      const manifest = await publishBackup(activities, later);
      const read = await activities.fetchManifest({ service: 'shop', backupId, destination: 'offsite' });
      expect(read.object.key).toBe(later.object.key);
      await expect(
        activities.verifyBackupChecksum({
          service: 'shop',
          backupId,
          destination: 'primary',
          size: read.object.size,
          sha256: read.object.sha256,
        }),
      ).resolves.toMatchObject({ sha256: later.object.sha256 });
      // A retry of the same manifest write changes nothing.
      await expect(activities.writeManifest({ manifest })).resolves.toEqual({
        manifestKey: manifestKey('shop', backupId),
      });

      // The id is taken now: a new dump under it, or another manifest for it, is refused, and nothing is written.
      const before = await t.stores.store('shop', 'primary').list(`shop/logical/${backupId}/`);
      const again = await activities.dumpDatabase({ service: 'shop', backupId }).catch((e: unknown) => e);
      expect(failureType(again)).toBe('BackupExists');
      expect((again as ApplicationFailure).nonRetryable).toBe(true);
      expect((again as Error).message).toMatch(
        new RegExp(
          `manifest\\.json exists: logical backup ${backupId} of shop is already taken; backups are never rewritten`,
        ),
      );
      const other = await activities
        .writeManifest({ manifest: { ...manifest, object: late.object } })
        .catch((e: unknown) => e);
      expect(failureType(other)).toBe('BackupExists');
      expect((other as Error).message).toMatch(/already holds another manifest/);
      expect(await t.stores.store('shop', 'primary').list(`shop/logical/${backupId}/`)).toEqual(before);
      expect((await activities.fetchManifest({ service: 'shop', backupId, destination: 'local' })).object.key).toBe(
        later.object.key,
      );
    },
  );
});

describe('manifests are signed and checked before any restore', () => {
  const t = isolatedBackups(base, undefined, 'drbook-signed');
  const adapters = buildAdapters(t.loaded);
  const { activities } = adapters;
  const work = mkdtempSync(path.join(tmpdir(), 'drbook-signed-'));
  afterAll(async () => {
    await adapters.close();
    await t.cleanUp();
    rmSync(work, { recursive: true, force: true });
  });

  /** A verified, signed backup of `service` made by the backup activities themselves. */
  async function signedBackup(service: string, backupId: string): Promise<BackupManifest> {
    return publishBackup(activities, await activities.dumpDatabase({ service, backupId }));
  }

  /**
   * What whoever can write the bucket can do: another dump put in place of the object, its .sha256 and the
   * manifest rewritten to match. Only the signature cannot follow.
   */
  async function rewrite(service: string, backupId: string, manifest: BackupManifest): Promise<void> {
    const primary = t.stores.store(service, 'primary');
    const forged = Buffer.from(execFileSync('zstd', ['-q', '-c'], { input: 'DROP DATABASE IF EXISTS shop;\n' }));
    const sha256 = execFileSync('sha256sum', { input: forged, encoding: 'utf8' }).split(' ')[0];
    const w = primary.openWriter(manifest.object.key, () => undefined);
    w.stream.end(forged);
    await w.finish();
    await primary.put(`${manifest.object.key}.sha256`, checksumLine(sha256));
    const body = { ...manifest, object: { ...manifest.object, size: forged.length, sha256 } };
    await primary.put(manifestKey(service, backupId), `${JSON.stringify(body, null, 2)}\n`);
  }

  test('each manifest has a signature that openssl verifies by hand with the public key', async () => {
    const backupId = '20240120T030000Z';
    await signedBackup('shop', backupId);
    // The public key, as an operator gets it from the signing key (scripts/stack.sh writes it beside the key).
    const pub = createPublicKey(
      createPrivateKey(resolveSecret(t.loaded.inventory.backupSigning!.privateKey, base.baseDir)),
    );
    writeFileSync(path.join(work, 'backup-signing.pub.pem'), pub.export({ type: 'spki', format: 'pem' }));
    for (const store of t.stores.forService('shop')) {
      const manifest = await store.get(manifestKey('shop', backupId));
      const sig = await store.get(signatureKey('shop', backupId));
      writeFileSync(path.join(work, 'manifest.json'), manifest!);
      writeFileSync(path.join(work, 'manifest.json.sig'), sig!);
      // docs/backup.md, "Check the signature by hand".
      const out = execFileSync(
        'bash',
        [
          '-c',
          'base64 -d manifest.json.sig > manifest.sig.bin && openssl pkeyutl -verify -pubin -inkey ' +
            'backup-signing.pub.pem -rawin -in manifest.json -sigfile manifest.sig.bin',
        ],
        { cwd: work, encoding: 'utf8' },
      );
      expect(out).toContain('Signature Verified Successfully');
    }
    // One changed byte, and openssl says no.
    const manifest = readFileSync(path.join(work, 'manifest.json'), 'utf8').replace(
      '"verified": true',
      '"verified": 1',
    );
    writeFileSync(path.join(work, 'manifest.json'), manifest);
    expect(() =>
      execFileSync(
        'openssl',
        ['pkeyutl', '-verify', '-pubin', '-inkey', 'backup-signing.pub.pem', '-rawin', '-in', 'manifest.json'].concat([
          '-sigfile',
          'manifest.sig.bin',
        ]),
        { cwd: work, stdio: 'pipe' },
      ),
    ).toThrow();
  });

  test(
    'a manifest rewritten with a matching object and .sha256 is refused by fetchManifest, ' +
      'verifyBackupChecksum and the scratch loader, before anything is loaded',
    async () => {
      const backupId = '20240121T030000Z';
      const manifest = await signedBackup('shop', backupId);
      await rewrite('shop', backupId, manifest);
      const location = t.stores.store('shop', 'primary').location(manifestKey('shop', backupId));
      const refused = (err: unknown) => {
        expect(failureType(err)).toBe('ManifestUnauthenticated');
        expect((err as ApplicationFailure).nonRetryable).toBe(true);
        expect((err as Error).message).toContain(
          `${location}: the signature does not verify with any backup-signing key of this worker`,
        );
      };
      refused(await activities.fetchManifest({ service: 'shop', backupId, destination: 'primary' }).catch((e) => e));
      const forged = JSON.parse(
        (await t.stores.store('shop', 'primary').get(manifestKey('shop', backupId)))!,
      ) as BackupManifest;
      refused(
        await activities
          .verifyBackupChecksum({
            service: 'shop',
            backupId,
            destination: 'primary',
            size: forged.object.size,
            sha256: forged.object.sha256,
          })
          .catch((e) => e),
      );
      const scratch = 'restore_integrity_forged';
      refused(
        await activities
          .restoreIntoScratch({
            service: 'shop',
            backupId,
            destination: 'primary',
            server: 'db-restore-scratch',
            databases: [{ source: 'shop', scratch }],
            size: forged.object.size,
            sha256: forged.object.sha256,
          })
          .catch((e) => e),
      );
      const conn = await sql(base, 'db-restore-scratch');
      try {
        const [rows] = await conn.query('SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [
          scratch,
        ]);
        expect(rows).toEqual([]);
      } finally {
        await conn.end();
      }
      // The untouched copies still restore-check.
      await expect(
        activities.verifyBackupChecksum({
          service: 'shop',
          backupId,
          destination: 'offsite',
          size: manifest.object.size,
          sha256: manifest.object.sha256,
        }),
      ).resolves.toMatchObject({ sha256: manifest.object.sha256 });
      // A step handed another digest than the signed manifest's is refused too (the manifest is re-read, not trusted).
      const other = await activities
        .verifyBackupChecksum({ service: 'shop', backupId, destination: 'offsite', size: 1, sha256: 'f'.repeat(64) })
        .catch((e) => e);
      expect(failureType(other)).toBe('ManifestInvalid');
      expect((other as Error).message).toMatch(/the signed manifest names \d+ bytes with SHA-256 [0-9a-f]{64}/);
    },
  );

  test("cold failover's restore refuses a rewritten manifest before it drops anything on the DR server", async () => {
    const backupId = '20240122T030000Z';
    const manifest = await signedBackup('wiki', backupId);
    await rewrite('wiki', backupId, manifest);
    const forged = JSON.parse(
      (await t.stores.store('wiki', 'primary').get(manifestKey('wiki', backupId)))!,
    ) as BackupManifest;
    const conn = await sql(base, 'db-cold-dr');
    const [had] = await conn.query("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'wiki'");
    try {
      await conn.query('SET SESSION sql_log_bin = 0');
      await conn.query('CREATE DATABASE IF NOT EXISTS wiki');
      await conn.query('CREATE TABLE IF NOT EXISTS wiki.integrity_marker (id INT PRIMARY KEY)');
      const err = await activities
        .restoreIntoDrServer({ service: 'wiki', backupId, destination: 'primary', sha256: forged.object.sha256 })
        .catch((e: unknown) => e);
      expect(failureType(err)).toBe('ManifestUnauthenticated');
      const [rows] = await conn.query(
        "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'wiki' AND TABLE_NAME = " +
          "'integrity_marker'",
      );
      expect(rows).toEqual([{ t: 'integrity_marker' }]);
    } finally {
      await conn.query('DROP TABLE IF EXISTS wiki.integrity_marker').catch(() => undefined);
      if ((had as unknown[]).length === 0) await conn.query('DROP DATABASE IF EXISTS wiki').catch(() => undefined);
      await conn.end();
    }
  });

  test('a forged physical manifest is refused before anything is extracted', async () => {
    const backupId = '20240123T030000Z';
    const local = t.stores.store('shop', 'local');
    const forged: BackupManifest = {
      ...(await signedBackup('shop', '20240124T030000Z')),
      id: backupId,
      kind: 'physical',
      object: {
        key: `shop/physical/${backupId}/backup.xbstream.zst`,
        size: 10,
        sha256: 'a'.repeat(64),
        compression: 'zstd',
        uncompressedSize: 10,
      },
    };
    await local.put(manifestKey('shop', backupId, 'physical'), JSON.stringify(forged));
    const err = await activities
      .restorePhysicalIntoScratch({
        service: 'shop',
        backupId,
        destination: 'local',
        size: 10,
        sha256: 'a'.repeat(64),
        databases: ['shop'],
      })
      .catch((e: unknown) => e);
    expect(failureType(err)).toBe('ManifestUnauthenticated');
    expect((err as Error).message).toMatch(/not signed \(no .*manifest\.json\.sig\)/);
  });

  test(
    'an unsigned manifest (a backup from before signing) is refused, ' +
      'unless the inventory accepts unsigned backups that old',
    async () => {
      const backupId = '20240125T030000Z';
      await signedBackup('shop', backupId);
      for (const store of t.stores.forService('shop')) await store.remove([signatureKey('shop', backupId)]);
      const err = await activities
        .fetchManifest({ service: 'shop', backupId, destination: 'local' })
        .catch((e: unknown) => e);
      expect(failureType(err)).toBe('ManifestUnauthenticated');
      expect((err as Error).message).toMatch(
        /not signed .*accepted only for a backup older than backupSigning\.acceptUnsignedBefore/,
      );
      const signing = t.loaded.inventory.backupSigning!;
      const lenient = buildAdapters({
        ...t.loaded,
        inventory: { ...t.loaded.inventory, backupSigning: { ...signing, acceptUnsignedBefore: '20240201T000000Z' } },
      });
      try {
        await expect(
          lenient.activities.fetchManifest({ service: 'shop', backupId, destination: 'local' }),
        ).resolves.toMatchObject({ id: backupId });
        // Not a blanket switch: a backup taken after the cutoff must still be signed (else stripping the
        // signature would be all a bucket writer needs).
        const newerId = '20240301T030000Z';
        await signedBackup('shop', newerId);
        await t.stores.store('shop', 'local').remove([signatureKey('shop', newerId)]);
        const newer = await lenient.activities
          .fetchManifest({ service: 'shop', backupId: newerId, destination: 'local' })
          .catch((e: unknown) => e);
        expect(failureType(newer)).toBe('ManifestUnauthenticated');
      } finally {
        await lenient.close();
      }
      expect(dumpKey('shop', backupId)).toBe(`shop/logical/${backupId}/dump.sql.zst`); // the pre-attempt key
    },
  );
});
