/**
 * Encryption at rest against the AWS emulator (moto's S3, KMS, RDS and EC2; scripts/moto-server.py makes
 * CopyDBSnapshot refuse an encrypted cross-region copy without a KmsKeyId, as AWS does):
 *  - a destination with `encryption.kmsKeyId` stores every object of a backup with SSE-KMS under that key (read
 *    back with HeadObject), and a restore from it loads the rows as at the dump;
 *  - an encrypted RDS snapshot is copied to the DR region with the DR region's key (`regions.drKmsKeyId`); without
 *    one, AWS refuses the copy, and drbook refuses it first, naming the inventory field;
 *  - an encrypted EBS snapshot's DR copy is encrypted with the DR key.
 * Buckets, keys, instances and snapshots of the test's own.
 */
import { randomUUID } from 'node:crypto';
import {
  CreateVolumeCommand,
  DeleteSnapshotCommand,
  DeleteVolumeCommand,
  DescribeSnapshotsCommand,
} from '@aws-sdk/client-ec2';
import {
  CopyDBSnapshotCommand,
  CreateDBInstanceCommand,
  DeleteDBInstanceCommand,
  DeleteDBSnapshotCommand,
  DescribeDBSnapshotsCommand,
} from '@aws-sdk/client-rds';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { AwsClients, awsConnectionFromInventory, s3ClientFor } from '../../activities/aws/clients';
import { createSnapshotActivities, rdsSnapshotId } from '../../activities/aws/snapshots';
import { manifestKey, signatureKey } from '../../activities/storage/layout';
import { backupIdAt } from '../../workflows/backup-policy';
import { isolatedBackups, publishBackup } from '../helpers/backups';
import { buildAdapters, failureType, sandbox, sql } from '../helpers/stack';

jest.setTimeout(180_000);

const base = sandbox();
const { primary: primaryRegion, dr: drRegion } = base.inventory.regions;
const suffix = randomUUID().slice(0, 8);
const connection = awsConnectionFromInventory(base.inventory, base.baseDir);
const clients = new AwsClients(connection);
/**
 * A KMS key in the emulator (drbook never creates keys, so it ships no KMS client): moto's KMS JSON API, its
 * region read from the credential scope as AWS does.
 */
const newKey = async (region: string): Promise<string> => {
  const res = await fetch(connection.endpoint!, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-amz-json-1.1',
      'X-Amz-Target': 'TrentService.CreateKey',
      Authorization:
        `AWS4-HMAC-SHA256 Credential=test/20260101/${region}/kms/aws4_request, ` + 'SignedHeaders=host, Signature=0',
    },
    body: JSON.stringify({ Description: `drbook test ${suffix}` }),
  });
  const body = (await res.json()) as { KeyMetadata: { Arn: string } };
  return body.KeyMetadata.Arn;
};

afterAll(() => clients.destroy());

describe('backup objects encrypted with SSE-KMS', () => {
  const bucket = `drbook-encrypted-${suffix}`;
  let keyArn = '';
  const t = isolatedBackups(base, undefined, 'drbook-sse');
  const s3 = s3ClientFor({ region: drRegion }, connection);
  let adapters: ReturnType<typeof buildAdapters>;
  const written: string[] = [];

  beforeAll(async () => {
    keyArn = await newKey(drRegion);
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const shop = t.loaded.inventory.services.find((s) => s.name === 'shop')!;
    shop.backup!.destinations.offsite = { region: drRegion, bucket, prefix: '', encryption: { kmsKeyId: keyArn } };
    adapters = buildAdapters(t.loaded);
  });
  afterAll(async () => {
    await adapters?.close();
    await t.cleanUp();
    for (const key of written) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    await s3.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
    s3.destroy();
  });

  test('every object carries SSE-KMS with the destination key; a restore from that copy works', async () => {
    const { activities } = adapters;
    const backupId = backupIdAt(Date.now());
    const taken = await activities.dumpDatabase({ service: 'shop', backupId });
    const manifest = await publishBackup(activities, taken);
    const offsite = manifest.copies.find((c) => c.destination === 'offsite')!;
    expect(offsite.encryption).toEqual({ algorithm: 'aws:kms', kmsKeyId: keyArn });
    written.push(
      taken.object.key,
      `${taken.object.key}.sha256`,
      manifestKey('shop', backupId),
      signatureKey('shop', backupId),
    );
    for (const key of written) {
      const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      expect({ key, sse: h.ServerSideEncryption, kmsKeyId: h.SSEKMSKeyId }).toEqual({
        key,
        sse: 'aws:kms',
        kmsKeyId: keyArn,
      });
    }

    const scratch = `restore_sse_${suffix}`;
    const restored = await activities.restoreIntoScratch({
      service: 'shop',
      backupId,
      destination: 'offsite',
      server: 'db-restore-scratch',
      databases: [{ source: 'shop', scratch }],
      size: manifest.object.size,
      sha256: manifest.object.sha256,
    });
    try {
      expect(restored.sha256).toBe(manifest.object.sha256);
      const conn = await sql(base, 'db-restore-scratch');
      try {
        for (const table of manifest.tables.filter((x) => x.database === 'shop' && x.table === 'orders')) {
          const [rows] = await conn.query(`SELECT COUNT(*) AS n FROM \`${scratch}\`.\`${table.table}\``);
          expect(Number((rows as { n: number }[])[0].n)).toBe(table.rows);
        }
      } finally {
        await conn.end();
      }
    } finally {
      await activities.dropScratchDatabase({ server: 'db-restore-scratch', databases: [scratch] });
    }
  });
});

