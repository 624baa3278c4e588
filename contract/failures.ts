/**
 * Every failure type drbook raises and whether a retry can help: the one table activities, workflows, retry
 * policies and operators read. Pure, so it is safe in the workflow sandbox.
 */
import { ApplicationFailure } from '@temporalio/common';

/**
 * Every ApplicationFailure type drbook raises, and whether a retry can help. `false`: the same call fails
 * the same way until a human changes something (or the data is hostile), so the step fails at once.
 * `failure()` and every retry policy (NON_RETRYABLE) read this one table; a driver's own code
 * (ECONNREFUSED, a throttled AWS call: `driverFailure()`) is not listed and stays retryable.
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
  /**
   * A backup copy's size or SHA-256 differs from what was written / what the manifest says: read again, still corrupt.
   */
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
  /** An RDS instance did not reach the state waited for in time (it may still get there: wait again). */
  RdsWaitTimedOut: true,
  SnapshotFailed: true,
  RecloneFailed: true,
  DrillFailed: false,
  /**
   * A connection cut off mid-read (the driver's own code, kept as the type): says nothing of the server, read again.
   */
  ECONNRESET: true,
  /** A MySQL driver error without a code of its own. */
  MysqlError: true,
  /** An ssh2 client error without a code of its own. */
  SshError: true,
  /** A local destination's file-system error without a code of its own. */
  FileSystemError: true,
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

/** A typed failure; its retryability comes from the table above, and only a type the table lists is accepted. */
export function failure(type: ErrorType, message: string, details?: Record<string, unknown>): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable: !FAILURE_RETRYABLE[type],
    details: details ? [details] : undefined,
  });
}

/**
 * A driver's or the OS's own error code as the failure's type (ECONNREFUSED, ER_LOCK_WAIT_TIMEOUT, EIO), or
 * `fallback` when it gave none. A code is not in the table: a human did not cause it, so it is retried.
 */
export function driverFailure(
  code: string | undefined,
  fallback: ErrorType,
  message: string,
  details?: Record<string, unknown>,
): ApplicationFailure {
  if (code === undefined) return failure(fallback, message, details);
  return ApplicationFailure.create({
    type: code,
    message,
    nonRetryable: false,
    details: details ? [details] : undefined,
  });
}
