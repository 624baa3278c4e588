/**
 * Live roles on the real stack: who is writable is read from the servers (discoverTopology), and every runbook
 * acts on that, never on the inventory's role names. After a switchover of shop (a drill failover) the nightly
 * backup, the binlog archive and a restore test use the new primary (the restored rows hold a row written after
 * the switchover); a backup pointed at the fenced old primary is refused and alerted; the monitor probes the new
 * primary; readiness says failed-over, then normal after failback; failover refuses a failed-over service and
 * failback one at home. A split made by hand (both writable) is detected, alerted and stops failover, failback and
 * backup. No test edits the inventory between a failover and its failback; every test fails back, also when it fails.
 */
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import {
  binlogArchive,
  failback,
  failover,
  monitor,
  nightlyBackup,
  readiness,
  resolveSplit,
  restoreTest,
  serviceBackup,
} from '../../workflows';
import { type ReadinessReport, type Topology, approveUpdate, monitorStateQuery } from '../../contract';
import { isolatedBackups } from '../helpers/backups';
import { approveGates, approvedFailback, approvedFailover, drctlOn, startRunbook } from '../helpers/drive';
import { readEstate } from '../helpers/estate';
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

jest.setTimeout(600_000);

const base = sandbox();
const MARK = `topology-${randomUUID().slice(0, 8)}`;
/** Set up before any failover, never between one and its failback. */
const iso = isolatedBackups(
  base,
  (inventory) => {
    const shop = inventory.services.find((s) => s.name === 'shop')!;
    // Its binlog archive too: a split stops it with an alert (the archive always reads the writer).
    shop.backup!.binlogArchive = true;
    // The restore test proves the backup came from the new primary: the row written after the switchover is there.
    shop.restoreTest!.queries.push({
      name: 'row-written-after-switchover',
      sql: `SELECT COUNT(*) FROM orders WHERE source = '${MARK}'`,
      expect: 1,
    });
    // shop's members watched by their database alone (shop itself has a health URL): the monitor's database probe.
    const watched = structuredClone(shop);
    watched.name = 'shop-db';
    delete watched.health.httpUrl;
    delete watched.backup;
    delete watched.restoreTest;
    inventory.services.push(watched);
  },
  'drbook-topology',
);
const adapters = buildAdapters(iso.loaded);
const alerts: { subject: string; message: string }[] = [];
const activities = {
  ...adapters.activities,
  notifyTarget: async (args: Parameters<typeof adapters.activities.notifyTarget>[0]) => {
    alerts.push({ subject: args.subject, message: args.message });
    return adapters.activities.notifyTarget(args);
  },
};
let t: TemporalHarness;

const live = (): Promise<Topology> => adapters.activities.discoverTopology({ service: 'shop' });
const failed = async (p: Promise<unknown>) => {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause!;
};
const topologyCheck = (r: ReadinessReport) => r.checks.find((c) => c.name === 'topology')!;
const runReadiness = () =>
  t.client.workflow.execute(readiness, {
    taskQueue: t.taskQueue,
    workflowId: `readiness-shop-${randomUUID().slice(0, 8)}`,
    args: [{ service: 'shop' }],
  });

/** Put shop back at home whatever the test left: fail back if the DR side writes. */
async function putBack() {
  await t.terminate(['failover-shop', 'failback-shop']);
  const now = await live();
  if (now.writable === 'db-replica')
    await t.withWorkers(activities, () => approvedFailback(t, 'shop')).catch(() => undefined);
}

beforeAll(async () => {
  t = await temporal(iso.loaded);
  const before = await live();
  expect(before).toMatchObject({ state: 'normal', writable: 'db-primary', replicas: ['db-replica'] });
});
afterAll(async () => {
  await t?.terminate(['failover-shop', 'failback-shop', 'resolve-shop']);
  await t?.close();
  await adapters.close();
  await iso.cleanUp();
});

test(
  'normal: each member with its evidence (read_only, ' + 'replication source matched by replication address, GTID)',
  async () => {
    const now = await live();
    const [primary, replica] = now.members;
    expect(primary).toMatchObject({ server: 'db-primary', home: true, reachable: true, readOnly: false });
    expect(primary.replication?.configured).toBe(false);
    expect(replica).toMatchObject({ server: 'db-replica', home: false, reachable: true, readOnly: true });
    expect(replica.replication).toMatchObject({ configured: true, ioRunning: true, sqlRunning: true });
    expect(replica.replication?.sourceServer).toBe('db-primary');
    expect(primary.gtidPosition).toMatch(/^\d+-\d+-\d+/);
    expect(now.detail).toBe('normal: db-primary writable, db-replica replicating from it');
  },
);

