/**
 * Schedules as code against the real Temporal dev server: the inventory's declarations are
 * reconciled (created, then unchanged; paused and unpaused from the inventory; deleted when no
 * longer declared), and the quarterly drill's schedule goes through launchRunbook: a trigger starts
 * `drill-shop` under its one id; a second trigger while it runs is skipped, not doubled.
 * Every schedule here has a prefix and task queue of the test's own.
 */
import { randomUUID } from 'node:crypto';
import type { ScheduleClient, ScheduleDescription } from '@temporalio/client';
import { parseInventory, type LaunchResult, type DrillStatus, statusQuery } from '../../contract';
import { drbookSchedules, reconcileSchedules, scheduleOptions, type ScheduleApi } from '../../cli/schedules';
import { ensureRecentBackup } from '../helpers/backups';
import { buildAdapters, eventually, sandbox, temporal, type TemporalHarness } from '../helpers/stack';

jest.setTimeout(180_000);

describe('drbook schedules on the dev server', () => {
  const loaded = sandbox();
  const adapters = buildAdapters(loaded);
  const prefix = `drbook-test-${randomUUID().slice(0, 8)}-`;
  let t: TemporalHarness;
  let schedules: ScheduleClient;

  /** The sandbox's declarations with this test's prefix and task queue, after `edit` of the inventory. */
  function wanted(edit: (inv: Record<string, unknown>) => Record<string, unknown> = (i) => i) {
    const inv = parseInventory(edit(structuredClone(loaded.inventory)));
    return drbookSchedules(inv, t.taskQueue).map((s) => ({ ...s, id: s.id.replace(/^drbook-/, prefix) }));
  }
  const reconcile = (w: ReturnType<typeof wanted>) =>
    reconcileSchedules(schedules as unknown as ScheduleApi, w, { prefix });

  beforeAll(async () => {
    t = await temporal(loaded);
    schedules = t.client.schedule;
    await ensureRecentBackup(t, adapters.activities, 'shop'); // the drill starts from a ready estate
  });
  afterAll(async () => {
    for await (const s of schedules.list())
      if (s.scheduleId.startsWith(prefix))
        await schedules
          .getHandle(s.scheduleId)
          .delete()
          .catch(() => undefined);
    await t.terminate(['drill-shop', 'failover-shop', 'drill-shop-readiness']);
    await t.close();
    await adapters.close();
  });

  test(
    'reconcile creates every declared schedule, then changes nothing; ' + 'pause and deletion follow the inventory',
    async () => {
      const declared = wanted();
      const first = await reconcile(declared);
      expect(first.map((c) => c.change)).toEqual(declared.map(() => 'created'));
      const again = await reconcile(wanted());
      expect(again).toEqual(declared.map((s) => ({ id: s.id, change: 'unchanged' })));

      const drill = await schedules.getHandle(`${prefix}drill-shop`).describe();
      expect(drill.spec.timezone).toBe('UTC');
      expect(drill.spec.calendars?.[0]).toMatchObject({
        month: [
          { start: 'JANUARY', end: 'JANUARY', step: 1 },
          { start: 'APRIL', end: 'APRIL', step: 1 },
          { start: 'JULY', end: 'JULY', step: 1 },
          { start: 'OCTOBER', end: 'OCTOBER', step: 1 },
        ],
        dayOfMonth: [{ start: 15, end: 15, step: 1 }],
        hour: [{ start: 10, end: 10, step: 1 }],
      });
      expect(drill.action).toMatchObject({ workflowType: 'launchRunbook', taskQueue: t.taskQueue });
      expect(drill.state.paused).toBe(false);

      // The inventory pauses shop's readiness: the server's schedule is paused; unpausing it in the inventory unpauses
      // it.
      const pauseShop = (inv: Record<string, unknown>) => ({
        ...inv,
        services: (inv.services as { name: string }[]).map((s) =>
          s.name === 'shop' ? { ...s, schedules: { paused: ['readiness'] } } : s,
        ),
      });
      expect((await reconcile(wanted(pauseShop))).filter((c) => c.change !== 'unchanged')).toEqual([
        { id: `${prefix}readiness-shop`, change: 'paused' },
      ]);
      expect((await schedules.getHandle(`${prefix}readiness-shop`).describe()).state.paused).toBe(true);
      expect((await reconcile(wanted(pauseShop))).every((c) => c.change === 'unchanged')).toBe(true);
      expect((await reconcile(wanted())).filter((c) => c.change !== 'unchanged')).toEqual([
        { id: `${prefix}readiness-shop`, change: 'unpaused' },
      ]);
      expect((await schedules.getHandle(`${prefix}readiness-shop`).describe()).state.paused).toBe(false);

      // A moved time is an update; a service gone from the inventory takes its schedules with it.
      const changed = await reconcile(
        wanted((inv) => ({
          ...inv,
          schedules: { readiness: { minute: 42 } },
          services: (inv.services as { name: string }[]).filter((s) => s.name !== 'catalog'),
        })),
      );
      expect(changed.filter((c) => c.change !== 'unchanged')).toEqual(
        expect.arrayContaining([
          { id: `${prefix}readiness-shop`, change: 'updated' },
          { id: `${prefix}readiness-wiki`, change: 'updated' },
          { id: `${prefix}drill-catalog`, change: 'deleted' },
          { id: `${prefix}readiness-catalog`, change: 'deleted' },
        ]),
      );
      const readiness = await schedules.getHandle(`${prefix}readiness-shop`).describe();
      expect(readiness.spec.calendars?.[0].minute).toEqual([{ start: 42, end: 42, step: 1 }]);
    },
  );

  test(
    'the drill schedule launches drill-shop under its one id; ' + 'a second trigger while it runs is skipped',
    async () => {
      const [decl] = wanted((inv) => ({ ...inv, schedules: { drill: { scope: 'switchover', paused: true } } })).filter(
        (s) => s.id === `${prefix}drill-shop`,
      );
      const id = `${prefix}launch-drill-shop`;
      const handle = await schedules.create({ ...scheduleOptions({ ...decl, id }), scheduleId: id });
      /** The launcher runs the schedule has started so far, with their results. */
      const launches = async (d?: ScheduleDescription) =>
        Promise.all(
          ((d ?? (await handle.describe())).info.recentActions ?? []).map(
            (a) =>
              t.client.workflow
                .getHandle(a.action.workflow.workflowId, a.action.workflow.firstExecutionRunId)
                .result() as Promise<LaunchResult>,
          ),
        );

      await t.withWorkers(adapters.activities, async () => {
        await handle.trigger(); // paused in the inventory: nothing starts on its own, a trigger still runs it
        const [first] = await eventually(
          async () => {
            const d = await handle.describe();
            return d.info.recentActions.length === 1 ? launches(d) : null;
          },
          60_000,
          'the first launch',
        );
        expect(first).toMatchObject({
          outcome: 'started',
          workflowId: 'drill-shop',
          runbook: 'drill',
          service: 'shop',
        });
        // The drill runs as drill-shop (its id guard accepts it) and waits for the failover's approval.
        await eventually(
          async () => {
            const s = (await t.client.workflow
              .getHandle('drill-shop')
              .query(statusQuery)
              .catch(() => null)) as DrillStatus | null;
            return s?.activeChild === 'failover-shop';
          },
          90_000,
          'the scheduled drill running its failover',
        );

        // ALLOW_ALL: the schedule itself would start a second launcher; the launcher refuses the second drill.
        await handle.trigger('ALLOW_ALL');
        const results = await eventually(
          async () => {
            const d = await handle.describe();
            return d.info.recentActions.length === 2 ? launches(d) : null;
          },
          60_000,
          'the second launch',
        );
        expect(results[1]).toMatchObject({
          outcome: 'skipped',
          workflowId: 'drill-shop',
          detail: expect.stringMatching(/drill-shop is already running/),
        });
      });
      const drills = [];
      for await (const wf of t.client.workflow.list({
        query: `WorkflowId = 'drill-shop' AND ExecutionStatus = 'Running'`,
      }))
        drills.push(wf.runId);
      expect(drills).toHaveLength(1);
      const describe = await t.client.workflow.getHandle('drill-shop').describe();
      expect(describe.runId).toBe(drills[0]);
    },
  );
});
