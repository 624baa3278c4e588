/**
 * The estate drbook protects, as one validated document (config/*.yaml).
 *
 * This file is pure (no I/O) so workflows may import its *types*; reading files and
 * resolving secrets happens in config/load.ts on the worker. Secrets are references
 * (`{ env }` or `{ file }`), never values: the inventory can be committed and the
 * services named in workflow inputs, while the passwords stay on the worker.
 */
import { z } from 'zod';
import { fileTreeId } from './backup';
import { NETWORK_DEVICE, PLAIN_DATABASE_NAME } from './names';

export const TIERS = ['critical', 'important', 'normal'] as const;
export type Tier = (typeof TIERS)[number];

/** "90s", "15m", "4h", "7d" → seconds. Plain numbers are seconds. */
export const duration = z.union([z.number().int().nonnegative(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') return value;
  const match = /^(\d+)\s*(s|m|h|d)$/.exec(value.trim());
  if (!match) {
    ctx.addIssue({ code: 'custom', message: `expected a duration like "90s", "15m", "4h" or "7d", got "${value}"` });
    return z.NEVER;
  }
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[match[2] as 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
});

const name = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,62}$/, 'lower-case letters, digits and dashes, starting with a letter');
// A number, or digits (a quoted port); never true (1) or [22] (22), which coercion would take.
const port = z
  .union([z.number(), z.string().regex(/^\d+$/, 'a port number').transform(Number)])
  .pipe(z.number().int().min(1).max(65535));
const region = z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'an AWS region such as us-east-1');

export const secretRef = z.union([
  z.object({ env: z.string().min(1) }).strict(),
  z.object({ file: z.string().min(1) }).strict(),
]);
export type SecretRef = z.infer<typeof secretRef>;

/**
 * A webhook's URL, as a secret reference: such URLs carry tokens (Slack, PagerDuty, a signed path), and a plain value
 * would reach workflow history (describeService's result, the webhook step's input). The activity that POSTs resolves
 * it on the worker from the target's or service's name (config/load.ts resolveWebhookUrl); no workflow sees it.
 */
const webhookUrl = z.union(
  [z.object({ env: z.string().min(1) }).strict(), z.object({ file: z.string().min(1) }).strict()],
  {
    error: (issue) =>
      typeof issue.input === 'string'
        ? 'a secret reference ({ env: NAME } or { file: path }) holding the URL, never the URL itself: webhook URLs ' +
          'carry tokens, and an inventory value would reach workflow history'
        : undefined,
  },
);

const tierTargets = z.object({ rto: duration, rpo: duration }).strict();

export const DEFAULT_TIER_TARGETS: Record<Tier, { rtoSeconds: number; rpoSeconds: number }> = {
  critical: { rtoSeconds: 15 * 60, rpoSeconds: 5 * 60 },
  important: { rtoSeconds: 4 * 3600, rpoSeconds: 3600 },
  normal: { rtoSeconds: 24 * 3600, rpoSeconds: 8 * 3600 },
};

/** The key types `ssh-keygen -Y sign` signs with (a FIDO key included). */
const SSH_KEY_TYPES = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
];

/**
 * "<type> <base64 body> [comment]" → "<type> <base64 body>", or null when it is not an OpenSSH public key: a known
 * type whose body decodes and names the same type (catches a truncated or pasted-wrong key at worker start).
 */
export function publicKeyBody(line: string): string | null {
  const m = /^(\S+) ([A-Za-z0-9+/]+={0,2})(?: [^\r\n]*)?$/.exec(line.trim());
  if (!m || !SSH_KEY_TYPES.includes(m[1])) return null;
  let blob: string;
  try {
    blob = atob(m[2]);
  } catch {
    return null;
  }
  // The body starts with the key type again, as an SSH string (a 4-byte length, then the name).
  const header = String.fromCharCode(0, 0, 0, m[1].length) + m[1];
  return blob.startsWith(header) && blob.length > header.length + 16 ? `${m[1]} ${m[2]}` : null;
}

