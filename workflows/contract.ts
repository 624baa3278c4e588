/**
 * The operator contract in one place: runbook inputs (validated with zod inside the
 * workflow, before any side effect), the `status` shape, approvals, and the error
 * types activities raise and retry policies act on. Imported by workflows, activities,
 * the worker, drctl and tests alike; pure, so it is safe in the workflow sandbox.
 */
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';

/**
 * Every ApplicationFailure type drbook raises, and whether a retry can help. `false`: the same call fails
 * the same way until a human changes something (or the data is hostile), so the step fails at once.
 * `failure()` and every retry policy (NON_RETRYABLE) read this one table; a driver's own code
 * (ECONNREFUSED, a throttled AWS call) is not listed and stays retryable.
 */
const FAILURE_RETRYABLE = {
  UnknownService: false,
  InvalidInput: false,
  ResourceNotFound: false,
  AccessDenied: false,
  AwsValidation: false,
  HostKeyMismatch: false,
  SshAuthFailed: false,
  CommandFailed: true,
  DatabaseAuthFailed: false,
  ReplicationBroken: false,
  ReplicaLagTooHigh: true,
  NotConfigured: false,
  ApproverNotAllowed: true,
  /** An approval the run refused: unsigned or wrongly signed under the `signed` policy, a key that already approved. */
  ApprovalRejected: false,
  ApprovalTimedOut: true,
  Aborted: true,
  HealthCheckFailed: true,
  /** The old primary's fence did not hold up to promotion (writable again, or it committed past the fence). */
  FenceLost: true,
  /** Two members take writes at once (after a cut-over, or read live): every runbook stops until a human fences one. */
  SplitBrain: false,
  /** A backup source that is read-only and not replicating (a fenced old primary: its data stopped advancing). */
  SourceNotWritable: false,
  /** No member of a service could be read as writable (unreachable or all read-only). */
  TopologyUnknown: true,
  /** Failover of a service already running on its DR side: run failback instead. */
  AlreadyFailedOver: false,
  /** Failback of a service already at home: nothing to fail back. */
  AlreadyAtHome: false,
  /** A step failed and its cause carried no type of its own. */
  StepFailed: false,
  /** The split-brain resolve found one writer (or none): nothing to resolve. */
  NotSplit: false,
  /** A fence that did not take (a blocked read_only, an unreachable server). */
  FenceFailed: true,
  /** Readiness failed: a drill does not start on an estate that is not ready. */
  NotReady: false,
  /** A backup copy's size or SHA-256 differs from what was written / what the manifest says: read again, still corrupt. */
  BackupCorrupt: false,
  /** A backup holds something a restore never runs (a mariadb client command such as `\\! cmd`). */
  RestoreRefused: false,
  /**
   * A restore's target, read live, is production: a scratch server that is a replica, a replication source or a
   * member of any service; a cold failover's drServer that is writable, a replica, has replicas or is another member.
   */
  ScratchIsProduction: false,
  /** mariadb-dump / zstd exited non-zero (stderr in the message). */
  DumpFailed: true,
  /** One or more steps of a service's backup failed; the message names each. */
  BackupFailed: false,
  /** A manifest was written but did not read back as written. */
  ManifestNotStored: true,
  ManifestInvalid: false,
  ManifestUnauthenticated: false,
  /** A backup with this id already has a manifest: backups are never rewritten. */
  BackupExists: false,
  NoVerifiedBackup: false,
  /** Fetch | zstd -d | mariadb failed (stderr in the message): a connection fault is worth another try. */
  RestoreFailed: true,
  RestoreTestFailed: false,
  PitrArchiveGap: false,
  RdsRestoreFailed: true,
  SnapshotFailed: true,
  RecloneFailed: true,
  DrillFailed: false,
  SshExecFailed: true,
  SshTimeout: true,
  WebhookFailed: true,
  WebhookUnreachable: true,
  /** Another run holds the service's topology lock (`lock-<service>`): one change at a time. */
  ServiceLocked: false,
} as const satisfies Record<string, boolean>;

