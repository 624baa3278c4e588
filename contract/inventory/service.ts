/** One service of the inventory: health, database, RDS, DR compute, fence, VIP, DNS, schedules, backup. */
import { z } from 'zod';
import { NETWORK_DEVICE } from '../names';
import { TIERS, duration, name, secretRef, tagFilter, tierTargets, webhookUrl, region } from './fields';
import { backup, restoreTest } from './backup';

const health = z
  .object({
    elbTargetGroup: z
      .object({ region, name: z.string().min(1) })
      .strict()
      .optional(),
    mysqlPing: z.boolean().default(true),
    httpUrl: z.url().optional(),
    /** Seconds between checks and consecutive failures before an incident (monitor). */
    interval: duration.default(10),
    failuresBeforeIncident: z.number().int().min(1).default(3),
    /** After the monitor starts a failover, it starts no other for this long. */
    cooldownAfterFailover: duration.prefault('1h'),
  })
  .strict();

const database = z
  .object({
    engine: z.enum(['mariadb', 'mysql']).default('mariadb'),
    primary: name,
    replica: name.optional(),
    /** pt-heartbeat style row, updated every second on the primary and replicated: dates the replica's data. */
    heartbeatTable: z
      .string()
      .regex(/^\w+\.\w+$/, 'database.table')
      .default('drbook.heartbeat'),
    /** The scheduled event that stamps the heartbeat: disabled when a primary is fenced, enabled on promotion. */
    heartbeatEvent: z
      .string()
      .regex(/^\w+\.\w+$/, 'database.event')
      .default('drbook.heartbeat_tick'),
    /** How a rebuilt replica connects to its new primary (failback re-protects with it). */
    replication: z
      .object({ user: z.string().min(1), password: secretRef })
      .strict()
      .optional(),
    /** Cold strategy: the DR-side server a backup is restored into. */
    drServer: name.optional(),
  })
  .strict();

const rds = z
  .object({
    region,
    instance: z.string().min(1),
    drReplica: z
      .object({ region, instance: z.string().min(1) })
      .strict()
      .optional(),
    /** Automated backups: retention (days) and window ("03:00-04:00" UTC), enforced by the nightly backup. */
    backupRetentionDays: z.number().int().min(0).max(35).optional(),
    backupWindow: z
      .string()
      .regex(/^\d{2}:\d{2}-\d{2}:\d{2}$/, 'a UTC window like "03:00-04:00"')
      .optional(),
  })
  .strict();

const drCompute = z
  .object({ region, tags: tagFilter.refine((t) => Object.keys(t).length > 0, 'at least one tag') })
  .strict();

/**
 * How an unattended failover cuts off an old primary it could not make read-only: through the AWS
 * API, independent of the database and the network path that failed. `stop-instance` stops the
 * EC2 instances carrying `tags`; `revoke-ingress` revokes every ingress rule of the security
 * groups carrying `tags`.
 */
const awsFence = z
  .object({
    region,
    action: z.enum(['stop-instance', 'revoke-ingress']),
    tags: tagFilter.refine((t) => Object.keys(t).length > 0, 'at least one tag'),
  })
  .strict();

const vip = z
  .object({
    address: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'an IPv4 address with prefix, e.g. 10.0.0.10/24'),
    // It reaches a remote shell (`ip -o addr show dev <device>`): a plain device name only.
    device: z.string().regex(NETWORK_DEVICE, 'a network device name such as eth0 (letters, digits, _ . : @ -)'),
    primaryHost: name,
    drHost: name,
  })
  .strict();

const dns = z
  .object({
    hostedZone: z.string().min(1),
    /**
     * The zone's id ("Z…" or "/hostedzone/Z…"), checked against hostedZone's name. Needed where several zones
     * share the name (split-horizon: a public and a private zone); a name alone is then refused at run time.
     */
    hostedZoneId: z
      .string()
      .regex(/^(\/hostedzone\/)?Z[A-Z0-9]{1,32}$/, 'a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ')
      .optional(),
    record: z.string().min(1),
    type: z.enum(['A', 'CNAME']).default('CNAME'),
    ttl: z.number().int().min(1).default(60),
    primaryValue: z.string().min(1),
    drValue: z.string().min(1),
  })
  .strict();

/** A wall-clock time, "HH:MM" (24 h), in the schedules' time zone. */
const clockTime = z.string().regex(/^([01]?\d|2[0-3]):[0-5]\d$/, 'a time like "03:00" (24 h)');
const ianaTimeZone = z.string().refine((tz) => {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}, 'an IANA time zone such as "UTC" or "Europe/Berlin"');
const paused = z.boolean().default(false);

/** The per-service schedule kinds (a service may pause any of them: `services[].schedules.paused`). */
export const SERVICE_SCHEDULE_KINDS = ['restoreTest', 'drill', 'readiness'] as const;

/**
 * The Temporal Schedules drbook keeps on the server (`drctl schedules reconcile` makes the server match):
 * one entry per kind, every field defaulted, `paused: true` pauses the server's schedule.
 */
export const schedules = z
  .object({
    timeZone: ianaTimeZone.default('UTC'),
    nightlyBackup: z
      .object({ at: clockTime.default('03:00'), paused })
      .strict()
      .prefault({}),
    restoreTest: z
      .object({ dayOfMonth: z.number().int().min(1).max(28).default(1), at: clockTime.default('04:00'), paused })
      .strict()
      .prefault({}),
    drill: z
      .object({
        /** Months the drill runs in (quarterly by default). */
        months: z.array(z.number().int().min(1).max(12)).min(1).default([1, 4, 7, 10]),
        dayOfMonth: z.number().int().min(1).max(28).default(15),
        at: clockTime.default('10:00'),
        /** isolated leaves production untouched; switchover waits for approvals like any failover. */
        scope: z.enum(['isolated', 'switchover']).default('isolated'),
        paused,
      })
      .strict()
      .prefault({}),
    readiness: z
      .object({
        minute: z.number().int().min(0).max(59).default(17),
        paused,
        /** Notify when a check starts failing (or recovers) since the schedule's previous run. */
        alertOnDrift: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    /** Every few minutes, when any service has backup.binlogArchive: the binlog RPO. */
    binlogArchive: z
      .object({ everyMinutes: z.number().int().min(1).max(60).default(5), paused })
      .strict()
      .prefault({}),
  })
  .strict()
  .prefault({});

export const service = z
  .object({
    name,
    tier: z.enum(TIERS),
    strategy: z.enum(['hot', 'warm', 'cold']),
    targets: tierTargets.optional(),
    health: health.prefault({}),
    database: database.optional(),
    rds: rds.optional(),
    drCompute: drCompute.optional(),
    vip: vip.optional(),
    dns: dns.optional(),
    /** Application failover webhook (its URL a secret reference): POSTed the new primary once it is promoted. */
    applicationWebhook: webhookUrl.optional(),
    /**
     * Fail over without waiting at the approval gate when the monitor detects an incident. Never past
     * the RPO, and never promoting past an old primary that is not fenced: then `awsFence`, or a human.
     */
    autoFailover: z.boolean().default(false),
    /** Unattended failover: the independent fence used when the old primary cannot be made read-only. */
    awsFence: awsFence.optional(),
    backup: backup.optional(),
    restoreTest: restoreTest.optional(),
    /** Per-service schedule settings: pause some of this service's schedules, or drill it with another scope. */
    schedules: z
      .object({
        paused: z.array(z.enum(SERVICE_SCHEDULE_KINDS)).default([]),
        drillScope: z.enum(['isolated', 'switchover']).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
