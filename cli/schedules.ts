/**
 * drbook's Temporal Schedules, declared in the inventory (`schedules:`, and per service
 * `services[].schedules`) and reconciled by one command:
 *
 *   drctl schedules reconcile [--dry-run]     drctl schedules list      (cli/commands/schedules.ts)
 *
 * `reconcile` makes the server match the declarations built below: creates what is missing, updates
 * what differs, pauses or unpauses what the inventory pauses, deletes drbook schedules (ids starting
 * "drbook-") that are no longer declared, and leaves every other schedule alone. Idempotent: a second
 * run reports every schedule "unchanged". Each schedule carries a fingerprint of its declaration in
 * its note, so "differs" never depends on how the server echoes a spec back.
 *
 * Runbooks that must run once per service at a time (the drill: workflow id `drill-<service>`) are
 * started through the `launchRunbook` workflow, because a scheduled run's id gets a timestamp.
 * Settings (environment): DRBOOK_TASK_QUEUE (default "drbook"), DRBOOK_INVENTORY, TEMPORAL_* (as for drctl).
 */
import { createHash } from 'node:crypto';
import {
  MONTHS,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type CalendarSpec,
  type Client,
  type ScheduleOptions,
} from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { type Inventory, type SERVICE_SCHEDULE_KINDS, TASK_QUEUE, type LaunchInput, workflowIdFor } from '../contract';
import { RUNBOOKS } from './runbooks';

export const SCHEDULE_PREFIX = 'drbook-';

export interface DrbookSchedule {
  /** Schedule id; starts with "drbook-" so reconcile knows it owns it. */
  id: string;
  description: string;
  workflowType: string;
  args: unknown[];
  /** Workflow id of each run (Temporal appends the scheduled time). */
  workflowId: string;
  taskQueue: string;
  /** When: calendar fields as Temporal reads them (unset = every). */
  calendar: CalendarSpec;
  timeZone: string;
  overlap: keyof typeof ScheduleOverlapPolicy;
  /** How late a missed run (server down at 03:00) may still start. */
  catchupWindow: Duration;
  /** Paused in the inventory: the server's schedule is paused (not part of the fingerprint). */
  paused: boolean;
}

/** What the declarations read: the inventory's schedules and services. */
export type ScheduledInventory = Pick<Inventory, 'services' | 'schedules'>;
type Service = Inventory['services'][number];

const clock = (hhmm: string) => {
  const [hour, minute] = hhmm.split(':').map(Number);
  return { hour, minute };
};
const pausedFor = (svc: Service, kind: (typeof SERVICE_SCHEDULE_KINDS)[number], global: boolean) =>
  global || Boolean(svc.schedules?.paused.includes(kind));