/** ApplicationFailure types: what operators read and retry policies act on. */
export type ErrorType = keyof typeof FAILURE_RETRYABLE;
export const ErrorType = Object.fromEntries(Object.keys(FAILURE_RETRYABLE).map((t) => [t, t])) as {
  readonly [T in ErrorType]: T;
};

/** Never worth a retry: the same call will fail the same way until a human changes something. */
export const NON_RETRYABLE: ErrorType[] = (Object.keys(FAILURE_RETRYABLE) as ErrorType[]).filter(
  (t) => !FAILURE_RETRYABLE[t],
);

/**
 * A typed failure; its retryability comes from the table above. `type` is an ErrorType or a driver's own
 * code (ECONNRESET): a type the table does not list is retryable.
 */
export function failure(type: string, message: string, details?: Record<string, unknown>): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable: (NON_RETRYABLE as string[]).includes(type),
    details: details ? [details] : undefined,
  });
}

/**
 * A network device name (Linux allows 15 characters), as it may appear in a command run by a remote
 * shell: nothing the shell or `ip` would read as more than a name (no spaces, quotes, ;, $, leading -).
 */
export const NETWORK_DEVICE = /^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,14}$/;

/**
 * A database name as it may reach a client tool's argument list (mariadb-dump, mariadb-binlog --database): a plain
 * identifier, never one that reads as an option (no leading -), quotes a way out (` ' "), or ends a line.
 */
export const PLAIN_DATABASE_NAME = /^[A-Za-z0-9_$][A-Za-z0-9_$-]{0,63}$/;

export const TASK_QUEUE = 'drbook';
/**
 * DR-side steps run on a queue served by workers in the DR region: in a regional outage the
 * primary's workers are gone. Derived from the run's own queue, so test queues stay apart.
 */
export const drTaskQueue = (baseQueue: string, drRegion: string) => `${baseQueue}-${drRegion}`;

const serviceName = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'a service name from the inventory');

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

// ------------------------------------------------------------------ status

export type StepState = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'waiting';

export interface StepRecord {
  name: string;
  state: StepState;
  startedAt?: string;
  endedAt?: string;
  attempts: number;
  detail?: string;
}

export interface Approval {
  step: string;
  approver: string;
  comment?: string;
  /** Promote although the expected data loss exceeds the tier's RPO. */
  overrideRpo?: boolean;
  /** The old primary could not be fenced; the approver accepts the split-brain risk. */
  acknowledgeUnfenced?: boolean;
  /**
   * Under the inventory's `signed` policy: the approver's SSH signature (`ssh-keygen -Y sign -n drbook-approval`,
   * armored or its base64 on one line) over approvalMessage() of this run and gate. Not kept once checked.
   */
  signature?: string;
  /** Set by the run when it accepts a signed approval: the fingerprint of the key that signed it. */
  signedWith?: string;
  at?: string;
}

/** The SSH signature namespace of approvals: a signature made for anything else (git, files) never verifies. */
export const APPROVAL_SIGNATURE_NAMESPACE = 'drbook-approval';
/** The longest signature an approval may carry (an RSA-4096 SSHSIG is about 1,100 characters). */
export const APPROVAL_SIGNATURE_MAX = 8192;

/**
 * The exact text an approver signs under the `signed` policy: this run (workflow id AND run id, so an approval
 * cannot be replayed into another run of the same id) and this gate, with the flags the approver sets.
 */
export function approvalMessage(a: {
  workflowId: string;
  runId: string;
  step: string;
  overrideRpo?: boolean;
  acknowledgeUnfenced?: boolean;
}): string {
  return [
    'drbook-approval/1',
    `workflow: ${a.workflowId}`,
    `run: ${a.runId}`,
    `step: ${a.step}`,
    `override-rpo: ${a.overrideRpo ? 'yes' : 'no'}`,
    `acknowledge-unfenced: ${a.acknowledgeUnfenced ? 'yes' : 'no'}`,
    '',
  ].join('\n');
}

/**
 * An approval's signature as ssh-keygen reads it: the armored block, whether it came armored or as its base64 on
 * one line (what fits a JSON field in the Web UI). Null when it is neither.
 */
