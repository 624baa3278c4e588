/**
 * drbook's Temporal Schedules, declared in code and reconciled by one command:
 *
 *   node -r ts-node/register/transpile-only scripts/schedules.ts reconcile [--dry-run]
 *   node -r ts-node/register/transpile-only scripts/schedules.ts list
 *
 * `reconcile` makes the server match DRBOOK_SCHEDULES below: creates what is missing, updates what
 * differs, deletes drbook schedules (ids starting "drbook-") that are no longer declared, and leaves
 * every other schedule alone. Idempotent: a second run reports every schedule "unchanged". Each
 * schedule carries a fingerprint of its declaration in its note, so "differs" never depends on how
 * the server echoes a spec back. A schedule an operator paused stays paused across updates.
 *
 * Settings (environment): DRBOOK_SCHEDULE_TIME_ZONE (IANA name, default UTC), DRBOOK_NIGHTLY_BACKUP_AT
 * ("HH:MM", default 03:00), DRBOOK_TASK_QUEUE (default "drbook"), and the usual TEMPORAL_* connection.
 * DRBOOK_RESTORE_TEST_AT ("HH:MM", default 04:00 on the 1st), DRBOOK_READINESS_MINUTE (default 17),
 * DRBOOK_BINLOG_ARCHIVE_EVERY_MINUTES (default 5; only when a service has backup.binlogArchive).
 * Not yet scheduled: the quarterly drill (a scheduled run's id gets a timestamp, which the drill's
 * one-per-service workflow id guard refuses).
 */
import { createHash } from 'node:crypto';
import { Client, Connection, ScheduleOverlapPolicy, type CalendarSpec, type ScheduleOptions } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { Inventory } from '../config/inventory';
import { loadInventory } from '../config/load';
import { TASK_QUEUE } from '../workflows/contract';

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
}

function at(value: string | undefined, fallback: string): { hour: number; minute: number } {
  const m = /^(\d{1,2}):(\d{2})$/.exec(value ?? fallback);
  if (!m || Number(m[1]) > 23 || Number(m[2]) > 59) throw new Error(`expected a time like "03:00", got "${value}"`);
  return { hour: Number(m[1]), minute: Number(m[2]) };
}

/**
 * The schedules drbook wants on the server: the nightly backup, and per service in the inventory a
 * monthly restore test (services with a restoreTest section; day 1, DRBOOK_RESTORE_TEST_AT, default
 * 04:00) and an hourly readiness check (read-only; minute DRBOOK_READINESS_MINUTE, default 17).
 */
export function drbookSchedules(
  env: NodeJS.ProcessEnv = process.env,
  inventory?: Pick<Inventory, 'services'>,
): DrbookSchedule[] {
  const timeZone = env.DRBOOK_SCHEDULE_TIME_ZONE || 'UTC';
  const taskQueue = env.DRBOOK_TASK_QUEUE || TASK_QUEUE;
  const perService = (inventory?.services ?? []).flatMap((svc): DrbookSchedule[] => [
    ...(svc.restoreTest && svc.backup
      ? [
          {
            id: `${SCHEDULE_PREFIX}restore-test-${svc.name}`,
            description: `monthly restore test of ${svc.name}: its newest verified backup restored and checked (docs/restore.md)`,
            workflowType: 'restoreTest',
            args: [{ service: svc.name }],
            workflowId: `restore-test-${svc.name}`,
            taskQueue,
            calendar: { dayOfMonth: 1, ...at(env.DRBOOK_RESTORE_TEST_AT, '04:00') },
            timeZone,
            overlap: 'SKIP' as const,
            catchupWindow: '1d' as Duration,
          },
        ]
      : []),
    {
      id: `${SCHEDULE_PREFIX}readiness-${svc.name}`,
      description: `hourly readiness of ${svc.name}: every read-only check its failover depends on`,
      workflowType: 'readiness',
      args: [{ service: svc.name }],
      workflowId: `readiness-${svc.name}`,
      taskQueue,
      calendar: { minute: Number(env.DRBOOK_READINESS_MINUTE ?? 17) },
      timeZone,
      overlap: 'SKIP',
      catchupWindow: '10m',
    },
  ]);
  // The binlog RPO: every few minutes, when any service has the archive on.
  const everyMinutes = Number(env.DRBOOK_BINLOG_ARCHIVE_EVERY_MINUTES ?? 5);
  if (!Number.isInteger(everyMinutes) || everyMinutes < 1 || everyMinutes > 60)
    throw new Error(
      `DRBOOK_BINLOG_ARCHIVE_EVERY_MINUTES: expected 1..60, got "${env.DRBOOK_BINLOG_ARCHIVE_EVERY_MINUTES}"`,
    );
  const binlogArchive: DrbookSchedule[] = (inventory?.services ?? []).some((s) => s.backup?.binlogArchive)
    ? [
        {
          id: `${SCHEDULE_PREFIX}binlog-archive`,
          description: `binlog archive every ${everyMinutes} min of every service with backup.binlogArchive (docs/backup.md)`,
          workflowType: 'binlogArchive',
          args: [{}],
          workflowId: 'binlog-archive',
          taskQueue,
          calendar: { minute: { start: 0, end: 59, step: everyMinutes } },
          timeZone,
          overlap: 'SKIP',
          // A missed run is covered by the next one.
          catchupWindow: `${everyMinutes}m`,
        },
      ]
    : [];
  return [
    ...perService,
    ...binlogArchive,
    {
      id: `${SCHEDULE_PREFIX}nightly-backup`,
      description: 'nightly backup of every service with a backup section (docs/backup.md)',
      workflowType: 'nightlyBackup',
      args: [{}],
      workflowId: 'nightly-backup',
      taskQueue,
      calendar: at(env.DRBOOK_NIGHTLY_BACKUP_AT, '03:00'),
      timeZone,
      // A night that is still running when the next one is due is not doubled up.
      overlap: 'SKIP',
      catchupWindow: '6h',
    },
  ];
}