/** Every kind of schedule drbook keeps, one builder each: a new kind is one more entry here. */
export const SCHEDULE_KINDS: Record<string, (inv: ScheduledInventory, taskQueue: string) => DrbookSchedule[]> = {
  nightlyBackup: ({ schedules: s }, taskQueue) => [
    {
      id: `${SCHEDULE_PREFIX}nightly-backup`,
      description: 'nightly backup of every service with a backup section (docs/backup.md)',
      workflowType: RUNBOOKS.backup.type,
      args: [{}],
      workflowId: 'nightly-backup',
      taskQueue,
      calendar: clock(s.nightlyBackup.at),
      timeZone: s.timeZone,
      // A night that is still running when the next one is due is not doubled up.
      overlap: 'SKIP',
      catchupWindow: '6h',
      paused: s.nightlyBackup.paused,
    },
  ],

  restoreTest: ({ schedules: s, services }, taskQueue) =>
    services
      .filter((svc) => svc.restoreTest && svc.backup)
      .map((svc) => ({
        id: `${SCHEDULE_PREFIX}restore-test-${svc.name}`,
        description:
          `monthly restore test of ${svc.name}: its newest verified backup restored and checked ` + `(docs/restore.md)`,
        workflowType: RUNBOOKS['restore-test'].type,
        args: [{ service: svc.name }],
        workflowId: workflowIdFor('restore-test', svc.name),
        taskQueue,
        calendar: { dayOfMonth: s.restoreTest.dayOfMonth, ...clock(s.restoreTest.at) },
        timeZone: s.timeZone,
        overlap: 'SKIP' as const,
        catchupWindow: '1d',
        paused: pausedFor(svc, 'restoreTest', s.restoreTest.paused),
      })),

  drill: ({ schedules: s, services }, taskQueue) =>
    services.map((svc) => {
      const scope = svc.schedules?.drillScope ?? s.drill.scope;
      const launch: LaunchInput = {
        runbook: 'drill',
        service: svc.name,
        input: { service: svc.name, scope, reason: `scheduled ${scope} DR drill` },
      };
      return {
        id: `${SCHEDULE_PREFIX}drill-${svc.name}`,
        description:
          `${scope} DR drill of ${svc.name} (months ${s.drill.months.join(',')}), ` +
          `launched as ${workflowIdFor('drill', svc.name)}: skipped while one runs`,
        workflowType: 'launchRunbook',
        args: [launch],
        workflowId: `scheduled-${workflowIdFor('drill', svc.name)}`,
        taskQueue,
        calendar: {
          month: [...s.drill.months].sort((a, b) => a - b).map((m) => ({ start: MONTHS[m - 1], end: MONTHS[m - 1] })),
          dayOfMonth: s.drill.dayOfMonth,
          ...clock(s.drill.at),
        },
        timeZone: s.timeZone,
        overlap: 'SKIP' as const,
        catchupWindow: '1d',
        paused: pausedFor(svc, 'drill', s.drill.paused),
      };
    }),

  readiness: ({ schedules: s, services }, taskQueue) =>
    services.map((svc) => ({
      id: `${SCHEDULE_PREFIX}readiness-${svc.name}`,
      description:
        `hourly readiness of ${svc.name}: every read-only check its failover depends ` +
        `on${s.readiness.alertOnDrift ? '; alerts when a check starts failing or recovers' : ''}`,
      workflowType: RUNBOOKS.readiness.type,
      args: [{ service: svc.name, ...(s.readiness.alertOnDrift ? { alertOnDrift: true } : {}) }],
      workflowId: workflowIdFor('readiness', svc.name),
      taskQueue,
      calendar: { minute: s.readiness.minute },
      timeZone: s.timeZone,
      overlap: 'SKIP' as const,
      catchupWindow: '10m',
      paused: pausedFor(svc, 'readiness', s.readiness.paused),
    })),

  // The binlog RPO: every few minutes, when any service has the archive on.
  binlogArchive: ({ schedules: s, services }, taskQueue) =>
    services.some((svc) => svc.backup?.binlogArchive)
      ? [
          {
            id: `${SCHEDULE_PREFIX}binlog-archive`,
            description:
              `binlog archive every ${s.binlogArchive.everyMinutes} min of every service with ` +
              `backup.binlogArchive (docs/backup.md)`,
            workflowType: 'binlogArchive',
            args: [{}],
            workflowId: 'binlog-archive',
            taskQueue,
            calendar: { minute: { start: 0, end: 59, step: s.binlogArchive.everyMinutes } },
            timeZone: s.timeZone,
            overlap: 'SKIP' as const,
            // A missed run is covered by the next one.
            catchupWindow: `${s.binlogArchive.everyMinutes}m` as Duration,
            paused: s.binlogArchive.paused,
          },
        ]
      : [],
};

/** The schedules drbook wants on the server, from the inventory. */
export function drbookSchedules(
  inventory: ScheduledInventory,
  taskQueue: string = process.env.DRBOOK_TASK_QUEUE || TASK_QUEUE,
): DrbookSchedule[] {
  return Object.values(SCHEDULE_KINDS).flatMap((build) => build(inventory, taskQueue));
}

/** A stable fingerprint of a declaration: what "unchanged" means. */
export function fingerprint({ paused: _paused, ...s }: DrbookSchedule): string {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
          )
        : v;
  return createHash('sha256')
    .update(JSON.stringify(canonical(s)))
    .digest('hex')
    .slice(0, 16);
}

const noteOf = (s: DrbookSchedule) => `drbook ${fingerprint(s)}: ${s.description}`;

export function scheduleOptions(s: DrbookSchedule): ScheduleOptions {
  return {
    scheduleId: s.id,
    spec: { calendars: [{ ...s.calendar }], timezone: s.timeZone },
    action: {
      type: 'startWorkflow',
      workflowType: s.workflowType,
      args: s.args,
      taskQueue: s.taskQueue,
      workflowId: s.workflowId,
      // The runs list and the run's page say what started it and why.
      staticSummary: `scheduled: ${s.description}`.slice(0, 200),
    },
    policies: { overlap: ScheduleOverlapPolicy[s.overlap], catchupWindow: s.catchupWindow },
    state: { note: noteOf(s), paused: s.paused },
  };
}

