/**
 * The operator contract in one place: runbook inputs (validated with zod inside the
 * workflow, before any side effect), the `status` shape, approvals, and the error
 * types activities raise and retry policies act on. Imported by workflows, activities,
 * the worker, drctl and tests alike; pure, so it is safe in the workflow sandbox.
 */
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';

/** ApplicationFailure types: what operators read and retry policies act on. */
export const ErrorType = {
  UnknownService: 'UnknownService',
  InvalidInput: 'InvalidInput',
  ResourceNotFound: 'ResourceNotFound',
  AccessDenied: 'AccessDenied',
  AwsValidation: 'AwsValidation',
  HostKeyMismatch: 'HostKeyMismatch',
  SshAuthFailed: 'SshAuthFailed',
  CommandFailed: 'CommandFailed',
  DatabaseAuthFailed: 'DatabaseAuthFailed',
  ReplicationBroken: 'ReplicationBroken',
  ReplicaLagTooHigh: 'ReplicaLagTooHigh',
  NotConfigured: 'NotConfigured',
  ApproverNotAllowed: 'ApproverNotAllowed',
  ApprovalTimedOut: 'ApprovalTimedOut',
  Aborted: 'Aborted',
  HealthCheckFailed: 'HealthCheckFailed',
} as const;
export type ErrorType = (typeof ErrorType)[keyof typeof ErrorType];

/** Never worth a retry: the same call will fail the same way until a human changes something. */
export const NON_RETRYABLE: ErrorType[] = [
  ErrorType.UnknownService,
  ErrorType.InvalidInput,
  ErrorType.ResourceNotFound,
  ErrorType.AccessDenied,
  ErrorType.AwsValidation,
  ErrorType.HostKeyMismatch,
  ErrorType.SshAuthFailed,
  ErrorType.DatabaseAuthFailed,
  ErrorType.NotConfigured,
];

export const TASK_QUEUE = 'drbook';
/**
 * DR-side steps run on a queue served by workers in the DR region: in a regional outage the
 * primary's workers are gone. Derived from the run's own queue, so test queues stay apart.
 */
export const drTaskQueue = (baseQueue: string, drRegion: string) => `${baseQueue}-${drRegion}`;

const serviceName = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'a service name from the inventory');

export const readinessInput = z.object({ service: serviceName }).strict();
export type ReadinessInput = z.infer<typeof readinessInput>;

export const failoverInput = z
  .object({
    service: serviceName,
    mode: z.enum(['real', 'drill']),
    reason: z.string().min(3, 'say why (at least 3 characters)').max(500),
    dryRun: z.boolean().default(false),
    /** Set by the monitor: when the incident began (ISO 8601), so RTO counts from detection. */
    incidentStartedAt: z.iso.datetime().optional(),
  })
  .strict();
export type FailoverInput = z.input<typeof failoverInput>;

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
    throw ApplicationFailure.create({
      type: ErrorType.InvalidInput,
      message: `invalid input: ${problems.join('; ')}`,
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
  at?: string;
}

export interface RunbookStatus {
  runbook: string;
  service: string;
  phase: string;
  steps: StepRecord[];
  pendingApproval: { step: string; needed: number; approvers: string[]; deadline: string } | null;
  measured: { rtoSeconds: number | null; rpoSeconds: number | null };
  targets: { rtoSeconds: number; rpoSeconds: number };
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
}
