/**
 * Schedule reconciliation (scripts/schedules.ts) against an in-memory schedule API: the second
 * reconcile changes nothing; a changed declaration is updated (a paused schedule stays paused);
 * an undeclared drbook schedule is deleted; other schedules are never touched.
 */
import type { ScheduleOptions } from '@temporalio/client';
import { drbookSchedules, reconcileSchedules, type ScheduleApi } from '../../scripts/schedules';
import { sandbox } from '../helpers/stack';

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
          return { state: schedules.get(id)!.state };
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
  test('creates the nightly backup at 03:00 in the configured time zone with overlap SKIP; a second run changes nothing', async () => {
    const server = fakeServer();
    const wanted = drbookSchedules({ DRBOOK_SCHEDULE_TIME_ZONE: 'Europe/Berlin' });
    expect(await reconcileSchedules(server.api, wanted)).toEqual([{ id: 'drbook-nightly-backup', change: 'created' }]);
    const nightly = server.schedules.get('drbook-nightly-backup')!.options;
    expect(nightly.spec).toEqual({ calendars: [{ hour: 3, minute: 0 }], timezone: 'Europe/Berlin' });
    expect(nightly.policies?.overlap).toBe('SKIP');
    expect(nightly.action).toMatchObject({ workflowType: 'nightlyBackup', taskQueue: 'drbook', args: [{}] });

    server.calls.length = 0;
    expect(
      await reconcileSchedules(server.api, drbookSchedules({ DRBOOK_SCHEDULE_TIME_ZONE: 'Europe/Berlin' })),
    ).toEqual([{ id: 'drbook-nightly-backup', change: 'unchanged' }]);
    expect(server.calls).toEqual([]);
  });

  test('updates a changed declaration (keeping an operator pause), deletes undeclared drbook schedules, ignores others', async () => {
    const server = fakeServer();
    await reconcileSchedules(server.api, drbookSchedules({}));
    server.schedules.get('drbook-nightly-backup')!.state.paused = true;
    server.schedules.set('drbook-retired', {
      options: { scheduleId: 'drbook-retired' } as ScheduleOptions,
      state: { paused: false },
    });
    server.schedules.set('someone-elses', {
      options: { scheduleId: 'someone-elses' } as ScheduleOptions,
      state: { paused: false },
    });

    const changes = await reconcileSchedules(server.api, drbookSchedules({ DRBOOK_NIGHTLY_BACKUP_AT: '02:30' }));
    expect(changes).toEqual([
      { id: 'drbook-nightly-backup', change: 'updated' },
      { id: 'drbook-retired', change: 'deleted' },
    ]);
    const nightly = server.schedules.get('drbook-nightly-backup')!;
    expect(nightly.options.spec?.calendars).toEqual([{ hour: 2, minute: 30 }]);
    expect(nightly.state.paused).toBe(true);
    expect([...server.schedules.keys()].sort()).toEqual(['drbook-nightly-backup', 'someone-elses']);

    // Dry run: reports, changes nothing.
    const before = JSON.stringify([...server.schedules]);
    expect(await reconcileSchedules(server.api, drbookSchedules({}), { dryRun: true })).toEqual([
      { id: 'drbook-nightly-backup', change: 'updated' },
    ]);
    expect(JSON.stringify([...server.schedules])).toBe(before);
  });
});

describe('schedules from the inventory', () => {
  test('a monthly restore test for each service that has one, an hourly readiness for every service; idempotent', async () => {
    const { inventory } = sandbox();
    const wanted = drbookSchedules({}, inventory);
    const ids = wanted.map((s) => s.id);
    expect(ids).toEqual(
      expect.arrayContaining([
        'drbook-nightly-backup',
        'drbook-restore-test-shop',
        'drbook-readiness-shop',
        'drbook-readiness-catalog',
        'drbook-readiness-wiki',
      ]),
    );
    expect(ids).not.toContain('drbook-restore-test-catalog'); // catalog has no backup to restore
    const monthly = wanted.find((s) => s.id === 'drbook-restore-test-shop')!;
    expect(monthly).toMatchObject({
      workflowType: 'restoreTest',
      args: [{ service: 'shop' }],
      calendar: { dayOfMonth: 1, hour: 4, minute: 0 },
      overlap: 'SKIP',
    });
    expect(wanted.find((s) => s.id === 'drbook-readiness-shop')).toMatchObject({
      workflowType: 'readiness',
      calendar: { minute: 17 },
    });
    const server = fakeServer();
    await reconcileSchedules(server.api, wanted);
    const again = await reconcileSchedules(server.api, drbookSchedules({}, inventory));
    expect(again.every((c) => c.change === 'unchanged')).toBe(true);
    expect(again).toHaveLength(wanted.length);
  });
});

describe('the binlog archive schedule', () => {
  test('every 5 minutes (or DRBOOK_BINLOG_ARCHIVE_EVERY_MINUTES) when a service has the archive on; none otherwise', () => {
    const { inventory } = sandbox();
    expect(drbookSchedules({}, inventory).map((s) => s.id)).not.toContain('drbook-binlog-archive');
    const withArchive = structuredClone(inventory);
    withArchive.services.find((s) => s.name === 'shop')!.backup!.binlogArchive = true;
    expect(drbookSchedules({}, withArchive).find((s) => s.id === 'drbook-binlog-archive')).toMatchObject({
      workflowType: 'binlogArchive',
      args: [{}],
      workflowId: 'binlog-archive',
      calendar: { minute: { start: 0, end: 59, step: 5 } },
      overlap: 'SKIP',
      catchupWindow: '5m',
    });
    expect(
      drbookSchedules({ DRBOOK_BINLOG_ARCHIVE_EVERY_MINUTES: '2' }, withArchive).find(
        (s) => s.id === 'drbook-binlog-archive',
      )?.calendar,
    ).toEqual({ minute: { start: 0, end: 59, step: 2 } });
    expect(() => drbookSchedules({ DRBOOK_BINLOG_ARCHIVE_EVERY_MINUTES: '0' }, withArchive)).toThrow(
      /DRBOOK_BINLOG_ARCHIVE_EVERY_MINUTES: expected 1..60, got "0"/,
    );
  });
});