const sshPublicKey = z
  .string()
  .refine((k) => publicKeyBody(k) !== null, 'an OpenSSH public key line, e.g. "ssh-ed25519 AAAAC3Nza… alice@laptop"');

const approver = z
  .object({
    name,
    email: z.email().optional(),
    /** Under `approvals.policy: signed`, the keys whose signatures count as this approver's (one or more). */
    sshKeys: z.array(sshPublicKey).default([]),
  })
  .strict();

const notificationTarget = z.discriminatedUnion('kind', [
  z.object({ name, kind: z.literal('webhook'), url: webhookUrl }).strict(),
  z.object({ name, kind: z.literal('sns'), region, topicArn: z.string().startsWith('arn:') }).strict(),
]);

/** A host drbook reaches over SSH; its host key is pinned, never learned on first use. */
const sshHost = z
  .object({
    host: z.string().min(1),
    port: port.default(22),
    user: z.string().min(1),
    privateKey: secretRef,
    hostKey: z.union([
      z
        .object({ fingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'an OpenSSH SHA256 fingerprint') })
        .strict(),
      z.object({ knownHostsFile: z.string().min(1) }).strict(),
    ]),
    /** Prepended to every command, e.g. "sudo -n" or "ip netns exec dr". */
    commandPrefix: z.string().optional(),
  })
  .strict();

/** A MySQL/MariaDB server drbook connects to as its own administrative user. */
const mysqlServer = z
  .object({
    host: z.string().min(1),
    port: port.default(3306),
    user: z.string().min(1),
    password: secretRef,
    /** The SSH host this server runs on (for the VIP and file-level work: mariabackup runs there). */
    sshHost: name.optional(),
    /**
     * The server's unix socket on its own host: tools that run on the host (mariabackup) connect through it,
     * as an SRE on the box would, instead of over TCP to `host`.
     */
    socket: z.string().startsWith('/', "an absolute path on the server's host").optional(),
    /**
     * The address OTHER servers replicate from this one at (CHANGE MASTER ... MASTER_HOST/MASTER_PORT), and what a
     * replica's Master_Host:Master_Port is matched against; also the address the application webhook is given.
     * host/port above are the worker's own route (a bastion, a proxy, an admin network); omitted fields default to them.
     */
    replication: z
      .object({ host: z.string().min(1).optional(), port: port.optional() })
      .strict()
      .refine((r) => r.host !== undefined || r.port !== undefined, 'a host, a port, or both')
      .optional(),
  })
  .strict();

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '::1']);

/**
 * Where a tool that reads a server's data files (mariabackup) must run: on the server's `sshHost` when it has one
 * (the data files are there), on the worker itself only when the server has no sshHost and its host is the
 * worker's own (127.0.0.1 / localhost / ::1); otherwise nowhere (null).
 */
export function dataFilesHost(server: Pick<MysqlServer, 'host' | 'sshHost'>): { ssh: string } | 'worker' | null {
  if (server.sshHost) return { ssh: server.sshHost };
  return LOCAL_HOSTS.has(server.host) ? 'worker' : null;
}

const tagFilter = z.record(z.string().min(1), z.string());

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

/** A KMS key: key id, key ARN, alias name or alias ARN (of the region it is used in: keys never leave theirs). */
const kmsKeyId = z
  .string()
  .regex(
    /^(arn:aws[a-z-]*:kms:[a-z]{2}(-[a-z]+)+-\d:\d{12}:(key|alias)\/[\w/+=,.@-]+|alias\/[\w/+=,.@-]+|(mrk-)?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}|mrk-[0-9a-f]{32})$/,
    'a KMS key id, key ARN, alias/<name> or alias ARN',
  );

/**
 * An offline destination: reachable only for its copy window (an air-gapped account or bucket whose access is opened
 * around the nightly backup, a disk mounted for it), so a compromised worker outside the window cannot reach it.
 * drbook does not open or close the window; it counts the destination for 3-2-1-1 only while it holds a copy verified
 * within `verifiedWithin` (a window that stopped opening stops counting). docs/backup.md.
 */