test(
  'after a switchover every runbook follows the new primary; ' +
    'readiness says failed-over, then normal after failback',
  async () => {
    const restoreBefore = await readEstate(iso.loaded, adapters);
    try {
      await t.withWorkers(activities, async () => {
        const fo = await approvedFailover(t, { service: 'shop', mode: 'drill', reason: 'topology test switchover' });
        expect((await fo.result()).newPrimary).toBe('db-replica');

        const after = await live();
        expect(after).toMatchObject({ state: 'failed-over', writable: 'db-replica', fenced: ['db-primary'] });

        // Readiness reports the state and when it began.
        const rd = await runReadiness();
        expect(rd.topology?.state).toBe('failed-over');
        expect(topologyCheck(rd)).toMatchObject({ ok: false });
        expect(topologyCheck(rd).detail).toMatch(
          /^failed over to db-replica since \d{4}-\d\d-\d\dT[\d:.]+Z, failback pending; fenced: db-primary/,
        );

        // A row written after the switchover, on the new primary only.
        const c = await sql(iso.loaded, 'db-replica');
        try {
          await c.query("INSERT INTO shop.orders (customer, amount_cents, source) VALUES ('topology', 1, ?)", [MARK]);
        } finally {
          await c.end();
        }

        // The nightly backup dumps the new primary ...
        const night = await t.client.workflow.execute(nightlyBackup, {
          taskQueue: t.taskQueue,
          workflowId: `nightly-topology-${randomUUID().slice(0, 8)}`,
          args: [{ services: ['shop'], snapshots: false }],
        });
        expect(night.failed).toEqual([]);
        const picked = await adapters.activities.pickNewestVerifiedBackup({ service: 'shop' });
        const manifest = await adapters.activities.fetchManifest({
          service: 'shop',
          backupId: picked.backupId,
          destination: picked.destination,
        });
        expect(manifest.source.server).toBe('db-replica');

        // ... the binlog archive reads the new primary's logs ...
        const binlogs = await adapters.activities.archiveBinlogs({ service: 'shop' });
        expect(binlogs.server).toBe('db-replica');

        // ... and the restore test restores a backup holding the row written after the switchover.
        const restored = await t.client.workflow.execute(restoreTest, {
          taskQueue: t.taskQueue,
          workflowId: `restore-topology-${randomUUID().slice(0, 8)}`,
          args: [{ service: 'shop', backupId: picked.backupId, rds: false }],
        });
        expect(restored).toMatchObject({ outcome: 'passed', failedCheck: null });

        // A backup pointed at the fenced old primary is refused, typed, and people are told at once.
        alerts.length = 0;
        const refused = await failed(
          t.client.workflow.execute(serviceBackup, {
            taskQueue: t.taskQueue,
            workflowId: `backup-fenced-${randomUUID().slice(0, 8)}`,
            args: [{ service: 'shop', source: 'db-primary', snapshots: false }],
          }),
        );
        expect(refused.message).toMatch(
          /db-primary is read-only and replicates from nothing \(fenced.*\[SourceNotWritable\]/,
        );
        expect(alerts.map((a) => a.subject)).toContainEqual(expect.stringMatching(/shop backup .* REFUSED its source/));
        await expect(
          adapters.activities.takePhysicalBackup({
            service: 'shop',
            backupId: '20260101T000000Z',
            source: 'db-primary',
          }),
        ).rejects.toMatchObject({ type: 'SourceNotWritable' });

        // The monitor's database probe finds the new primary writable (it used to ping the fenced old one).
        const mon = await startRunbook(t, monitor, { service: 'shop-db' }, 'monitor-shop-db');
        try {
          // The query handler is set once the monitor has read its plan: until then there is nothing to ask.
          const state = await eventually(
            async () => (await mon.query(monitorStateQuery).catch(() => null))?.lastCheck,
            60_000,
            'a check',
          );
          expect(state).toMatchObject({ ok: true, detail: 'db-replica: writable (failed-over)' });
        } finally {
          await mon.terminate('test over');
        }

        // A second failover is refused: fail back instead.
        const again = await failed(
          t.client.workflow.execute(failover, {
            taskQueue: t.taskQueue,
            workflowId: 'failover-shop',
            args: [{ service: 'shop', mode: 'drill', reason: 'once more' }],
          }),
        );
        expect(failureType(again)).toBe('AlreadyFailedOver');
        expect(again.message).toMatch(/run failback/);

        const back = await approvedFailback(t, 'shop');
        expect(back.outcome).toBe('completed');
        // After the service lock, the live roles come first.
        expect(back.steps.slice(0, 2)).toMatchObject([
          { name: 'lock', state: 'succeeded' },
          { name: 'topology', state: 'succeeded' },
        ]);

        const home = await runReadiness();
        expect(topologyCheck(home)).toMatchObject({
          ok: true,
          detail: 'normal: db-primary writable, db-replica replicating from it',
        });

        // Failback of a service at home is refused.
        const atHome = await failed(
          t.client.workflow.execute(failback, {
            taskQueue: t.taskQueue,
            workflowId: 'failback-shop',
            args: [{ service: 'shop', mode: 'drill' }],
          }),
        );
        expect(failureType(atHome)).toBe('AlreadyAtHome');
      });
    } finally {
      await putBack();
    }
    const restoredEstate = await readEstate(iso.loaded, adapters);
    expect(restoredEstate.vip).toEqual(restoreBefore.vip);
    expect(restoredEstate.dns).toEqual(restoreBefore.dns);
    expect(await live()).toMatchObject({ state: 'normal', writable: 'db-primary' });
  },
);

test('a split made by hand (both writable) is detected, alerted, and stops failover, failback and backup', async () => {
  const c = await sql(iso.loaded, 'db-replica');
  try {
    await c.query('SET GLOBAL read_only = OFF');
    const split = await live();
    expect(split).toMatchObject({ state: 'split', writable: null, writers: ['db-primary', 'db-replica'] });

    await t.withWorkers(activities, async () => {
      alerts.length = 0;
      const rd = await runReadiness();
      expect(topologyCheck(rd)).toMatchObject({ ok: false });
      expect(alerts.map((a) => a.subject)).toContainEqual(
        expect.stringMatching(/shop topology SPLIT: db-primary, db-replica/),
      );

      for (const [runbook, input] of [
        [failover, { service: 'shop', mode: 'drill', reason: 'into a split' }],
        [failback, { service: 'shop', mode: 'drill' }],
      ] as const) {
        alerts.length = 0;
        const err = await failed(
          t.client.workflow.execute(runbook as typeof failover, {
            taskQueue: t.taskQueue,
            workflowId: `${runbook.name}-shop`,
            args: [input as never],
          }),
        );
        expect(failureType(err)).toBe('SplitBrain');
        expect(alerts.map((a) => a.subject)).toContainEqual(expect.stringMatching(/^SPLIT BRAIN: shop has 2 writable/));
      }

      alerts.length = 0;
      const backup = await failed(
        t.client.workflow.execute(serviceBackup, {
          taskQueue: t.taskQueue,
          workflowId: `backup-split-${randomUUID().slice(0, 8)}`,
          args: [{ service: 'shop', snapshots: false }],
        }),
      );
      expect(backup.message).toMatch(/SPLIT.*\[SplitBrain\]/);
      expect(alerts.map((a) => a.subject)).toContainEqual(expect.stringMatching(/REFUSED its source/));

      alerts.length = 0;
      const archive = await failed(
        t.client.workflow.execute(binlogArchive, {
          taskQueue: t.taskQueue,
          workflowId: `binlogs-split-${randomUUID().slice(0, 8)}`,
          args: [{ services: ['shop'] }],
        }),
      );
      expect(failureType(archive)).toBe('BackupFailed');
      expect(archive.message).toMatch(/shop: .*SPLIT/);
      expect(alerts).toContainEqual({
        subject: '[drbook] shop binlog archive FAILED',
        message: expect.stringMatching(/^The binlog archive of shop failed: .*SPLIT/),
      });
    });
  } finally {
    await c.query('SET GLOBAL read_only = ON').catch(() => undefined);
    await c.end();
    await t.terminate(['failover-shop', 'failback-shop']);
  }
  // Nothing changed the estate: shop is normal again once the hand-made writer is fenced.
  expect(await live()).toMatchObject({ state: 'normal', writable: 'db-primary' });
});

const drctl = (...args: string[]) => drctlOn(t, ...args);

test('resolve: a split ends with one writer only after the approvers; drctl status reads roles live', async () => {
  const c = await sql(iso.loaded, 'db-replica');
  try {
    await t.withWorkers(activities, async () => {
      // At home, drctl status reads the roles from the servers now (not from a readiness run: there may be none).
      const normal = await drctl('status', 'shop');
      expect(normal.out).toMatch(/roles +NORMAL: normal: db-primary writable, db-replica replicating from it/);
      expect(normal.out).toMatch(/db-replica +read-only +replicates from db-primary/);
      // Nothing to resolve on a service with one writer.
      const notSplit = await failed(
        t.client.workflow.execute(resolveSplit, {
          taskQueue: t.taskQueue,
          workflowId: 'resolve-shop',
          args: [{ service: 'shop', keep: 'db-primary', reason: 'nothing is split' }],
        }),
      );
      expect(failureType(notSplit)).toBe('NotSplit');

      await c.query('SET GLOBAL read_only = OFF');
      const split = await drctl('status', 'shop');
      expect(split.out).toMatch(/roles +SPLIT: SPLIT: db-primary and db-replica are all writable/);
      expect(split.out).toMatch(/db-replica +WRITABLE/);
      // A row written on db-replica alone (kept out of its binlog, so the estate stays clean for the next tests).
      await c.query('SET SESSION sql_log_bin = 0');
      await c.query("INSERT INTO shop.orders (customer, amount_cents, source) VALUES ('split', 1, ?)", [
        `${MARK}-split`,
      ]);

      // keep must be one of the writers read now.
      const wrongKeep = await failed(
        t.client.workflow.execute(resolveSplit, {
          taskQueue: t.taskQueue,
          workflowId: 'resolve-shop',
          args: [{ service: 'shop', keep: 'db-scratch', reason: 'not a writer' }],
        }),
      );
      expect(failureType(wrongKeep)).toBe('InvalidInput');
      expect(wrongKeep.message).toMatch(/keep: db-scratch is not one of shop's writable members/);

      alerts.length = 0;
      const started = await drctl('resolve', 'shop', '--keep', 'db-primary', '--reason', 'db-primary took the orders');
      expect(started).toMatchObject({ code: 0, out: expect.stringMatching(/started resolve resolve-shop/) });
      const handle = t.client.workflow.getHandle<typeof resolveSplit>('resolve-shop');
      await atGate(handle, 'fence-writers');
      // Nothing is fenced before the approvers say so, and shop (critical) needs two of them.
      expect((await live()).writers).toEqual(['db-primary', 'db-replica']);
      await handle.executeUpdate(approveUpdate, { args: [{ step: 'fence-writers', approver: 'alice' }] });
      expect((await live()).writers).toEqual(['db-primary', 'db-replica']);
      await approveGates(handle, [{ step: 'fence-writers', approver: 'bob' }]);
      const report = await handle.result();
      expect(report).toMatchObject({ kept: 'db-primary', fenced: ['db-replica'], divergence: { 'db-replica': 0 } });
      expect(report.topology).toMatchObject({ state: 'normal', writers: ['db-primary'] });
      expect(report.steps.map((st) => st.name)).toEqual([
        'topology',
        'compare-db-replica',
        'approve-fence-writers',
        'fence-db-replica',
        'verify-single-writer',
      ]);
      expect(alerts.map((a) => a.subject)).toContainEqual('split brain of shop resolved: db-primary is the one writer');
      expect(await live()).toMatchObject({ state: 'normal', writable: 'db-primary', writers: ['db-primary'] });
    });
  } finally {
    await c.query('SET SESSION sql_log_bin = 0').catch(() => undefined);
    await c.query('DELETE FROM shop.orders WHERE source = ?', [`${MARK}-split`]).catch(() => undefined);
    await c.query('SET GLOBAL read_only = ON').catch(() => undefined);
    await c.end();
    await t.terminate(['resolve-shop']);
  }
});