/** A stable fingerprint of a declaration: what "unchanged" means. */
export function fingerprint(s: DrbookSchedule): string {
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
    },
    policies: { overlap: ScheduleOverlapPolicy[s.overlap], catchupWindow: s.catchupWindow },
    state: { note: noteOf(s) },
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
  change: 'created' | 'updated' | 'deleted' | 'unchanged';
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
  const existing = new Set<string>();
  for await (const s of api.list()) if (s.scheduleId.startsWith(prefix)) existing.add(s.scheduleId);
  const changes: ScheduleChange[] = [];
  for (const s of wanted) {
    if (!existing.has(s.id)) {
      if (!opts.dryRun) await api.create(scheduleOptions(s));
      changes.push({ id: s.id, change: 'created' });
      continue;
    }
    const handle = api.getHandle(s.id);
    const current = await handle.describe();
    if (current.state.note === noteOf(s)) {
      changes.push({ id: s.id, change: 'unchanged' });
      continue;
    }
    if (!opts.dryRun) {
      const { spec, action, policies } = scheduleOptions(s);
      await handle.update((previous: { state: { paused?: boolean } }) => ({
        ...previous,
        spec,
        action,
        policies,
        state: { ...previous.state, note: noteOf(s) },
      }));
    }
    changes.push({ id: s.id, change: 'updated' });
  }
  const declared = new Set(wanted.map((s) => s.id));
  for (const id of [...existing].sort()) {
    if (declared.has(id)) continue;
    if (!opts.dryRun) await api.getHandle(id).delete();
    changes.push({ id, change: 'deleted' });
  }
  return changes;
}

async function main() {
  const [command = 'reconcile'] = process.argv.slice(2);
  const dryRun = process.argv.includes('--dry-run');
  const { connectionOptions, namespace } = loadClientConnectConfig();
  const connection = await Connection.connect(connectionOptions);
  try {
    const client = new Client({ connection, namespace });
    if (command === 'list') {
      for await (const s of client.schedule.list()) {
        if (!s.scheduleId.startsWith(SCHEDULE_PREFIX)) continue;
        const d = await client.schedule.getHandle(s.scheduleId).describe();
        console.log(
          `${s.scheduleId}: next ${d.info.nextActionTimes[0]?.toISOString() ?? '-'}${d.state.paused ? ' (paused)' : ''} — ${d.state.note ?? ''}`,
        );
      }
      return;
    }
    if (command !== 'reconcile') throw new Error(`unknown command "${command}": reconcile [--dry-run] | list`);
    const { inventory } = loadInventory();
    const changes = await reconcileSchedules(
      client.schedule as unknown as ScheduleApi,
      drbookSchedules(process.env, inventory),
      {
        dryRun,
      },
    );
    for (const c of changes)
      console.log(`[schedules] ${c.id}: ${c.change}${dryRun && c.change !== 'unchanged' ? ' (dry run)' : ''}`);
  } finally {
    await connection.close();
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
