/**
 * Schedule reconciliation (cli/schedules.ts) against an in-memory schedule API: the second
 * reconcile changes nothing; a changed declaration is updated; the inventory's pause pauses and
 * unpauses; an undeclared drbook schedule is deleted; other schedules are never touched.
 * (test/integration/schedules.test.ts does the same against the dev server.)
 */
import { ScheduleNotFoundError, type ScheduleOptions } from '@temporalio/client';
import { parseInventory } from '../../contract';
import { drbookSchedules, reconcileSchedules, type ScheduleApi } from '../../cli/schedules';
import { sandbox } from '../helpers/stack';

/** The sandbox inventory with its `schedules:` section replaced (and service settings merged in). */
function withSchedules(schedules: object, services: Record<string, object> = {}) {
  const { inventory } = sandbox();
  return parseInventory({
    ...inventory,
    schedules,
    services: inventory.services.map((s) => ({ ...s, schedules: { ...s.schedules, ...services[s.name] } })),
  });
}
const only = (inv: ReturnType<typeof withSchedules>, prefix: string) =>
  drbookSchedules(inv).filter((s) => s.id.startsWith(prefix));

interface Stored {
  options: ScheduleOptions;
  state: { note?: string; paused: boolean };
}

function fakeServer() {
  const schedules = new Map<string, Stored>();
  const calls: string[] = [];
  const api: ScheduleApi = {
    async *list() {
      for (const scheduleId of schedules.keys()) yield { scheduleId };
    },
    async create(options) {
      calls.push(`create ${options.scheduleId}`);
      schedules.set(options.scheduleId, { options, state: { note: options.state?.note, paused: false } });
    },
    getHandle(id) {
      return {
        async describe() {
          const s = schedules.get(id);
          if (!s) throw new ScheduleNotFoundError('schedule not found', id);
          return { state: s.state };
        },
        async update(fn) {
          calls.push(`update ${id}`);
          const s = schedules.get(id)!;
          const next = (fn as (p: unknown) => { state: { note?: string; paused: boolean } } & ScheduleOptions)({
            ...s.options,
            state: s.state,
          });
          schedules.set(id, { options: { ...s.options, ...next }, state: next.state });
        },
        async delete() {
          calls.push(`delete ${id}`);
          schedules.delete(id);
        },
      };
    },
  };
  return { api, schedules, calls };
}

describe('schedule reconciliation', () => {
  test(
    'creates the nightly backup at 03:00 in the inventory time zone with overlap SKIP; ' +
      'a second run changes nothing',
    async () => {
      const server = fakeServer();
      const inv = withSchedules({ timeZone: 'Europe/Berlin' });
      expect(await reconcileSchedules(server.api, only(inv, 'drbook-nightly'))).toEqual([
        { id: 'drbook-nightly-backup', change: 'created' },
      ]);
      const nightly = server.schedules.get('drbook-nightly-backup')!.options;
      expect(nightly.spec).toEqual({ calendars: [{ hour: 3, minute: 0 }], timezone: 'Europe/Berlin' });
      expect(nightly.policies?.overlap).toBe('SKIP');
      expect(nightly.action).toMatchObject({ workflowType: 'nightlyBackup', taskQueue: 'drbook', args: [{}] });

      server.calls.length = 0;
      expect(
        await reconcileSchedules(server.api, only(withSchedules({ timeZone: 'Europe/Berlin' }), 'drbook-nightly')),
      ).toEqual([{ id: 'drbook-nightly-backup', change: 'unchanged' }]);
      expect(server.calls).toEqual([]);
    },
  );

  test(
    'updates a changed declaration, deletes undeclared drbook schedules, ignores others; ' +
      'pause follows the inventory',
    async () => {
      const server = fakeServer();
      await reconcileSchedules(server.api, only(withSchedules({}), 'drbook-nightly'));
      server.schedules.set('drbook-retired', {
        options: { scheduleId: 'drbook-retired' } as ScheduleOptions,
        state: { paused: false },
      });
      server.schedules.set('someone-elses', {
        options: { scheduleId: 'someone-elses' } as ScheduleOptions,
        state: { paused: false },
      });

      const moved = only(withSchedules({ nightlyBackup: { at: '02:30' } }), 'drbook-nightly');
      expect(await reconcileSchedules(server.api, moved)).toEqual([
        { id: 'drbook-nightly-backup', change: 'updated' },
        { id: 'drbook-retired', change: 'deleted' },
      ]);
      expect(server.schedules.get('drbook-nightly-backup')!.options.spec?.calendars).toEqual([{ hour: 2, minute: 30 }]);
      expect([...server.schedules.keys()].sort()).toEqual(['drbook-nightly-backup', 'someone-elses']);

      // Paused in the inventory: paused on the server (spec unchanged), then unpaused again.
      const pausedDecl = only(withSchedules({ nightlyBackup: { at: '02:30', paused: true } }), 'drbook-nightly');
      expect(await reconcileSchedules(server.api, pausedDecl)).toEqual([
        { id: 'drbook-nightly-backup', change: 'paused' },
      ]);
      expect(server.schedules.get('drbook-nightly-backup')!.state.paused).toBe(true);
      expect(await reconcileSchedules(server.api, pausedDecl)).toEqual([
        { id: 'drbook-nightly-backup', change: 'unchanged' },
      ]);
      expect(await reconcileSchedules(server.api, moved)).toEqual([
        { id: 'drbook-nightly-backup', change: 'unpaused' },
      ]);
      expect(server.schedules.get('drbook-nightly-backup')!.state.paused).toBe(false);

      // Dry run: reports, changes nothing.
      const before = JSON.stringify([...server.schedules]);
      expect(await reconcileSchedules(server.api, only(withSchedules({}), 'drbook-nightly'), { dryRun: true })).toEqual(
        [{ id: 'drbook-nightly-backup', change: 'updated' }],
      );
      expect(JSON.stringify([...server.schedules])).toBe(before);
    },
  );
});