describe('cross-region copies of encrypted snapshots use the DR region key', () => {
  const service = `enc-${suffix}`;
  const backupId = backupIdAt(Date.now());
  const instance = `drbook-enc-${suffix}`;
  const snapId = rdsSnapshotId(service, backupId);
  let sourceKey = '';
  let drKey = '';
  let volumeId = '';

  beforeAll(async () => {
    [sourceKey, drKey] = [await newKey(primaryRegion), await newKey(drRegion)];
    await clients.rds(primaryRegion).send(
      new CreateDBInstanceCommand({
        DBInstanceIdentifier: instance,
        DBInstanceClass: 'db.t3.micro',
        Engine: 'mysql',
        AllocatedStorage: 20,
        MasterUsername: 'admin',
        MasterUserPassword: 'not-a-secret-1',
        StorageEncrypted: true,
        KmsKeyId: sourceKey,
      }),
    );
    volumeId = (
      await clients.ec2(primaryRegion).send(
        new CreateVolumeCommand({
          AvailabilityZone: `${primaryRegion}a`,
          Size: 1,
          Encrypted: true,
          KmsKeyId: sourceKey,
          TagSpecifications: [{ ResourceType: 'volume', Tags: [{ Key: 'EncTest', Value: suffix }] }],
        }),
      )
    ).VolumeId!;
  });
  afterAll(async () => {
    for (const region of [primaryRegion, drRegion])
      await clients
        .rds(region)
        .send(new DeleteDBSnapshotCommand({ DBSnapshotIdentifier: snapId }))
        .catch(() => undefined);
    await clients
      .rds(primaryRegion)
      .send(new DeleteDBInstanceCommand({ DBInstanceIdentifier: instance, SkipFinalSnapshot: true }))
      .catch(() => undefined);
    await clients
      .ec2(primaryRegion)
      .send(new DeleteVolumeCommand({ VolumeId: volumeId }))
      .catch(() => undefined);
  });

  test(
    'RDS: without a DR key the copy is refused (by AWS, and by drbook first, naming the field); ' +
      'with one it is encrypted with it',
    async () => {
      const withoutKey = createSnapshotActivities(clients, {});
      const snap = await withoutKey.snapshotRdsInstance({ service, backupId, region: primaryRegion, instance });
      // The emulator refuses as AWS does: an encrypted snapshot crosses regions only re-encrypted with a key there.
      const refusedByAws = await clients
        .rds(drRegion)
        .send(new CopyDBSnapshotCommand({ SourceDBSnapshotIdentifier: snap.arn, TargetDBSnapshotIdentifier: snapId }))
        .catch((e: unknown) => e as Error);
      expect(refusedByAws).toMatchObject({ name: 'InvalidParameterValue' });
      expect((refusedByAws as Error).message).toMatch(/Must specify new KMS key for cross region encrypted snapshot/);

      const refused = await withoutKey.copyRdsSnapshotToDr({ source: snap, drRegion }).catch((e: unknown) => e);
      expect(failureType(refused)).toBe('NotConfigured');
      expect((refused as Error).message).toMatch(/encrypted.*regions\.drKmsKeyId/);

      const withKey = createSnapshotActivities(clients, { drKmsKeyId: drKey });
      const copy = await withKey.copyRdsSnapshotToDr({ source: snap, drRegion });
      expect(copy.region).toBe(drRegion);
      const described = await clients
        .rds(drRegion)
        .send(new DescribeDBSnapshotsCommand({ DBSnapshotIdentifier: snapId }));
      expect(described.DBSnapshots![0]).toMatchObject({ Encrypted: true, KmsKeyId: drKey });
    },
  );

  test('EBS: the DR copy of an encrypted volume snapshot is encrypted with the DR key', async () => {
    const withKey = createSnapshotActivities(clients, { drKmsKeyId: drKey });
    const taken = await withKey.snapshotVolumes({
      service,
      backupId,
      region: primaryRegion,
      tags: { EncTest: suffix },
    });
    expect(taken).toHaveLength(1);
    const copies = await withKey.copyVolumeSnapshotsToDr({
      service,
      backupId,
      sourceRegion: primaryRegion,
      drRegion,
      snapshots: taken,
    });
    const dr = await clients
      .ec2(drRegion)
      .send(new DescribeSnapshotsCommand({ SnapshotIds: copies.map((c) => c.drSnapshotId) }));
    expect(dr.Snapshots![0]).toMatchObject({ Encrypted: true, KmsKeyId: drKey });
    for (const [region, ids] of [
      [primaryRegion, taken.map((s) => s.snapshotId)],
      [drRegion, copies.map((c) => c.drSnapshotId)],
    ] as const)
      for (const id of ids)
        await clients
          .ec2(region)
          .send(new DeleteSnapshotCommand({ SnapshotId: id }))
          .catch(() => undefined);
  });
});