const offlineDestination = z
  .object({ verifiedWithin: duration.prefault('7d') })
  .strict()
  .optional();

const s3Destination = z
  .object({
    region,
    bucket: z.string().min(3),
    prefix: z.string().default(''),
    /** S3-compatible endpoint (the local stack's streaming store); omit for AWS. */
    endpoint: z.url().optional(),
    /**
     * Immutable copies: every object written here carries S3 Object Lock retention (mode as given, period from the
     * backup policy), so credentials that can write the bucket cannot delete or overwrite a backup before it expires.
     * The bucket must have Object Lock enabled (checked before any upload). governance: a principal granted
     * s3:BypassGovernanceRetention can still remove it; compliance: nobody can, not even the account root.
     */
    objectLock: z
      .object({ mode: z.enum(['governance', 'compliance']) })
      .strict()
      .optional(),
    /**
     * Encryption at rest: every object written here is stored with SSE-KMS under this key (of the destination's
     * region). S3 decrypts for callers allowed kms:Decrypt on it, so a restore by hand stays `aws s3 cp`.
     */
    encryption: z.object({ kmsKeyId }).strict().optional(),
    offline: offlineDestination,
  })
  .strict();

/** An absolute path on a host: no `..`, no control characters (it names a directory a remote shell cds into). */
const hostPath = z
  .string()
  .startsWith('/', 'an absolute path on the host')
  .refine((p) => ![...p].some((c) => c < ' ' || c === '\x7f'), 'no control characters')
  .refine((p) => !p.split('/').includes('..'), 'no ".." component')
  .refine((p) => p === '/' || !p.endsWith('/'), 'no trailing "/"');

/**
 * An exclude pattern, relative to the tree's root and anchored there ("cache", "tmp/*.part", "*.swp": `*` matches
 * "/" too). Given to tar as --exclude=./<pattern> and to find as -path ./<pattern>: both
 * read it with fnmatch, so what is excluded from the archive is excluded from its per-file list.
 */
const excludePattern = z
  .string()
  .min(1)
  .regex(
    /^[A-Za-z0-9_.*?+@,=~ -][A-Za-z0-9_.*?+@,=~ /-]*$/,
    'a glob relative to the tree (letters, digits, _.*?+@,=~ -/)',
  )
  .refine((p) => !p.split('/').includes('..'), 'no ".." component');

const backupPath = z.object({ host: name, path: hostPath, exclude: z.array(excludePattern).default([]) }).strict();

const backup = z
  .object({
    // Each name reaches mariadb-dump's argument list (and names restore_* scratch databases): a plain identifier.
    databases: z
      .array(
        z
          .string()
          .regex(
            PLAIN_DATABASE_NAME,
            'a plain database name (letters, digits, _ $ -; not starting with -), 1-64 chars',
          ),
      )
      .min(1),
    volumeTags: tagFilter.optional(),
    /** File trees on the service's hosts, backed up over SSH with GNU tar's listed-incremental levels (docs/backup.md). */
    paths: z
      .array(backupPath)
      .default([])
      .superRefine((paths, ctx) => {
        const seen = new Map<string, number>();
        paths.forEach((p, j) => {
          const id = fileTreeId(p);
          if (seen.has(id))
            ctx.addIssue({
              code: 'custom',
              path: [j, 'path'],
              message: `${p.host}:${p.path} has the same tree id "${id}" as paths.${seen.get(id)}: one tree, one chain`,
            });
          seen.set(id, j);
        });
      }),
    /**
     * When a file tree gets a full (level 0) backup: the first backup of each day, ISO week or month; the others
     * are `between`: differential (everything changed since the chain's full) or incremental (since the previous
     * backup of any level). `stateDir` on each host keeps tar's snapshot (.snar) files between runs.
     */
    files: z
      .object({
        full: z.enum(['daily', 'weekly', 'monthly']).default('weekly'),
        between: z.enum(['differential', 'incremental']).default('differential'),
        stateDir: hostPath.default('/var/lib/drbook'),
      })
      .strict()
      .prefault({}),
    destinations: z
      .object({
        local: z
          .object({ path: z.string().min(1), offline: offlineDestination })
          .strict()
          .optional(),
        primary: s3Destination.optional(),
        offsite: s3Destination.optional(),
      })
      .strict(),
    archive: z
      .object({
        standardIaAfter: duration.prefault('30d'),
        glacierAfter: duration.prefault('90d'),
        deepArchiveAfter: duration.prefault('365d'),
        expireAfter: duration.prefault('2555d'),
      })
      .strict()
      .prefault({}),
    /** Also a physical backup (mariabackup, streamed), for services whose RTO a logical restore cannot meet. */
    physical: z.boolean().default(false),
    /** Archive closed binary logs every run (point-in-time recovery; the backup RPO becomes their age). */
    binlogArchive: z.boolean().default(false),
    /**
     * Which live member the dump and the physical copy read from: the one writable now (default), or a healthy
     * replica of it (both threads running). Either way a fenced or read-only-and-stale member is refused.
     */
    source: z.enum(['writable', 'replica']).default('writable'),
    retention: z
      .object({
        daily: z.number().int().min(1).default(7),
        weekly: z.number().int().min(0).default(4),
        monthly: z.number().int().min(0).default(12),
      })
      .strict()
      .prefault({}),
  })
  .strict();