export function armorSshSignature(signature: string): string | null {
  const body = signature
    .replace('-----BEGIN SSH SIGNATURE-----', '')
    .replace('-----END SSH SIGNATURE-----', '')
    .replace(/\s+/g, '');
  if (!/^U1NIU0lH[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length > APPROVAL_SIGNATURE_MAX) return null; // "SSHSIG"
  const lines = body.match(/.{1,70}/g) ?? [];
  return ['-----BEGIN SSH SIGNATURE-----', ...lines, '-----END SSH SIGNATURE-----', ''].join('\n');
}

export interface PendingApproval {
  step: string;
  /** Distinct approvers still needed. */
  needed: number;
  approvers: string[];
  deadline: string;
  question: string;
  requireOverrideRpo: boolean;
  requireUnfencedAck: boolean;
}

export interface RunbookStatus {
  runbook: string;
  service: string;
  phase: string;
  steps: StepRecord[];
  pendingApproval: PendingApproval | null;
  measured: { rtoSeconds: number | null; rpoSeconds: number | null };
  targets: { rtoSeconds: number; rpoSeconds: number };
  /** Time used and left against the RTO target, from the incident start. */
  rtoClock: { startedAt: string; usedSeconds: number; leftSeconds: number };
  approvals: Approval[];
  rejectedApprovals: { approval: Approval; reason: string }[];
  aborted: { by: string; reason: string } | null;
  notes: string[];
  /** The live roles the run read (its `topology` step), when it has read them. */
  topology?: Topology;
}

// ------------------------------------------------------------------ live topology
// The inventory names a service's members and its home side (database.primary); who is writable now is
// read from the servers by the discoverTopology activity, and every runbook acts on that.

/**
 * normal: the home member is the one writer and every replica replicates from it; failed-over: a DR-side
 * member is the one writer; degraded: one writer but a replica broken or unreachable, or no writer with every
 * member answering; split: two or more writers; unknown: no writer found and a member did not answer.
 */
export type TopologyState = 'normal' | 'failed-over' | 'degraded' | 'split' | 'unknown';

/** One member and the evidence its role was read from. */
export interface TopologyMember {
  server: string;
  /** Its name in the inventory (database.primary is the home side). */
  role: 'primary' | 'replica' | 'drServer';
  home: boolean;
  reachable: boolean;
  /** Why it could not be read (reachable: false). */
  error: string | null;
  readOnly: boolean | null;
  /** SHOW REPLICA STATUS; `source` is Master_Host:Master_Port, `sourceServer` the member at that replication address. */
  replication: {
    configured: boolean;
    ioRunning: boolean;
    sqlRunning: boolean;
    source: string | null;
    sourceServer: string | null;
    secondsBehind: number | null;
    lastError: string;
  } | null;
  /** Everything it has committed or applied (gtid_current_pos / gtid_executed). */
  gtidPosition: string | null;
}

export interface Topology {
  service: string;
  state: TopologyState;
  home: string;
  /** The one writable member (null: none, or more than one). */
  writable: string | null;
  /** Every writable member (two or more: split). */
  writers: string[];
  /** Members replicating, both threads running, from the writable member. */
  replicas: string[];
  /** Members that answer read-only and replicate from nothing: a fenced (or stopped-advancing) server. */
  fenced: string[];
  /** One line for operators, e.g. "failed over to db-replica since …, failback pending". */
  detail: string;
  /** When the service last failed over (the newest completed failover-<service> run), if known. */
  since: string | null;
  readAt: string;
  members: TopologyMember[];
}

// ------------------------------------------------------------------ readiness

/** One read-only check of a DR estate; `ok: false` names what an operator must fix. */
export interface ReadinessCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface ReadinessReport {
  service: string;
  ready: boolean;
  checks: ReadinessCheck[];
  expectedRpoSeconds: number | null;
  targets: { rtoSeconds: number; rpoSeconds: number };
  /** Scheduled runs with alertOnDrift: what changed since the schedule's previous run, and whether people were told. */
  drift?: ReadinessDrift;
  /** The live roles (services with a database). */
  topology?: Topology;
}

export interface ReadinessDrift {
  /** The run compared with (null: none before, so every failing check is new). */
  previous: string | null;
  newlyFailing: string[];
  recovered: string[];
  notified: boolean;
}

// ------------------------------------------------------------------ nightly backup
// Layout, in every destination (a file-system root or an S3 bucket + prefix):
//   <prefix><service>/logical/<backupId>/dump.sql.zst          the dump, zstd-compressed
//   <prefix><service>/logical/<backupId>/dump.sql.zst.sha256   `sha256sum -c` format
//   <prefix><service>/logical/<backupId>/manifest.json         written last, only once every copy is verified
// A backup is verified iff its manifest.json exists: restore tests and retention trust nothing else.

export const BackupErrorType = {
  /** A copy's size or SHA-256 read back from storage differs from what was written. */
  BackupCorrupt: ErrorType.BackupCorrupt,
  /** mariadb-dump / zstd exited non-zero (stderr in the message). */
  DumpFailed: ErrorType.DumpFailed,
  /** One or more steps of a service's backup failed; the message names each. */
  BackupFailed: ErrorType.BackupFailed,
  /** A backup with this id already has a manifest: backups are never rewritten. */
  BackupExists: ErrorType.BackupExists,
} as const;

export const BACKUP_DESTINATIONS = ['local', 'primary', 'offsite'] as const;
export type BackupDestinationName = (typeof BACKUP_DESTINATIONS)[number];

/** Backup ids are the run's start time, so they sort by age and name the night they belong to. */
export const BACKUP_ID = /^\d{8}T\d{6}Z$/;
const backupId = z.string().regex(BACKUP_ID, 'a backup id like 20250101T030000Z');

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

export interface BackupCopy {
  destination: BackupDestinationName;
  /** Media kind, for 3-2-1: the local file system and object storage are different media. */
  kind: 'file' | 's3';
  /** Region the copy lives in (null for the local file system). */
  region: string | null;
  offsite: boolean;
  /** Where the dump object is: an absolute path or s3://bucket/key. */
  location: string;
  /** The S3 object version this attempt wrote, where the bucket keeps versions (absent otherwise). */
  versionId?: string;
  /**
   * S3 Object Lock on this copy (destination `objectLock`): nobody holding the worker's credentials can delete or
   * overwrite it before `retainUntil` (GOVERNANCE: except a principal allowed to bypass; COMPLIANCE: nobody).
   */
  objectLock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; retainUntil: string };
  /** Server-side encryption of this copy (destination `encryption`): SSE-KMS with this key. */
  encryption?: { algorithm: 'aws:kms'; kmsKeyId: string };
  size: number;
  sha256: string;
  verifiedAt: string;
}

