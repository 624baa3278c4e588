/**
 * Every runbook's input, validated with zod inside the workflow before any side effect: the operator contract
 * (README.md, Runbooks). `parseInput` turns a bad input into a non-retryable InvalidInput naming every field.
 */
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { ErrorType } from './failures';
import { backupId, serviceName } from './names';

export const readinessInput = z
  .object({
    service: serviceName,
    /** Scheduled runs: compare with the schedule's previous run; notify when a check starts failing or recovers. */
    alertOnDrift: z.boolean().default(false),
  })
  .strict();
export type ReadinessInput = z.input<typeof readinessInput>;

/**
 * launchRunbook: what a schedule starts for a runbook that runs once per service at a time. The
 * launcher starts the runbook under its one id (`<runbook>-<service>`), so a run already going
 * (scheduled or by hand) makes the launch a "skipped", never a second run.
 */
export const launchInput = z
  .object({
    runbook: z.enum(['drill']),
    service: serviceName,
    /** The runbook's own input (validated by the runbook). */
    input: z.record(z.string(), z.unknown()),
  })
  .strict()
  .refine((l) => l.input.service === l.service, {
    message: 'input.service must be the launched service',
    path: ['input', 'service'],
  });
export type LaunchInput = z.input<typeof launchInput>;
export interface LaunchResult {
  runbook: string;
  service: string;
  workflowId: string;
  outcome: 'started' | 'skipped';
  detail: string;
}

export const failoverInput = z
  .object({
    service: serviceName,
    mode: z.enum(['real', 'drill']),
    reason: z.string().min(3, 'say why (at least 3 characters)').max(500),
    dryRun: z.boolean().default(false),
    /** Set by the monitor: when the incident began (ISO 8601), so RTO counts from detection. */
    incidentStartedAt: z.iso.datetime().optional(),
    /**
     * Kept for old clients; grants nothing. Whether a run is unattended comes from its parent (the
     * service's monitor), never from here: 'monitor' from any other starter is refused.
     */
    trigger: z.enum(['operator', 'monitor', 'drill']).default('operator'),
  })
  .strict();
export type FailoverInput = z.input<typeof failoverInput>;

export const failbackInput = z
  .object({
    service: serviceName,
    /** Recorded on the run; a critical service's failback needs two approvers in either mode (productionApprovals). */
    mode: z.enum(['real', 'drill']).default('real'),
  })
  .strict();
export type FailbackInput = z.input<typeof failbackInput>;

/**
 * resolveSplit: a human ends a split brain. `keep` is the member that stays writable; every other writable member is
 * fenced (read_only = ON), after the production approvers saw what each of them holds that `keep` lacks.
 */
export const resolveSplitInput = z
  .object({
    service: serviceName,
    keep: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'a database server name from the inventory'),
    reason: z.string().min(3).max(500),
  })
  .strict();
export type ResolveSplitInput = z.input<typeof resolveSplitInput>;

/** serviceRoles: the live roles of one service, read now (drctl status <service>). */
export const serviceRolesInput = z.object({ service: serviceName }).strict();
export type ServiceRolesInput = z.input<typeof serviceRolesInput>;
export const serviceLockInput = z
  .object({
    service: serviceName,
    /** Who holds it when it has no parent run (started by hand to freeze the service's topology). */
    holder: z.string().min(1).max(200).optional(),
  })
  .strict();
export type ServiceLockInput = z.input<typeof serviceLockInput>;

export const monitorInput = z
  .object({
    service: serviceName,
    /** Carried across continue-as-new: no failover is started before this time (ISO 8601). */
    cooldownUntil: z.iso.datetime().optional(),
  })
  .strict();
export type MonitorInput = z.input<typeof monitorInput>;

/** Every problem with an input, one line each, named by field. */
export function inputProblems(schema: z.ZodType, input: unknown): string[] {
  const result = schema.safeParse(input);
  return result.success
    ? []
    : result.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(input)'}: ${i.message}`);
}

/**
 * Validate a workflow input before any side effect. A bad input fails the run (not just the
 * workflow task) with a non-retryable InvalidInput failure that names every bad field.
 */
export function parseInput<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const result = schema.safeParse(input);
  if (!result.success) {
    const problems = inputProblems(schema, input);
    const example = INPUT_EXAMPLES.get(schema);
    throw ApplicationFailure.create({
      type: ErrorType.InvalidInput,
      message: `invalid input: ${problems.join('; ')}${example ? `. A valid input: ${JSON.stringify(example)}` : ''}`,
      nonRetryable: true,
      details: [problems],
    });
  }
  return result.data;
}

