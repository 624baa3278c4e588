/**
 * Immutable copies (S3 Object Lock) against the AWS emulator's S3 (moto, with scripts/moto-server.py's
 * multipart patch): a destination with `objectLock` writes every object of a backup (dump, .sha256, manifest,
 * signature) locked for its GFS class's keep period (the first backup of a month for the monthly span, of a week
 * for the weekly, else the daily), big objects (multipart) too; S3 itself refuses to delete a
 * locked version; retention skips a locked backup ("kept: locked until …") instead of failing; the workflow
 * reports the locked copy as immutable (3-2-1-1); a destination configured with objectLock whose bucket has
 * no Object Lock is refused before anything is uploaded anywhere.
 * Buckets of the test's own, emptied afterwards with the governance bypass (which only a test holds).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { awsConnectionFromInventory, s3ClientFor } from '../../activities/aws/clients';
import { PART_SIZE } from '../../activities/storage/destinations';
import { manifestKey, signatureKey } from '../../activities/storage/layout';
import { serviceBackup } from '../../workflows';
import { backupIdAt, planRetention } from '../../workflows/backup-policy';
import type { ServiceBackupResult } from '../../contract';
import { isolatedBackups, publishBackup } from '../helpers/backups';
import { buildAdapters, failureType, sandbox, temporal, type TemporalHarness } from '../helpers/stack';

jest.setTimeout(180_000);

const base = sandbox();
const DAY = 86400_000;
const suffix = randomUUID().slice(0, 8);
const locked = `drbook-locked-${suffix}`;
const unlocked = `drbook-unlocked-${suffix}`;
const region = base.inventory.regions.dr;

describe('immutable copies: S3 Object Lock on a backup destination', () => {
  // shop's off-site copy goes to a bucket with Object Lock (moto's S3, no endpoint: the AWS API).
  const t = isolatedBackups(
    base,
    (inv) => {
      const shop = inv.services.find((s) => s.name === 'shop')!;
      shop.backup!.destinations.offsite = { region, bucket: locked, prefix: '', objectLock: { mode: 'governance' } };
      // One daily backup and nothing else: an older backup is due for deletion at once.
      shop.backup!.retention = { daily: 1, weekly: 0, monthly: 0 };
    },
    'drbook-lock',
  );
  const adapters = buildAdapters(t.loaded);
  const { activities } = adapters;
  const s3: S3Client = s3ClientFor({ region }, awsConnectionFromInventory(t.loaded.inventory, base.baseDir));
  const head = (bucket: string, key: string, versionId?: string) =>
    s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
  let h: TemporalHarness | undefined;

  beforeAll(async () => {
    await s3.send(new CreateBucketCommand({ Bucket: locked, ObjectLockEnabledForBucket: true }));
    await s3.send(new CreateBucketCommand({ Bucket: unlocked }));
  });
  afterAll(async () => {
    await h?.close();
    await adapters.close();
    await t.cleanUp();
    // Only a principal allowed to bypass governance retention can empty the locked bucket: the test is one.
    for (const bucket of [locked, unlocked]) {
      const listed = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket }));
      for (const v of [...(listed.Versions ?? []), ...(listed.DeleteMarkers ?? [])])
        await s3.send(
          new DeleteObjectCommand({
            Bucket: bucket,
            Key: v.Key,
            VersionId: v.VersionId,
            BypassGovernanceRetention: true,
          }),
        );
      await s3.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
    }
    s3.destroy();
  });

  const older = '20240105T030000Z';

  test(
    'every object of a backup is written locked for the daily keep period; ' + 'S3 refuses to delete a locked version',
    async () => {
      const before = Date.now();
      const taken = await activities.dumpDatabase({ service: 'shop', backupId: older });
      const offsite = taken.copies.find((c) => c.destination === 'offsite')!;
      expect(offsite.objectLock).toMatchObject({ mode: 'GOVERNANCE' });
      const until = Date.parse(offsite.objectLock!.retainUntil);
      // retention.daily = 1: locked until the UTC midnight after a day from now.
      expect(until).toBeGreaterThan(before + DAY);
      expect(until).toBeLessThanOrEqual(before + 2 * DAY + 60_000);
      // Only the locked destination locks: the streaming store's copy has none.
      expect(taken.copies.find((c) => c.destination === 'primary')!.objectLock).toBeUndefined();

      const manifest = await publishBackup(activities, taken);
      expect(manifest.copies.find((c) => c.destination === 'offsite')!.objectLock).toEqual(offsite.objectLock);
      for (const key of [
        taken.object.key,
        `${taken.object.key}.sha256`,
        manifestKey('shop', older),
        signatureKey('shop', older),
      ]) {
        const h = await head(locked, key);
        expect({ key, mode: h.ObjectLockMode }).toEqual({ key, mode: 'GOVERNANCE' });
        expect(h.ObjectLockRetainUntilDate!.getTime()).toBeGreaterThan(before + DAY);
      }

      // The lock is real: S3 refuses to delete the version (no bypass), and the bytes stay.
      const version = (await head(locked, taken.object.key)).VersionId!;
      const refused = await s3
        .send(new DeleteObjectCommand({ Bucket: locked, Key: taken.object.key, VersionId: version }))
        .catch((e: unknown) => e as Error);
      expect(refused).toBeInstanceOf(Error);
      expect((refused as Error).name).toBe('AccessDenied');
      await expect(head(locked, taken.object.key, version)).resolves.toMatchObject({ VersionId: version });
    },
  );

  test('a multipart upload (a dump bigger than one part) is locked too', async () => {
    const store = t.stores.store('shop', 'offsite');
    const key = `shop/multipart-${suffix}/dump.sql.zst`; // not a backup: retention never lists it
    const w = store.openWriter(key, () => undefined);
    w.stream.end(randomBytes(PART_SIZE + 1024 * 1024));
    const written = await w.finish();
    expect(written.objectLock).toMatchObject({ mode: 'GOVERNANCE' });
    const h = await head(locked, key);
    expect(h.ContentLength).toBe(PART_SIZE + 1024 * 1024);
    expect(h.ObjectLockMode).toBe('GOVERNANCE');
    expect(h.ObjectLockRetainUntilDate!.toISOString()).toBe(written.objectLock!.retainUntil);
  });

  test(
    'retention keeps a locked backup ("kept: ' + 'locked until") without failing; compliance counts the immutable copy',
    async () => {
      h = await temporal(t.loaded);
      const { result, steps } = await h.withWorkers(activities, async () => {
        const result: ServiceBackupResult = await h!.client.workflow.execute(serviceBackup, {
          args: [{ service: 'shop', snapshots: false }],
          taskQueue: h!.taskQueue,
          workflowId: `test-backup-lock-${suffix}`,
        });
        const status = await h!.client.workflow
          .getHandle(`test-backup-lock-${suffix}`)
          .query<{ steps: { name: string; detail?: string }[] }>('status');
        return { result, steps: status.steps };
      });
      const offsite = result.retention.find((r) => r.destination === 'offsite')!;
      expect(offsite.deleted).toEqual([]);
      expect(offsite.locked?.map((l) => l.id)).toEqual([older]);
      expect(offsite.kept).toContain(older);
      // The same backup in an unlocked destination is deleted as the policy says.
      expect(result.retention.find((r) => r.destination === 'primary')!.deleted).toContain(older);
      // Still all there in the locked bucket.
      await expect(head(locked, manifestKey('shop', older))).resolves.toBeDefined();
      expect(result.compliance).toMatchObject({ rule321: true, rule3211: true, immutableCopies: 1 });
      expect(result.compliance.problems.join('\n')).not.toMatch(/immutable/);

      const step = steps.find((x) => x.name === 'applyRetention offsite')!;
      expect(step.detail).toMatch(new RegExp(`kept: locked until \\d{4}-\\d{2}-\\d{2}T00:00:00\\.000Z \\(${older}\\)`));
    },
  );

  test(
    'a backup is locked for its GFS class: ' + 'the first of a month for the monthly span, of a week for the weekly',
    async () => {
      const policy = { daily: 2, weekly: 3, monthly: 5 };
      const prefix = `gfs-${suffix}/`;
      const g = isolatedBackups(base, (inv) => {
        const shop = inv.services.find((s) => s.name === 'shop')!;
        shop.backup!.destinations.offsite = { region, bucket: locked, prefix, objectLock: { mode: 'governance' } };
        shop.backup!.retention = policy;
      });
      const a = buildAdapters(g.loaded);
      try {
        // Fri 2024-01-05: the month's first (monthly); Tue 01-09: the first of ISO week 2 (weekly); Wed 01-10: a daily.
        const taken: [string, string, number][] = [
          ['20240105T030000Z', 'monthly', 5 * 31],
          ['20240109T030000Z', 'weekly', 3 * 7],
          ['20240110T030000Z', 'daily', 2],
        ];
        for (const [id, cls, days] of taken) {
          const before = Date.now();
          const backup = await a.activities.dumpDatabase({ service: 'shop', backupId: id });
          const lock = backup.copies.find((c) => c.destination === 'offsite')!.objectLock!;
          // Until the UTC midnight after `days` from the write: more than `days`, at most a day more.
          const until = Date.parse(lock.retainUntil);
          const span = {
            id,
            cls,
            longEnough: until > before + days * DAY,
            notLonger: until <= Date.now() + (days + 1) * DAY,
          };
          expect(span).toEqual({ id, cls, longEnough: true, notLonger: true });
          await publishBackup(a.activities, backup);
          // Every object of the backup carries the same date, the manifest (written after verification) too.
          for (const key of [backup.object.key, `${backup.object.key}.sha256`, manifestKey('shop', id)])
            expect({ key, until: (await head(locked, prefix + key)).ObjectLockRetainUntilDate!.toISOString() }).toEqual(
              {
                key,
                until: lock.retainUntil,
              },
            );
        }
        // Retention agrees: what it keeps as the month's and the week's backup is what was locked as such.
        const listed = (await a.activities.listBackups({ service: 'shop' })).find((d) => d.destination === 'offsite')!;
        const plan = planRetention(listed.backups, policy, Date.UTC(2024, 0, 11), undefined, 'first');
        const reasons = Object.fromEntries(plan.keep.map((k) => [k.id, k.reasons]));
        expect(reasons['20240105T030000Z']).toContain('monthly 2024-01');
        expect(reasons['20240109T030000Z']).toContain('weekly 2024-W02');
      } finally {
        await a.close();
        await g.cleanUp();
      }
    },
  );

  test(
    '3-2-1-1: the finding without a lock or an offline copy; ' + 'none with an offline copy verified in its period',
    async () => {
      const backupWith = async (offline: boolean) => {
        const o = isolatedBackups(base, (inv) => {
          const shop = inv.services.find((s) => s.name === 'shop')!;
          // No Object Lock anywhere: only the offline flag (a copy verified within 7 days) can meet 3-2-1-1.
          shop.backup!.destinations.offsite = {
            region,
            bucket: unlocked,
            prefix: `offline-${offline}-${suffix}/`,
            ...(offline ? { offline: { verifiedWithin: 7 * 86400 } } : {}),
          };
        });
        const a = buildAdapters(o.loaded);
        const th = await temporal(o.loaded);
        try {
          return await th.withWorkers(a.activities, () =>
            th.client.workflow.execute(serviceBackup, {
              args: [{ service: 'shop', snapshots: false }],
              taskQueue: th.taskQueue,
              workflowId: `test-backup-offline-${offline}-${suffix}`,
            }),
          );
        } finally {
          await th.close();
          await a.close();
          await o.cleanUp();
        }
      };
      const without = await backupWith(false);
      expect(without.compliance).toMatchObject({
        rule321: true,
        rule3211: false,
        immutableCopies: 0,
        offlineCopies: 0,
      });
      // (The RPO finding beside it is the first backup's: judged by the schedule interval.)
      expect(without.compliance.problems).toContainEqual(
        expect.stringMatching(/^no immutable or offline copy: 3-2-1-1/),
      );
      const withOffline = await backupWith(true);
      expect(withOffline.compliance).toMatchObject({
        rule321: true,
        rule3211: true,
        immutableCopies: 0,
        offlineCopies: 1,
      });
      expect(withOffline.compliance.problems.join('\n')).not.toMatch(/immutable or offline/);
    },
  );

  test(
    'a destination configured with objectLock whose ' + 'bucket has no Object Lock is refused before any upload',
    async () => {
      const u = isolatedBackups(base, (inv) => {
        const shop = inv.services.find((s) => s.name === 'shop')!;
        shop.backup!.destinations.offsite = {
          region,
          bucket: unlocked,
          prefix: '',
          objectLock: { mode: 'compliance' },
        };
      });
      const a = buildAdapters(u.loaded);
      try {
        const backupId = backupIdAt(Date.now());
        const err = await a.activities.dumpDatabase({ service: 'shop', backupId }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ApplicationFailure);
        expect(failureType(err)).toBe('NotConfigured');
        expect((err as Error).message).toMatch(
          new RegExp(
            `offsite backup destination s3://${unlocked}/ .*objectLock \\(compliance\\).*no Object Lock enabled`,
          ),
        );
        // Nothing was written in any destination.
        for (const store of u.stores.forService('shop')) expect(await store.list('shop/')).toEqual([]);
      } finally {
        await a.close();
        await u.cleanUp();
      }
    },
  );
});