export interface BackupManifest {
  format: 'drbook-backup/1';
  id: string;
  service: string;
  /** logical: mariadb-dump; physical: mariabackup (xbstream), the whole server. */
  kind: 'logical' | 'physical';
  startedAt: string;
  endedAt: string;
  source: { server: string; engine: 'mariadb' | 'mysql'; version: string };
  /** Where the dump sits in the binlog: a replica or a point-in-time recovery starts here. */
  position: {
    gtid: string | null;
    binlogFile: string | null;
    binlogPos: number | null;
    /** When the server created binlogFile (UTC, as in the archive's keys): which of two same-named logs it is. */
    binlogCreatedAt?: string | null;
  };
  databases: string[];
  /** COUNT(*) per table, read in a snapshot taken at the dump's own binlog position (see rowCounts). */
  tables: { database: string; table: string; rows: number }[];
  rowCounts: { exact: boolean; method: string };
  /**
   * The dump object, relative to each destination's root/prefix: each attempt writes its own
   * (`<service>/<kind>/<backupId>/<attempt>/<file>`; older backups: `<service>/<kind>/<backupId>/<file>`).
   */
  object: { key: string; size: number; sha256: string; compression: 'zstd'; uncompressedSize: number };
  copies: BackupCopy[];
  tools: Record<string, string>;
  verified: true;
}