/** The part of Temporal's ScheduleClient reconcile uses (tests pass a fake). */
export interface ScheduleApi {
  list(): AsyncIterable<{ scheduleId: string }>;
  create(options: ScheduleOptions): Promise<unknown>;
  getHandle(id: string): {
    describe(): Promise<{ state: { note?: string; paused: boolean } }>;
    update(fn: (previous: never) => unknown): Promise<void>;
    delete(): Promise<void>;
  };
}

export interface ScheduleChange {
  id: string;
  change: 'created' | 'updated' | 'paused' | 'unpaused' | 'deleted' | 'unchanged';
}

/** Make the server's drbook schedules match `wanted`. */
export async function reconcileSchedules(
  api: ScheduleApi,
  wanted: DrbookSchedule[],
  opts: { prefix?: string; dryRun?: boolean } = {},
): Promise<ScheduleChange[]> {
  const prefix = opts.prefix ?? SCHEDULE_PREFIX;
  for (const s of wanted)
    if (!s.id.startsWith(prefix)) throw new Error(`schedule id ${s.id} must start with ${prefix}`);
  const changes: ScheduleChange[] = [];
  // Declared schedules are looked up by id (strongly consistent); the list (visibility, eventually
  // consistent) only finds the undeclared ones to delete.
  for (const s of wanted) {
    const handle = api.getHandle(s.id);
    const current = await handle.describe().catch((err: unknown) => {
      if (err instanceof ScheduleNotFoundError) return null;
      throw err;
    });
    if (!current) {
      if (!opts.dryRun) await api.create(scheduleOptions(s));
      changes.push({ id: s.id, change: 'created' });
      continue;
    }
    const sameSpec = current.state.note === noteOf(s);
    if (sameSpec && current.state.paused === s.paused) {
      changes.push({ id: s.id, change: 'unchanged' });
      continue;
    }
    if (!opts.dryRun) {
      const { spec, action, policies } = scheduleOptions(s);
      // One update carries the spec and the pause state (pause()/unpause() would overwrite the note).
      await handle.update((previous: { state: { paused?: boolean } }) => ({
        ...previous,
        spec,
        action,
        policies,
        state: { ...previous.state, note: noteOf(s), paused: s.paused },
      }));
    }
    changes.push({ id: s.id, change: !sameSpec ? 'updated' : s.paused ? 'paused' : 'unpaused' });
  }
  const declared = new Set(wanted.map((s) => s.id));
  const undeclared = new Set<string>();
  for await (const { scheduleId } of api.list())
    if (scheduleId.startsWith(prefix) && !declared.has(scheduleId)) undeclared.add(scheduleId);
  for (const id of [...undeclared].sort()) {
    if (!opts.dryRun) {
      const gone = await api
        .getHandle(id)
        .delete()
        .then(
          () => false,
          (err: unknown) => {
            if (err instanceof ScheduleNotFoundError) return true; // deleted a moment ago; the list lags
            throw err;
          },
        );
      if (gone) continue;
    }
    changes.push({ id, change: 'deleted' });
  }
  return changes;
}

/**
 * `list`: drbook's schedules on the server with their next run and pause state; `reconcile`: make the
 * server match the inventory, one line per schedule saying what changed.
 */
export async function schedulesCommand(
  client: Client,
  command: string,
  opts: { dryRun?: boolean; inventory?: ScheduledInventory; taskQueue?: string },
  print: (line: string) => void,
): Promise<ScheduleChange[]> {
  if (command === 'list') {
    const ids: string[] = [];
    for await (const s of client.schedule.list()) if (s.scheduleId.startsWith(SCHEDULE_PREFIX)) ids.push(s.scheduleId);
    for (const id of ids.sort()) {
      const d = await client.schedule.getHandle(id).describe();
      print(
        `${id}: next ${d.info.nextActionTimes[0]?.toISOString() ?? '-'}${d.state.paused ? ' (paused)' : ''} ` +
          `— ${d.state.note ?? ''}`,
      );
    }
    return [];
  }
  if (command !== 'reconcile') throw new Error(`unknown command "${command}": reconcile [--dry-run] | list`);
  if (!opts.inventory) throw new Error('reconcile needs the inventory');
  const changes = await reconcileSchedules(
    client.schedule as unknown as ScheduleApi,
    drbookSchedules(opts.inventory, opts.taskQueue),
    { dryRun: opts.dryRun },
  );
  for (const c of changes)
    print(`[schedules] ${c.id}: ${c.change}${opts.dryRun && c.change !== 'unchanged' ? ' (dry run)' : ''}`);
  const changed = changes.filter((c) => c.change !== 'unchanged').length;
  print(`[schedules] ${changed ? `${changed} change(s)` : 'nothing to change'}${opts.dryRun ? ' (dry run)' : ''}`);
  return changes;
}