const validationQuery = z
  .object({ name: z.string().min(1).max(200), sql: z.string().min(1), expect: z.union([z.string(), z.number()]) })
  .strict();

const restoreTest = z
  .object({
    scratchServer: name,
    /** Checked after every restore (and at the point of a point-in-time replay). */
    queries: z.array(validationQuery).default([]),
    /** Checked only at a point in time, when a restoreTest input names them (pointInTime.queries). */
    pointInTimeQueries: z.array(validationQuery).default([]),
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
const schedules = z
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

const service = z
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

export const inventorySchema = z
  .object({
    version: z.literal(1),
    regions: z
      .object({
        primary: region,
        dr: region,
        /**
         * A KMS key of the DR region: encrypted RDS and EBS snapshots are copied there re-encrypted with it (AWS
         * refuses a cross-region copy of an encrypted RDS snapshot without one).
         */
        drKmsKeyId: kmsKeyId.optional(),
      })
      .strict(),
    aws: z
      .object({
        /** Endpoint override for an AWS API emulator (the local stack's moto server). */
        endpoint: z.url().optional(),
        accessKeyId: secretRef.optional(),
        secretAccessKey: secretRef.optional(),
        /**
         * Network timeouts of every AWS call (seconds): connecting, and a connection with no byte moving
         * (an idle socket, so a long upload that keeps moving is never cut). A silent network fails the
         * call, named, instead of hanging until the activity's own timeout.
         */
        timeouts: z
          .object({ connectSeconds: z.number().positive().default(5), idleSeconds: z.number().positive().default(30) })
          .strict()
          .prefault({}),
        /**
         * Where the AWS API emulator differs from AWS in what a step checks. Only with `endpoint`: on AWS the
         * real checks always apply. `rdsKeepsReplicaSourceAfterPromote`: a plain moto keeps an instance's
         * ReadReplicaSourceDBInstanceIdentifier after PromoteReadReplica (AWS clears it, and so does the local
         * stack's moto, scripts/moto-server.py), so "no longer a replica" is also read from the
         * drbook:promote-accepted tag drbook writes once the promotion is accepted.
         */
        emulator: z
          .object({ rdsKeepsReplicaSourceAfterPromote: z.boolean().default(false) })
          .strict()
          .optional(),
      })
      .strict()
      .refine((a) => !a.emulator || a.endpoint, {
        message: 'emulator settings need aws.endpoint (an emulator); on AWS the real checks apply',
        path: ['emulator'],
      })
      .prefault({}),
    approvers: z.array(approver).min(1),
    /**
     * How an approval proves who sent it. `named` (the default, and the sandbox's): the approver is the name in the
     * approval, trusted as far as Temporal's authorization of the client goes. `signed`: each approval carries an SSH
     * signature over its run and gate by a key listed under `approvers[].sshKeys`, checked on the worker; one key
     * counts once. docs/security.md.
     */
    approvals: z
      .object({ policy: z.enum(['named', 'signed']).default('named') })
      .strict()
      .prefault({}),
    notifications: z.array(notificationTarget).default([]),
    sshHosts: z.record(name, sshHost).default({}),
    mysqlServers: z.record(name, mysqlServer).default({}),
    /**
     * The worker's backup-signing keyring: every manifest is signed with `privateKey` (Ed25519, PEM) and
     * verified before any restore with its public key or one of `trustedPublicKeys` (keys rotated out).
     * Unsigned manifests (backups from before signing) are refused unless older than `acceptUnsignedBefore`.
     */
    backupSigning: z
      .object({
        privateKey: secretRef,
        trustedPublicKeys: z.array(secretRef).default([]),
        acceptUnsignedBefore: z
          .string()
          .regex(/^\d{8}T\d{6}Z$/, 'a backup id like 20250101T030000Z')
          .optional(),
      })
      .strict()
      .optional(),
    services: z.array(service).min(1),
    schedules,
  })
  .strict()
  // Also beside other problems (zod skips a refinement once a field failed): every problem is listed at once.
  .superRefine((inv, ctx) => checkReferences(inv, ctx), { when: (payload) => referencesReadable(payload.value) });

interface ReferenceIssues {
  addIssue(issue: { code: 'custom'; path: (string | number)[]; message: string }): void;
}

/** Cross-references: every name a service uses must exist, so a typo fails at worker start, not at 3 a.m. */
function checkReferences(inv: Inventory, ctx: ReferenceIssues): void {
  const ref = (kind: 'sshHosts' | 'mysqlServers', value: string | undefined, path: (string | number)[]) => {
    if (value !== undefined && !(value in inv[kind])) {
      ctx.addIssue({
        code: 'custom',
        path,
        message: `unknown ${kind === 'sshHosts' ? 'SSH host' : 'MySQL server'} "${value}"`,
      });
    }
  };
  for (const [name, server] of Object.entries(inv.mysqlServers)) {
    ref('sshHosts', server.sshHost, ['mysqlServers', name, 'sshHost']);
  }
  // Read defensively: this check also runs beside other problems, on a document that may be half valid.
  const policy: unknown = isRecord(inv.approvals) ? inv.approvals.policy : undefined;
  if (policy === 'signed' && Array.isArray(inv.approvers))
    inv.approvers.forEach((a: unknown, i) => {
      if (isRecord(a) && !(Array.isArray(a.sshKeys) && a.sshKeys.length))
        ctx.addIssue({
          code: 'custom',
          path: ['approvers', i, 'sshKeys'],
          message: `the signed approval policy needs at least one SSH public key for ${String(a.name)}`,
        });
    });
  const backedUp = inv.services.filter((s) => s.backup).map((s) => s.name);
  if (backedUp.length && !inv.backupSigning)
    ctx.addIssue({
      code: 'custom',
      path: ['backupSigning'],
      message: `services with backups (${backedUp.join(', ')}) need a backup-signing key: manifests are signed and verified before any restore`,
    });
  const seen = new Set<string>();
  inv.services.forEach((svc, i) => {
    const at = (...rest: (string | number)[]) => ['services', i, ...rest];
    if (seen.has(svc.name))
      ctx.addIssue({ code: 'custom', path: at('name'), message: `duplicate service "${svc.name}"` });
    seen.add(svc.name);
    if (svc.database) {
      ref('mysqlServers', svc.database.primary, at('database', 'primary'));
      ref('mysqlServers', svc.database.replica, at('database', 'replica'));
      ref('mysqlServers', svc.database.drServer, at('database', 'drServer'));
      if (svc.strategy === 'cold' && !svc.database.drServer && !svc.database.replica) {
        ctx.addIssue({
          code: 'custom',
          path: at('database', 'drServer'),
          message: 'a cold service needs a drServer to restore into',
        });
      }
      if (svc.strategy !== 'cold' && !svc.database.replica && !svc.rds?.drReplica) {
        ctx.addIssue({
          code: 'custom',
          path: at('database', 'replica'),
          message: `a ${svc.strategy} service needs a replica`,
        });
      }
    }
    if (svc.backup?.physical === true && svc.database) {
      const server = inv.mysqlServers[svc.database.primary] as MysqlServer | undefined;
      if (svc.database.engine === 'mysql')
        ctx.addIssue({
          code: 'custom',
          path: at('backup', 'physical'),
          message: 'physical backups need MariaDB (mariabackup); xtrabackup for MySQL is not supported',
        });
      else if (server && isRecord(server) && typeof server.host === 'string' && dataFilesHost(server) === null)
        ctx.addIssue({
          code: 'custom',
          path: at('backup', 'physical'),
          message: `mariabackup must run where ${svc.database.primary}'s data files are: give mysqlServers.${svc.database.primary}.sshHost (its host ${server.host} is not the worker's)`,
        });
    }
    if (svc.backup && !svc.database) {
      ctx.addIssue({
        code: 'custom',
        path: at('backup', 'databases'),
        message: 'backing up databases needs a database.primary to dump',
      });
    }
    if (svc.vip) {
      ref('sshHosts', svc.vip.primaryHost, at('vip', 'primaryHost'));
      ref('sshHosts', svc.vip.drHost, at('vip', 'drHost'));
    }
    svc.backup?.paths?.forEach((p, j) => ref('sshHosts', p.host, at('backup', 'paths', j, 'host')));
    if (svc.restoreTest) {
      ref('mysqlServers', svc.restoreTest.scratchServer, at('restoreTest', 'scratchServer'));
      const clash = productionClash(inv, svc.restoreTest.scratchServer);
      if (clash)
        ctx.addIssue({
          code: 'custom',
          path: at('restoreTest', 'scratchServer'),
          message: `${clash}: a restore writes restore_* databases there with sql_log_bin = 0 (and a point-in-time replay applies binlog events); name a server that is no service's primary, replica or drServer`,
        });
      // A restoreTest input names its point-in-time queries: one name, one query.
      const names = new Set<string>();
      (['queries', 'pointInTimeQueries'] as const).forEach((list) =>
        (Array.isArray(svc.restoreTest![list]) ? svc.restoreTest![list] : []).forEach((q, j) => {
          if (!isRecord(q) || typeof q.name !== 'string') return;
          if (names.has(q.name))
            ctx.addIssue({
              code: 'custom',
              path: at('restoreTest', list, j, 'name'),
              message: `duplicate query name "${q.name}"`,
            });
          names.add(q.name);
        }),
      );
    }
    if (svc.drCompute && inv.regions && svc.drCompute.region !== inv.regions.dr) {
      ctx.addIssue({
        code: 'custom',
        path: at('drCompute', 'region'),
        message: `DR compute must be in the DR region ${inv.regions.dr}`,
      });
    }
  });
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every production member of every service (its primary, replica and drServer), as the inventory names them. */
export function productionMembers(
  services: readonly Pick<Service, 'name' | 'database'>[],
): { server: string; role: 'primary' | 'replica' | 'drServer'; service: string }[] {
  return services.flatMap((svc) =>
    (['primary', 'replica', 'drServer'] as const).flatMap((role) => {
      const server: unknown = isRecord(svc.database) ? svc.database[role] : undefined;
      return typeof server === 'string' ? [{ server, role, service: svc.name }] : [];
    }),
  );
}

/** The addresses a server is reached at (the worker's route and its replication address), local names as one host. */
function addressesOf(server: unknown): string[] {
  if (!isRecord(server) || typeof server.host !== 'string') return [];
  const port = server.port === undefined ? 3306 : Number(server.port);
  if (!Number.isInteger(port)) return [];
  const at = (host: string, p: number) => `${LOCAL_HOSTS.has(host) ? 'localhost' : host.toLowerCase()}:${p}`;
  const r = isRecord(server.replication) ? server.replication : {};
  const rPort = r.port === undefined ? port : Number(r.port);
  return [at(server.host, port), at(typeof r.host === 'string' ? r.host : server.host, rPort)];
}

/**
 * Why `scratch` is a production member (the same name, or the same host:port as one), or null. A scratch server
 * takes restore_* databases written with sql_log_bin = 0 and point-in-time replays: on a member they would be
 * writes no replica sees (or errant transactions), beside the real databases.
 */
export function productionClash(inv: Pick<Inventory, 'services' | 'mysqlServers'>, scratch: string): string | null {
  const servers: Record<string, unknown> = inv.mysqlServers;
  const mine = addressesOf(servers[scratch]);
  for (const m of productionMembers(inv.services)) {
    if (m.server === scratch) return `${scratch} is the ${m.role} of ${m.service}`;
    const same = addressesOf(servers[m.server]).find((a) => mine.includes(a));
    if (same) return `${scratch} is at ${same}, the address of ${m.server}, the ${m.role} of ${m.service}`;
  }
  return null;
}

/** The cross-reference check reads these shapes; wherever they hold it can run, whatever else is wrong. */
function referencesReadable(v: unknown): boolean {
  if (!isRecord(v) || !isRecord(v.mysqlServers) || !isRecord(v.sshHosts)) return false;
  if (v.regions !== undefined && !isRecord(v.regions)) return false;
  if (!Array.isArray(v.services) || !Object.values(v.mysqlServers).every(isRecord)) return false;
  return v.services.every(
    (svc) =>
      isRecord(svc) &&
      ['database', 'vip', 'restoreTest', 'drCompute', 'rds', 'backup'].every(
        (k) => svc[k] === undefined || isRecord(svc[k]),
      ) &&
      (!isRecord(svc.backup) ||
        svc.backup.paths === undefined ||
        (Array.isArray(svc.backup.paths) && svc.backup.paths.every(isRecord))),
  );
}

export type Inventory = z.infer<typeof inventorySchema>;
export type Service = Inventory['services'][number];
export type MysqlServer = Inventory['mysqlServers'][string];
export type SshHost = Inventory['sshHosts'][string];

/** Where other servers (and the application) reach `server`: its replication address, else the worker's host/port. */
export function replicationAddress(server: Pick<MysqlServer, 'host' | 'port' | 'replication'>): {
  host: string;
  port: number;
} {
  return { host: server.replication?.host ?? server.host, port: server.replication?.port ?? server.port };
}

/** The RTO/RPO a service is held to: its tier's defaults unless the inventory overrides them. */
export function targetsFor(svc: Pick<Service, 'tier' | 'targets'>): { rtoSeconds: number; rpoSeconds: number } {
  const defaults = DEFAULT_TIER_TARGETS[svc.tier];
  return svc.targets ? { rtoSeconds: svc.targets.rto, rpoSeconds: svc.targets.rpo } : defaults;
}

/** Every problem in a candidate inventory, one line each, named by path ("services.0.dns.ttl: ..."). */
export function inventoryProblems(error: z.ZodError): string[] {
  return error.issues.map((issue) => `${issue.path.length ? issue.path.join('.') : '(root)'}: ${issue.message}`);
}

export class InventoryError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: ${problems.length} problem(s) in the inventory:\n  - ${problems.join('\n  - ')}`);
    this.name = 'InventoryError';
  }
}

/** Validate an already-parsed document. Throws InventoryError listing every problem. */
export function parseInventory(doc: unknown, source = 'inventory'): Inventory {
  const result = inventorySchema.safeParse(doc);
  if (!result.success) {
    const problems = inventoryProblems(result.error);
    // An int or format failure stops zod's refinements: check the references on the document itself.
    if (referencesReadable(doc))
      checkReferences(doc as Inventory, {
        addIssue({ path, message }) {
          const line = `${path.join('.')}: ${message}`;
          if (!problems.includes(line)) problems.push(line);
        },
      });
    throw new InventoryError(source, problems);
  }
  return result.data;
}