/** One entry of a file-tree backup's per-file list: the tree as it was when the backup was taken. */
export interface FileTreeEntry {
  /** Relative to the tree's root, "/"-separated. */
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  /** Permission bits in octal, as `stat -c %a` prints them ("644", "4755"). */
  mode: string;
  /** Files and symlinks (a symlink's size is its target's length); not directories (their size is the file system's). */
  size?: number;
  sha256?: string;
  /** A symlink's target, as stored (never followed). */
  target?: string;
}

/**
 * A file-tree backup (backup.paths): one GNU tar archive of one tree at one level, compressed with zstd, with tar's
 * snapshot (.snar) file after it and the per-file list of the tree beside it. Signed and written last, like every
 * manifest; the snapshot's and the list's SHA-256 are in it, so the signature covers them too.
 */
export interface FileTreeManifest {
  format: 'drbook-filetree/1';
  id: string;
  service: string;
  kind: 'files';
  /** fileTreeId({ host, path }) (workflows/backup-policy.ts). */
  tree: string;
  host: string;
  path: string;
  exclude: string[];
  level: 'full' | 'differential' | 'incremental';
  /** The chain's full (its own id for a full). */
  chain: string;
  /** The backup whose snapshot this one started from: the full (differential) or the previous one (incremental). */
  parent: string | null;
  /** What a restore extracts before this archive, in order: [] for a full, [full] for a differential, ... */
  restoreChain: string[];
  startedAt: string;
  endedAt: string;
  object: { key: string; size: number; sha256: string; compression: 'zstd'; uncompressedSize: number };
  /** tar's --listed-incremental snapshot after this backup: the next one of the chain starts from a copy of it. */
  snapshot: { key: string; size: number; sha256: string };
  /** The per-file list (FileTreeEntry[] as JSON), a companion object: too big for the manifest on a large tree. */
  files: { key: string; size: number; sha256: string; count: number; bytes: number };
  copies: BackupCopy[];
  tools: Record<string, string>;
  verified: true;
}

export interface BackupCompliance {
  service: string;
  /** Verified copies of the newest backup, their media kinds, and whether one is off-site (3-2-1). */
  copies: number;
  mediaKinds: string[];
  offsite: boolean;
  rule321: boolean;
  /** Copies under S3 Object Lock (immutable until their retention ends), and 3-2-1-1: 3-2-1 plus one such copy. */
  immutableCopies?: number;
  /**
   * Offline destinations (`offline` in the inventory) holding a copy verified within their `verifiedWithin`: they
   * count for 3-2-1-1 like an immutable copy (absent in results recorded before offline copies were modelled).
   */
  offlineCopies?: number;
  rule3211?: boolean;
  /** Age of the newest verified backup when checked. */
  ageSeconds: number | null;
  /** Data-loss window if disaster struck just before this backup: time since the previous verified one (or the schedule interval). */
  exposureSeconds: number | null;
  rpoSeconds: number;
  rpoMet: boolean;
  problems: string[];
}

export interface ServiceBackupResult {
  service: string;
  backupId: string;
  /** Relative key of the verified manifest (the same in every destination). */
  manifestKey: string;
  size: number;
  uncompressedSize: number;
  sha256: string;
  copies: { destination: BackupDestinationName; location: string }[];
  snapshots: { volumes: { volumeId: string; snapshotId: string; drSnapshotId: string }[]; rds: string | null };
  retention: {
    destination: BackupDestinationName;
    kept: string[];
    deleted: string[];
    /** Due for deletion but under Object Lock: kept until the lock ends, then removed by a later run. */
    locked?: { id: string; until: string }[];
  }[];
  compliance: BackupCompliance;
  durationSeconds: number;
  /** Physical backup (backup.physical in the inventory): its manifest key, size and SHA-256. */
  physical?: { manifestKey: string; size: number; sha256: string } | null;
  /** Binary-log archive (backup.binlogArchive): files copied this run and the newest archived one. */
  binlogs?: { copied: string[]; newest: string | null; newestClosedAt: string | null } | null;
  /** RDS automated backups (rds.backupRetentionDays / backupWindow): drift found, and whether it was fixed. */
  rdsBackupSettings?: { drift: string[]; enforced: boolean } | null;
  /** File trees (backup.paths): each tree's backup this run, its level and chain. */
  fileTrees?: {
    tree: string;
    level: string;
    chain: string;
    manifestKey: string;
    files: number;
    size: number;
    /** Where the parent's tar snapshot came from: the host's state directory, or storage (the host's was not it). */
    snapshotFrom: string;
  }[];
}