describe('schedules from the inventory', () => {
  test(
    'per service: a monthly restore test where there is one, ' +
      'a quarterly drill through the launcher, an hourly readiness; idempotent',
    async () => {
      const { inventory } = sandbox();
      const wanted = drbookSchedules(inventory);
      const ids = wanted.map((s) => s.id);
      expect(ids).toEqual(
        expect.arrayContaining([
          'drbook-nightly-backup',
          'drbook-restore-test-shop',
          'drbook-drill-shop',
          'drbook-drill-catalog',
          'drbook-readiness-shop',
          'drbook-readiness-catalog',
          'drbook-readiness-wiki',
        ]),
      );
      expect(ids).not.toContain('drbook-restore-test-catalog'); // catalog has no backup to restore
      expect(wanted.find((s) => s.id === 'drbook-restore-test-shop')).toMatchObject({
        workflowType: 'restoreTest',
        args: [{ service: 'shop' }],
        calendar: { dayOfMonth: 1, hour: 4, minute: 0 },
        overlap: 'SKIP',
      });
      expect(wanted.find((s) => s.id === 'drbook-readiness-shop')).toMatchObject({
        workflowType: 'readiness',
        args: [{ service: 'shop', alertOnDrift: true }],
        calendar: { minute: 17 },
      });
      // The drill runs as drill-<service> through launchRunbook (a scheduled id would carry a timestamp).
      expect(wanted.find((s) => s.id === 'drbook-drill-shop')).toMatchObject({
        workflowType: 'launchRunbook',
        args: [{ runbook: 'drill', service: 'shop', input: { service: 'shop', scope: 'isolated' } }],
        calendar: {
          month: [
            { start: 'JANUARY', end: 'JANUARY' },
            { start: 'APRIL', end: 'APRIL' },
            { start: 'JULY', end: 'JULY' },
            { start: 'OCTOBER', end: 'OCTOBER' },
          ],
          dayOfMonth: 15,
          hour: 10,
          minute: 0,
        },
        paused: false,
      });
      const server = fakeServer();
      await reconcileSchedules(server.api, wanted);
      const again = await reconcileSchedules(server.api, drbookSchedules(inventory));
      expect(again.every((c) => c.change === 'unchanged')).toBe(true);
      expect(again).toHaveLength(wanted.length);
    },
  );

  test('a service pauses its own schedules and picks its drill scope; others keep the defaults', () => {
    const inv = withSchedules(
      { drill: { months: [3, 9], scope: 'isolated' } },
      { shop: { paused: ['readiness'], drillScope: 'switchover' } },
    );
    const byId = Object.fromEntries(drbookSchedules(inv).map((s) => [s.id, s]));
    expect(byId['drbook-readiness-shop'].paused).toBe(true);
    expect(byId['drbook-readiness-wiki'].paused).toBe(false);
    expect(byId['drbook-drill-shop'].args).toEqual([
      {
        runbook: 'drill',
        service: 'shop',
        input: { service: 'shop', scope: 'switchover', reason: expect.any(String) },
      },
    ]);
    expect(byId['drbook-drill-wiki'].calendar.month).toEqual([
      { start: 'MARCH', end: 'MARCH' },
      { start: 'SEPTEMBER', end: 'SEPTEMBER' },
    ]);
  });

  test('a bad schedules section is refused with the path of each problem', () => {
    expect(() =>
      withSchedules({ timeZone: 'Mars/Olympus', nightlyBackup: { at: '25:00' }, drill: { months: [13] } }),
    ).toThrow(
      new RegExp(
        String.raw`schedules\.timeZone: an IANA time zone[\s\S]*` +
          String.raw`schedules\.nightlyBackup\.at: a time like "03:00"[\s\S]*schedules\.drill\.months\.0`,
      ),
    );
    expect(() => withSchedules({}, { shop: { paused: ['coffee'] } })).toThrow(/services\.0\.schedules\.paused\.0/);
  });
});

describe('the binlog archive schedule', () => {
  test(
    'every 5 minutes (or schedules.binlogArchive.everyMinutes) ' + 'when a service has the archive on; none otherwise',
    () => {
      const { inventory } = sandbox();
      expect(drbookSchedules(inventory).map((s) => s.id)).not.toContain('drbook-binlog-archive');
      const withArchive = structuredClone(inventory);
      withArchive.services.find((s) => s.name === 'shop')!.backup!.binlogArchive = true;
      expect(drbookSchedules(withArchive).find((s) => s.id === 'drbook-binlog-archive')).toMatchObject({
        workflowType: 'binlogArchive',
        args: [{}],
        workflowId: 'binlog-archive',
        calendar: { minute: { start: 0, end: 59, step: 5 } },
        overlap: 'SKIP',
        catchupWindow: '5m',
        paused: false,
      });
      const every2 = parseInventory({
        ...withArchive,
        schedules: { binlogArchive: { everyMinutes: 2, paused: true } },
      });
      expect(drbookSchedules(every2).find((s) => s.id === 'drbook-binlog-archive')).toMatchObject({
        calendar: { minute: { start: 0, end: 59, step: 2 } },
        paused: true,
      });
      expect(() => parseInventory({ ...withArchive, schedules: { binlogArchive: { everyMinutes: 0 } } })).toThrow(
        /schedules\.binlogArchive\.everyMinutes/,
      );
    },
  );
});
