/**
 * Failover and failback of the sandbox service `shop` on the real local stack: MariaDB
 * GTID replication, moto (EC2, Route 53, RDS, SNS), the VIP in two network namespaces,
 * the sandbox application and its webhook. Every test leaves the original topology.
 */
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import { failover } from '../../workflows';
import { approveUpdate, abortSignal, statusQuery } from '../../contract';
import { readEstate, writeLoad } from '../helpers/estate';
import { approvedFailback } from '../helpers/drive';
import {
  atGate,
  buildAdapters,
  eventually,
  failureType,
  sandbox,
  sql,
  temporal,
  type TemporalHarness,
} from '../helpers/stack';
import { ensureRecentBackup } from '../helpers/backups';
import { secretsIn, webhookSecrets } from '../helpers/secrets';
import { DescribeDBInstancesCommand, DescribeDBSnapshotsCommand } from '@aws-sdk/client-rds';
import { AwsClients, awsConnectionFromInventory } from '../../activities/aws/clients';

jest.setTimeout(240_000);

describe('failover and failback of shop (warm, critical)', () => {
  const loaded = sandbox();
  const adapters = buildAdapters(loaded);
  const shop = loaded.inventory.services.find((s) => s.name === 'shop')!;
  const appUrl = new URL(shop.health.httpUrl!).origin;
  let t: TemporalHarness;
  let original: Awaited<ReturnType<typeof readEstate>>;
  const aws = new AwsClients(awsConnectionFromInventory(loaded.inventory, loaded.baseDir));
  /** The RDS DR instance as RDS describes it: source, status, drbook's tags. */
  const rdsDr = async () => {
    const { region, instance } = shop.rds!.drReplica!;
    const db = (await aws.rds(region).send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: instance })))
      .DBInstances![0];
    const tags = (db.TagList ?? []).filter((tag) => tag.Key?.startsWith('drbook:')).map((tag) => tag.Key);
    return { replicaOf: db.ReadReplicaSourceDBInstanceIdentifier, status: db.DBInstanceStatus, tags };
  };

  beforeAll(async () => {
    t = await temporal(loaded);
    original = await readEstate(loaded, adapters);
    expect(original.primary.readOnly).toBe(false);
    expect(original.replica.replicating).toBe(true);
  });
  afterEach(() => t.terminate(['failover-shop', 'failback-shop']));
  afterAll(async () => {
    await t.close();
    await adapters.close();
    aws.destroy();
  });

  test('dry run: every readiness check passes and nothing changes', async () => {
    await ensureRecentBackup(t, adapters.activities, 'shop'); // readiness wants a recent verified backup
    const before = await readEstate(loaded, adapters);
    const result = await t.withWorkers(adapters.activities, () =>
      t.client.workflow.execute(failover, {
        taskQueue: t.taskQueue,
        workflowId: 'failover-shop',
        args: [{ service: 'shop', mode: 'drill', reason: 'readiness dry run', dryRun: true }],
      }),
    );
    expect(result.outcome).toBe('dry-run');
    expect(result.readiness!.ready).toBe(true);
    expect(result.steps.map((s) => s.name)).toEqual(['readiness']);
    expect(await readEstate(loaded, adapters)).toEqual(before);
  });

  test(
    'planned switchover under write load loses nothing; ' +
      'a second failover is refused; failback restores the topology',
    async () => {
      const load = writeLoad(loaded, shop.database!.primary, 'switchover-load');
      await eventually(async () => load.acked.length > 50, 10_000, 'write load');
      const notificationsBefore = ((await (await fetch(`${appUrl}/notifications`)).json()) as unknown[]).length;

      try {
        await t.withWorkers(adapters.activities, async () => {
          const handle = await t.client.workflow.start(failover, {
            taskQueue: t.taskQueue,
            workflowId: 'failover-shop',
            args: [{ service: 'shop', mode: 'drill', reason: 'quarterly switchover test' }],
          });
          const waiting = await atGate(handle, 'promote');
          // A drill changes production like a real failover: shop (critical) needs two approvers.
          expect(waiting.pendingApproval).toMatchObject({
            needed: 2,
            requireOverrideRpo: false,
            requireUnfencedAck: false,
          });
          expect(waiting.rtoClock.leftSeconds).toBeLessThanOrEqual(900);

          // One failover per service: the same workflow id is refused while this one runs.
          await expect(
            t.client.workflow.start(failover, {
              taskQueue: t.taskQueue,
              workflowId: 'failover-shop',
              args: [{ service: 'shop', mode: 'real', reason: 'second' }],
            }),
          ).rejects.toBeInstanceOf(WorkflowExecutionAlreadyStartedError);
          // ... and so is a hand-typed id.
          const stray = await t.client.workflow.start(failover, {
            taskQueue: t.taskQueue,
            workflowId: `my-own-failover-${t.taskQueue}`,
            args: [{ service: 'shop', mode: 'real', reason: 'typed by hand' }],
          });
          const strayErr = await stray.result().catch((e: unknown) => e);
          expect((strayErr as WorkflowFailedError).cause?.message).toMatch(/must run as workflow id "failover-shop"/);

          const refused = await handle
            .executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'mallory' }] })
            .catch((e: unknown) => e);
          expect(failureType((refused as WorkflowUpdateFailedError).cause)).toBe('ApproverNotAllowed');
          expect((refused as WorkflowUpdateFailedError).cause?.message).toMatch(
            /"mallory" is not an approver in the inventory/,
          );
          const receipt = await handle.executeUpdate(approveUpdate, {
            args: [{ step: 'promote', approver: 'alice', comment: 'go' }],
          });
          expect(receipt).toMatchObject({ accepted: true, stillNeeded: 1 });
          const second = await handle.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'bob' }] });
          expect(second).toMatchObject({ accepted: true, stillNeeded: 0 });
          const report = await handle.result();

          expect(report.outcome).toBe('completed');
          expect(report.newPrimary).toBe('db-replica');
          expect(report.measured.rpoSeconds).toBe(0);
          expect(report.measured.rtoSeconds).toBeGreaterThan(0);
          expect(report.rtoMet).toBe(true);
          expect(report.steps.filter((s) => s.state === 'failed')).toEqual([]);
          expect(report.approvals.map((a) => a.approver)).toEqual(['alice', 'bob']);
          expect(report.steps.map((s) => s.name)).toEqual([
            'lock',
            'topology',
            'assess',
            'approve-promote',
            'fence',
            'catch-up',
            'verify-fence',
            'promote',
            'promote-rds',
            'start-dr-compute',
            'move-vip',
            'switch-dns',
            'verify-single-writer',
            'notify-application',
            'notify-people',
            'verify-health',
            'verify-writes',
          ]);
        });
      } finally {
        await load.stop();
      }
      // Zero committed rows lost: every row the old primary acknowledged is on the new primary.
      const newPrimary = await sql(loaded, 'db-replica');
      try {
        const ids = load.acked;
        expect(ids.length).toBeGreaterThan(50);
        const [rows] = await newPrimary.query<import('mysql2').RowDataPacket[]>(
          'SELECT COUNT(*) AS n FROM shop.orders WHERE id IN (?)',
          [ids],
        );
        expect(Number(rows[0].n)).toBe(ids.length);
      } finally {
        await newPrimary.end();
      }
      // the fence really stopped the app's writes
      expect(load.failures.some((f) => /read-only|read_only/i.test(f))).toBe(true);

      const after = await readEstate(loaded, adapters);
      expect(after.primary.readOnly).toBe(true);
      expect(after.replica).toMatchObject({ readOnly: false, replicating: false });
      expect(after.vip).toEqual({ primary: false, dr: true });
      expect(after.dns).toEqual([shop.dns!.drValue]);
      expect(after.drInstances.every((s) => s === 'running')).toBe(true);
      const rdsPromoted = await rdsDr();
      expect(rdsPromoted.tags).toEqual(expect.arrayContaining(['drbook:promote-requested', 'drbook:promote-accepted']));
      const health = (await (await fetch(`${appUrl}/health`)).json()) as { ok: boolean; primary: { port: number } };
      expect(health).toMatchObject({ ok: true, primary: { port: loaded.inventory.mysqlServers['db-replica'].port } });
      const notifications = (await (await fetch(`${appUrl}/notifications`)).json()) as { body: { subject: string } }[];
      expect(notifications.slice(notificationsBefore).map((n) => n.body.subject)).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/^DRILL: shop failed over to DR/),
          expect.stringMatching(/^shop failover report: RTO/),
        ]),
      );
      // The app and the inbox were reached at their URLs, token and all (the app answers 401 without it), and the
      // run's history holds neither URL nor token: the activities resolved them from the inventory's references.
      const history = await t.client.workflow.getHandle('failover-shop').fetchHistory();
      expect(secretsIn(history, webhookSecrets(loaded))).toEqual([]);
      const noToken = await fetch(`${appUrl}/failover`, { method: 'POST', body: '{}' });
      expect(noToken.status).toBe(401);

      // Failback: the original topology, with replication running and nothing lost.
      const failedBack = await t.withWorkers(adapters.activities, () => approvedFailback(t, 'shop', 'bob'));
      expect(failedBack.outcome).toBe('completed');
      expect(failedBack.measured.rpoSeconds).toBe(0);
      const restored = await readEstate(loaded, adapters);
      expect(restored.primary).toMatchObject({ readOnly: false, replicating: false });
      expect(restored.replica).toMatchObject({
        readOnly: true,
        replicating: true,
        sourcePort: loaded.inventory.mysqlServers['db-primary'].port,
      });
      expect(restored.vip).toEqual(original.vip);
      expect(restored.dns).toEqual(original.dns);
      expect(restored.drInstances).toEqual(original.drInstances);
      // The RDS DR instance the failover promoted is a read replica of the primary again (a new one: RDS cannot
      // demote), available, without drbook's promotion tags; the promoted instance's data is in a final snapshot.
      const reprotectRds = failedBack.steps.find((s) => s.name === 'reprotect-rds');
      expect(reprotectRds).toMatchObject({ state: 'succeeded' });
      expect(reprotectRds!.detail).toMatch(/re-created as a read replica of shop-db \(.*final snapshot (\S+)\)/);
      const finalSnapshot = /final snapshot (\S+)\)/.exec(reprotectRds!.detail!)![1];
      const { region } = shop.rds!.drReplica!;
      const snapshot = await aws
        .rds(region)
        .send(new DescribeDBSnapshotsCommand({ DBSnapshotIdentifier: finalSnapshot }));
      expect(snapshot.DBSnapshots).toHaveLength(1);
      expect(await rdsDr()).toEqual({ replicaOf: original.rdsReplicaOf, status: 'available', tags: [] });
      expect(failedBack.notes.join('\n')).not.toMatch(/by hand/);
      await eventually(
        async () => {
          const e = await readEstate(loaded, adapters);
          return e.primary.ordersChecksum === e.replica.ordersChecksum;
        },
        20_000,
        'both servers to hold the same orders',
      );
      const back = (await (await fetch(`${appUrl}/health`)).json()) as { ok: boolean; primary: { port: number } };
      expect(back).toMatchObject({ ok: true, primary: { port: loaded.inventory.mysqlServers['db-primary'].port } });
    },
  );

  test(
    'a real failover of a critical service needs two distinct approvers; ' + 'abort at the gate changes nothing',
    async () => {
      const before = await readEstate(loaded, adapters);
      const err = await t.withWorkers(adapters.activities, async () => {
        const handle = await t.client.workflow.start(failover, {
          taskQueue: t.taskQueue,
          workflowId: 'failover-shop',
          args: [{ service: 'shop', mode: 'real', reason: 'two-approver test' }],
        });
        await atGate(handle, 'promote');
        await handle.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'alice' }] });
        const twice = await handle
          .executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'alice' }] })
          .catch((e: unknown) => e);
        expect((twice as WorkflowUpdateFailedError).cause?.message).toMatch(/alice has already approved promote/);
        const s = await handle.query(statusQuery);
        expect(s.pendingApproval).toMatchObject({ step: 'promote', needed: 1 });
        await handle.signal(abortSignal, { by: 'carol', reason: 'not today' });
        return handle.result().catch((e: unknown) => e);
      });
      expect(failureType((err as WorkflowFailedError).cause)).toBe('Aborted');
      expect(await readEstate(loaded, adapters)).toEqual(before);
    },
  );
});
