/**
 * RDS automated-backup settings through serviceBackup, in the AWS emulator: the inventory's
 * retention and window differ from the instance's, so the first run reports the drift and fixes
 * it; the second finds none. The instance's settings are put back afterwards.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DescribeDBInstancesCommand, ModifyDBInstanceCommand } from '@aws-sdk/client-rds';
import type { LoadedInventory } from '../../config/load';
import { AwsClients, awsConnectionFromInventory } from '../../activities/aws/clients';
import { BackupStores } from '../../activities/storage/destinations';
import { serviceBackup } from '../../workflows';
import type { ServiceBackupResult } from '../../contract';
import { buildAdapters, sandbox, temporal, type TemporalHarness } from '../helpers/stack';

const base = sandbox();

describe('RDS automated backup settings', () => {
  const inventory = structuredClone(base.inventory);
  const shop = inventory.services.find((s) => s.name === 'shop')!;
  const rds = shop.rds!;
  const prefix = `drbook-test-${randomUUID().slice(0, 8)}/`;
  const local = mkdtempSync(path.join(tmpdir(), 'drbook-rds-settings-test-'));
  shop.backup!.destinations.local = { path: local };
  shop.backup!.destinations.primary!.prefix = prefix;
  shop.backup!.destinations.offsite!.prefix = prefix;
  const loaded: LoadedInventory = { ...base, inventory };
  const adapters = buildAdapters(loaded);
  const stores = new BackupStores(inventory, base.baseDir, awsConnectionFromInventory(inventory, base.baseDir));
  const clients = new AwsClients(awsConnectionFromInventory(base.inventory, base.baseDir));
  let original: { retention: number; window?: string } | undefined;
  let h: TemporalHarness;

  beforeAll(async () => {
    const db = (
      await clients.rds(rds.region).send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: rds.instance }))
    ).DBInstances![0];
    original = { retention: db.BackupRetentionPeriod ?? 0, window: db.PreferredBackupWindow };
    rds.backupRetentionDays = original.retention === 14 ? 21 : 14;
    rds.backupWindow = original.window === '04:00-04:30' ? '05:00-05:30' : '04:00-04:30';
    h = await temporal(loaded);
  });

  afterAll(async () => {
    if (original)
      await clients.rds(rds.region).send(
        new ModifyDBInstanceCommand({
          DBInstanceIdentifier: rds.instance,
          BackupRetentionPeriod: original.retention,
          PreferredBackupWindow: original.window,
          ApplyImmediately: true,
        }),
      );
    for (const store of stores.forService('shop')) {
      const objects = await store.list('shop/').catch(() => []);
      await store.remove(objects.map((o) => o.key)).catch(() => undefined);
    }
    stores.destroy();
    clients.destroy();
    await h?.close();
    await adapters.close();
    rmSync(local, { recursive: true, force: true });
  });

  test('drift is reported and fixed by the first run; the second run finds none', async () => {
    const run = (backupId: string): Promise<ServiceBackupResult> =>
      h.withWorkers(adapters.activities, () =>
        h.client.workflow.execute(serviceBackup, {
          taskQueue: h.taskQueue,
          workflowId: `test-rds-settings-${randomUUID()}`,
          args: [{ service: 'shop', backupId, snapshots: false }],
        }),
      );
    const first = await run('20240104T030000Z');
    expect(first.rdsBackupSettings?.enforced).toBe(true);
    expect(first.rdsBackupSettings?.drift.join('; ')).toContain(`inventory says ${rds.backupRetentionDays} d`);
    const db = (
      await clients.rds(rds.region).send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: rds.instance }))
    ).DBInstances![0];
    expect([db.BackupRetentionPeriod, db.PreferredBackupWindow]).toEqual([rds.backupRetentionDays, rds.backupWindow]);
    const second = await run('20240105T030000Z');
    expect(second.rdsBackupSettings).toEqual({ drift: [], enforced: false });
  });
});