export interface NightlyBackupSummary {
  backupId: string;
  requested: number;
  succeeded: { service: string; size: number; durationSeconds: number; rule321: boolean; rpoMet: boolean }[];
  /** Every failure and why, one entry per failed service. */
  failed: { service: string; type: string; reason: string }[];
  /** Workflow runs (continue-as-new) this night took. */
  runs: number;
}

// ------------------------------------------------------------------ quarterly DR drill
// Reports, in the service's primary backup destination (or a local reports directory):
//   <prefix><service>/reports/drill/<drillId>.{json,md,html}
// Trend = the earlier JSON drill reports listed from there.

export const DrillErrorType = {
  /** The drill ran and at least one finding is critical (a step failed, a target was missed); the report says which. */
  DrillFailed: ErrorType.DrillFailed,
} as const;

export const drillInput = z
  .object({
    service: serviceName,
    /** isolated: bring a copy of the DR side up, production untouched; switchover: planned failover + failback. */
    scope: z.enum(['isolated', 'switchover']),
    reason: z.string().min(3, 'say why (at least 3 characters)').max(500).default('quarterly DR drill'),
  })
  .strict();
export type DrillInput = z.input<typeof drillInput>;

export interface DrillFinding {
  severity: 'info' | 'warning' | 'critical';
  text: string;
}

/** One point of the drill trend: a drill's measured RTO/RPO against the targets it had then. */
export interface DrillTrendPoint {
  id: string;
  scope: 'isolated' | 'switchover';
  at: string;
  outcome: 'passed' | 'failed';
  rtoSeconds: number | null;
  rpoSeconds: number | null;
  rtoTargetSeconds: number;
  rpoTargetSeconds: number;
}

export interface DrillReport {
  format: 'drbook-drill/1';
  id: string;
  service: string;
  tier: string;
  strategy: string;
  scope: 'isolated' | 'switchover';
  reason: string;
  outcome: 'passed' | 'failed';
  startedAt: string;
  endedAt: string;
  /** Every step of the drill and of its child runbooks, with the runbook it belongs to (the timeline's lanes). */
  steps: (StepRecord & { runbook: string })[];
  /** identity/via: the client identity Temporal recorded for each approval (read from history when the report is published). */
  approvals: (Approval & { runbook: string; identity?: string | null; via?: string | null })[];
  measured: { rtoSeconds: number | null; rpoSeconds: number | null };
  targets: { rtoSeconds: number; rpoSeconds: number };
  rtoMet: boolean | null;
  rpoMet: boolean | null;
  findings: DrillFinding[];
  children: { runbook: string; workflowId: string; outcome: string }[];
  /** Earlier drills of the service (oldest first) and this one last. */
  trend: DrillTrendPoint[];
  links: { json: string; markdown: string; html: string } | null;
}

// ------------------------------------------------------------------ monthly restore test
// Reports, in the service's primary backup destination (or its first one):
//   <prefix><service>/reports/restore-test/<testId>.{json,md,html}
// History = the earlier JSON reports listed from there.

