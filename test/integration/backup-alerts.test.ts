/**
 * A failed backup tells people at once, and a good one after it tells them it recovered:
 * shop's local destination made unwritable during the backup (its directory replaced by a file, as a full or
 * remounted disk would refuse it) gives one alert naming the step, the destination and the cause; the next
 * backup, once the destination is back, sends a recovery notice naming the failed run. Each run's page in the
 * Web UI says the same: the failed step and its cause, or the copies and the data-loss window.
 */
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { serviceBackup } from '../../workflows';
import { isolatedBackups } from '../helpers/backups';
import { buildAdapters, sandbox, temporal, type TemporalHarness } from '../helpers/stack';

jest.setTimeout(300_000);

const iso = isolatedBackups(sandbox(), () => undefined, 'drbook-alerts');
const adapters = buildAdapters(iso.loaded);
const alerts: { subject: string; message: string; target: string }[] = [];
const activities = {
  ...adapters.activities,
  notifyTarget: async (args: Parameters<typeof adapters.activities.notifyTarget>[0]) => {
    alerts.push({ subject: args.subject, message: args.message, target: args.target });
    return adapters.activities.notifyTarget(args);
  },
};
let t: TemporalHarness;
let targets: string[] = [];

beforeAll(async () => {
  t = await temporal(iso.loaded);
  targets = (await adapters.activities.describeService({ service: 'shop' })).notificationTargets;
  expect(targets.length).toBeGreaterThan(0);
});
afterAll(async () => {
  await t?.close();
  await adapters.close();
  await iso.cleanUp();
});

/** The run's page in the Web UI: its current details, read as the UI reads them (a worker replays a closed run). */
const pageOf = async (id: string) =>
  (
    await t.client.workflow
      .getHandle(`backup-shop-${id}`)
      .query<{ currentDetails?: string }>('__temporal_workflow_metadata')
  ).currentDetails ?? '';

const backupShop = (id: string) =>
  t.client.workflow.execute(serviceBackup, {
    taskQueue: t.taskQueue,
    workflowId: `backup-shop-${id}`,
    args: [{ service: 'shop', backupId: id, snapshots: false }],
  });

test('an unwritable destination: one alert per target naming it; the next good backup says it recovered', async () => {
  const blocker = path.join(iso.local, 'shop');
  const stamp = Date.now();
  const idOf = (n: number) =>
    new Date(stamp + n * 1000)
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z');
  await t.withWorkers(activities, async () => {
    writeFileSync(blocker, 'not a directory: the destination refuses every write');
    const failedId = idOf(0);
    const err = await backupShop(failedId).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const failedAlerts = alerts.filter((a) => a.subject === `[drbook] shop backup ${failedId} FAILED`);
    // One alert per notification target, each naming the step and the destination's path.
    expect(failedAlerts.map((a) => a.target).sort()).toEqual([...targets].sort());
    expect(failedAlerts[0].message).toMatch(/^logical backup: ENOTDIR/);
    expect(failedAlerts[0].message).toContain(blocker);

    // The failed run's page in the Web UI says so, with the step and the cause, without opening a query.
    const failedPage = await pageOf(failedId);
    expect(failedPage).toMatch(/^## serviceBackup shop: FAILED \(\d+ failures?\)/);
    expect(failedPage).toContain(`**Backup id:** ${failedId}`);
    expect(failedPage).toMatch(/### Problems\n- ✖ shop: logical backup: ENOTDIR/);
    expect(failedPage).toMatch(/✖ failed \| dumpDatabase \|/);

    rmSync(blocker);
    alerts.length = 0;
    const goodId = idOf(5);
    const ok = await backupShop(goodId);
    expect(ok.backupId).toBe(goodId);
    const recovered = alerts.filter((a) => a.subject === `[drbook] shop backup recovered: ${goodId} verified`);
    expect(recovered.map((a) => a.target).sort()).toEqual([...targets].sort());
    expect(recovered[0].message).toContain(`backup-shop-${failedId}`);
    expect(alerts.filter((a) => /FAILED/.test(a.subject))).toEqual([]);
    const goodPage = await pageOf(goodId);
    expect(goodPage).toMatch(
      new RegExp(`^## serviceBackup shop: done: ${goodId} verified in ${ok.copies.length} copies`),
    );
    expect(goodPage).toMatch(/\*\*shop copies:\*\* \d+ verified \(.+\).*3-2-1 (met|NOT met)/);
    expect(goodPage).toMatch(/\*\*shop RPO:\*\* data-loss window \d+ s of \d+ s target/);
    expect(goodPage).toMatch(/✔ succeeded \| dumpDatabase \|/);
    expect(goodPage).not.toContain('### Problems');

    // A good backup after a good one says nothing.
    alerts.length = 0;
    await backupShop(idOf(10));
    expect(alerts).toEqual([]);
  });
});