export const nightlyBackupInput = z
  .object({
    /** Default: every service with a `backup` section. */
    services: z.array(serviceName).min(1).optional(),
    /** Services backed up at the same time. */
    concurrency: z.number().int().min(1).max(64).default(4),
    /** Services per workflow run before continue-as-new: keeps each history small for a fleet of thousands. */
    batchSize: z.number().int().min(1).max(1000).default(100),
    /** EBS and RDS snapshots (and their DR copies) as well as the logical dump. */
    snapshots: z.boolean().default(true),
    /** Seconds between scheduled runs: the worst-case data-loss window a nightly backup leaves (RPO check). */
    intervalSeconds: z.number().int().min(60).default(86400),
  })
  .strict();
export type NightlyBackupInput = z.input<typeof nightlyBackupInput>;

export const binlogArchiveInput = z
  .object({
    /** Default: every service with `backup.binlogArchive: true`; a named service without it is refused. */
    services: z.array(serviceName).min(1).optional(),
    /** Services archived at the same time. */
    concurrency: z.number().int().min(1).max(64).default(4),
  })
  .strict();
export type BinlogArchiveInput = z.input<typeof binlogArchiveInput>;

export const serviceBackupInput = z
  .object({
    service: serviceName,
    /** Read from this member instead of the live one; refused if it is fenced or read-only (SourceNotWritable). */
    source: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'a MySQL server name from the inventory')
      .optional(),
    /** Set by nightlyBackup so one night's backups share an id; default: this run's start time. */
    backupId: backupId.optional(),
    snapshots: z.boolean().default(true),
    intervalSeconds: z.number().int().min(60).default(86400),
  })
  .strict();
export type ServiceBackupInput = z.input<typeof serviceBackupInput>;

export const drillInput = z
  .object({
    service: serviceName,
    /** isolated: bring a copy of the DR side up, production untouched; switchover: planned failover + failback. */
    scope: z.enum(['isolated', 'switchover']),
    reason: z.string().min(3, 'say why (at least 3 characters)').max(500).default('quarterly DR drill'),
  })
  .strict();
export type DrillInput = z.input<typeof drillInput>;

const validationQuery = z
  .object({ name: z.string().min(1), sql: z.string().min(1), expect: z.union([z.string(), z.number()]) })
  .strict();

const pitrQueryName = z.string().min(1, 'the name of an inventory query').max(200);

export const restoreTestInput = z
  .object({
    service: serviceName,
    /** Restore this backup instead of the newest verified one. */
    backupId: backupId.optional(),
    /** Also restore the newest RDS snapshot into the DR region (when the service has RDS). */
    rds: z.boolean().default(true),
    /** Tables loaded at the same time into the scratch database. */
    parallel: z.number().int().min(1).max(16).default(4),
    /**
     * Services with the binlog archive: the point the archived binlogs are replayed to after the
     * restore (a time: the state just before it; or a GTID: right after that transaction), and
     * read-only queries that must hold there. Default: the end of the archive, the inventory's queries.
     */
    pointInTime: z
      .object({
        time: z.iso.datetime({ offset: true }).optional(),
        gtid: z
          .string()
          .regex(/^\d+-\d+-\d+$/, 'a GTID like 0-1-1234')
          .optional(),
        /**
         * Names of the service's inventory queries (restoreTest.queries or pointInTimeQueries) to check at the
         * point. They run as drbook's admin user on scratch and their first cell reaches history, so ad-hoc SQL
         * is refused (an object is accepted by the schema only so that runs started before that still replay).
         */
        queries: z
          .array(z.union([pitrQueryName, validationQuery]))
          .max(100)
          .default([]),
      })
      .strict()
      .refine((p) => !(p.time && p.gtid), { message: 'give a time or a GTID, not both' })
      .optional(),
  })
  .strict();
export type RestoreTestInput = z.input<typeof restoreTestInput>;

/**
 * One valid input per runbook a person starts by hand (Web UI Start Workflow form, drctl), shown in an
 * InvalidInput failure so the form's user sees a shape that works. docs/operating.md's copy-paste blocks use
 * the same values (test/unit/start-from-ui.test.ts checks both parse).
 */
export const INPUT_EXAMPLES = new Map<z.ZodType, Record<string, unknown>>([
  [failoverInput, { service: 'shop', mode: 'drill', reason: 'quarterly failover drill' }],
  [failbackInput, { service: 'shop', mode: 'drill' }],
  [drillInput, { service: 'shop', scope: 'isolated', reason: 'quarterly DR drill' }],
  [restoreTestInput, { service: 'shop' }],
  [serviceBackupInput, { service: 'shop' }],
  [nightlyBackupInput, { services: ['shop', 'wiki'] }],
  [binlogArchiveInput, {}],
  [readinessInput, { service: 'shop' }],
  [resolveSplitInput, { service: 'shop', keep: 'db-primary', reason: 'split after the network partition' }],
  [serviceRolesInput, { service: 'shop' }],
  [monitorInput, { service: 'shop' }],
  [serviceLockInput, { service: 'shop', holder: 'alice: maintenance window' }],
]);