export const RestoreErrorType = {
  /** The dump object's size or SHA-256 differs from its manifest: nothing was restored. */
  BackupCorrupt: BackupErrorType.BackupCorrupt,
  /** The manifest is missing, unreadable, or not a drbook backup manifest. */
  ManifestInvalid: ErrorType.ManifestInvalid,
  /** The manifest's signature is missing or does not verify with any key of the worker's keyring. */
  ManifestUnauthenticated: ErrorType.ManifestUnauthenticated,
  /** No verified backup (manifest present) of the service, or not the one asked for. */
  NoVerifiedBackup: ErrorType.NoVerifiedBackup,
  /** Fetch | zstd -d | mariadb failed (stderr in the message). */
  RestoreFailed: ErrorType.RestoreFailed,
  /** The backup holds a mariadb client command (or other input a restore never runs): nothing of it ran. */
  RestoreRefused: ErrorType.RestoreRefused,
  /** The restore ran, and at least one check failed; the message names each. */
  RestoreTestFailed: ErrorType.RestoreTestFailed,
  /** Point-in-time recovery: the binlog archive lacks a log between the backup's position and the point. */
  PitrArchiveGap: ErrorType.PitrArchiveGap,
} as const;

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
 * One check of a restore test. `gate: true` checks decide pass/fail; `gate: false` ones are
 * evidence (RTO/RPO of a hot or warm service, whose recovery does not depend on this restore).
 */
export interface RestoreCheck {
  name: string;
  ok: boolean;
  gate: boolean;
  detail: string;
}

export interface RestoreTestReport {
  format: 'drbook-restore-test/1';
  id: string;
  service: string;
  tier: string;
  strategy: string;
  outcome: 'passed' | 'failed' | 'cancelled';
  /** The first failed gating check (what the alert names), or null. */
  failedCheck: string | null;
  startedAt: string;
  endedAt: string;
  backup: {
    id: string | null;
    source: string | null;
    startedAt: string | null;
    size: number | null;
    sha256: string | null;
    position: BackupManifest['position'] | null;
  };
  scratch: { server: string; databases: { source: string; scratch: string }[] } | null;
  measured: {
    /** Fetch + checksum-checked stream + decompress + load. */
    restoreSeconds: number | null;
    /** Restore plus validation: how long recovering from this backup takes (RTO evidence). */
    rtoSeconds: number | null;
    /** Age of the backup's data when the test ran (RPO evidence). */
    backupAgeSeconds: number | null;
    checksumSeconds: number | null;
    bytesRestored: number | null;
  };
  targets: { rtoSeconds: number; rpoSeconds: number };
  checks: RestoreCheck[];
  rds: {
    snapshot: string;
    region: string;
    instance: string;
    status: string;
    seconds: number;
    deleted: boolean;
  } | null;
  /** Point-in-time recovery (services with the binlog archive): the archived logs replayed onto the restore. */
  pitr?: {
    target: { kind: 'gtid' | 'time' | 'end'; value: string | null };
    logs: string[];
    transactions: number;
    lastGtid: string | null;
    lastEventAt: string | null;
    archiveEndsAt: string | null;
    reached: boolean;
    seconds: number;
  } | null;
  /** Physical backup (backup.physical): restored into a scratch instance of its own, checked, removed. */
  physical?: {
    backupId: string;
    startedAt: string;
    seconds: { extract: number; prepare: number; start: number; validate: number; total: number };
    rows: number;
    cleanedUp: boolean;
  } | null;
  /** File trees (backup.paths): each tree's newest chain restored into a scratch directory, checked, removed. */
  fileTrees?: {
    tree: string;
    host: string;
    path: string;
    backupId: string;
    chain: string[];
    files: number;
    bytes: number;
    seconds: number;
    /** Differences from the backup's per-file list (empty: restored exactly). */
    problems: string[];
    cleanedUp: boolean;
  }[];
  cleanup: { done: boolean; detail: string }[];
  steps: StepRecord[];
  /** Where the report was stored (filled in when published). */
  links: { json: string; markdown: string; html: string } | null;
}

export interface RestoreTestResult {
  service: string;
  testId: string;
  outcome: RestoreTestReport['outcome'];
  backupId: string | null;
  failedCheck: string | null;
  measured: RestoreTestReport['measured'];
  targets: RestoreTestReport['targets'];
  /** Locations of the stored report (JSON, Markdown, HTML). */
  report: { json: string; markdown: string; html: string } | null;
}

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
