/**
 * AWS SDK v3 clients, one per (service, region), built once per worker. The endpoint
 * override points every client at the AWS API emulator in the local stack; against
 * real AWS it is absent and the default credential chain (instance role, SSO) applies
 * unless the inventory names explicit key references.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { RDSClient } from '@aws-sdk/client-rds';
import { Route53Client } from '@aws-sdk/client-route-53';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { appendFileSync } from 'node:fs';
import { Context } from '@temporalio/activity';
import type { Inventory } from '../../contract';
import { resolveSecret } from '../../config/load';

export interface AwsConnection {
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Connect and idle-socket timeouts (ms) of the SDK's HTTP handler. */
  timeouts?: { connectMs: number; idleMs: number };
  /** Where the emulator differs from AWS in what a step checks (inventory `aws.emulator`). */
  emulator?: { rdsKeepsReplicaSourceAfterPromote: boolean; rdsPromotesBeforeAnswering?: boolean };
}

/** The HTTP handler's timeouts: a silent network fails the call (TimeoutError, named by `aws()`), never hangs. */
const requestHandler = (c: AwsConnection) =>
  c.timeouts ? { connectionTimeout: c.timeouts.connectMs, socketTimeout: c.timeouts.idleMs } : undefined;

export function awsConnectionFromInventory(inventory: Inventory, baseDir: string): AwsConnection {
  const { endpoint, accessKeyId, secretAccessKey, timeouts, emulator } = inventory.aws;
  const credentials =
    accessKeyId && secretAccessKey
      ? { accessKeyId: resolveSecret(accessKeyId, baseDir), secretAccessKey: resolveSecret(secretAccessKey, baseDir) }
      : undefined;
  return {
    endpoint,
    credentials,
    timeouts: { connectMs: timeouts.connectSeconds * 1000, idleMs: timeouts.idleSeconds * 1000 },
    emulator,
  };
}

/** One AWS call a runbook made: the SDK's names, and the activity and task queue it ran on. */
export interface RecordedAwsCall {
  /** The SDK client without `Client`: S3, EC2, RDS, Route53, ElasticLoadBalancingV2, SNS. */
  service: string;
  /** The SDK command without `Command`: PutObject, DescribeInstances, … */
  command: string;
  region: string;
  activity: string;
  taskQueue: string;
  /** Inputs that change the IAM action a call needs: a VersionId (…Version actions), an Object Lock mode. */
  versioned?: true;
  objectLock?: true;
}

interface MiddlewareClient {
  config: { region: () => Promise<string> };
  middlewareStack: {
    add(
      mw: (
        next: (args: unknown) => Promise<unknown>,
        context: { clientName?: string; commandName?: string },
      ) => (args: { input?: Record<string, unknown> }) => Promise<unknown>,
      options: { step: 'initialize'; name: string },
    ): void;
  };
}

/**
 * Tests only (DRBOOK_AWS_CALL_LOG, set by scripts/stack.sh test): append every call made inside an activity to
 * that file, one JSON line each, for the IAM policy audit (test/audit/aws-policy.test.ts). Calls outside an
 * activity (a test's own setup, scripts) are not runbook calls and are not recorded. Off, nothing is added.
 */
function recordCalls<C>(client: C, log = process.env.DRBOOK_AWS_CALL_LOG): C {
  if (!log) return client;
  const c = client as unknown as MiddlewareClient;
  c.middlewareStack.add(
    (next, context) => async (args) => {
      let info: Context['info'] | undefined;
      try {
        info = Context.current().info;
      } catch {
        info = undefined;
      }
      if (info) {
        const call: RecordedAwsCall = {
          service: (context.clientName ?? '?').replace(/Client$/, ''),
          command: (context.commandName ?? '?').replace(/Command$/, ''),
          region: await c.config.region(),
          activity: info.activityType,
          taskQueue: info.taskQueue,
          ...(args.input?.VersionId ? { versioned: true as const } : {}),
          ...(args.input?.ObjectLockMode ? { objectLock: true as const } : {}),
        };
        appendFileSync(log, JSON.stringify(call) + '\n');
      }
      return next(args);
    },
    { step: 'initialize', name: 'drbookAwsCallRecorder' },
  );
  return client;
}

type ClientClass<C> = new (config: {
  region: string;
  endpoint?: string;
  credentials?: AwsConnection['credentials'];
  maxAttempts?: number;
  requestHandler?: ReturnType<typeof requestHandler>;
}) => C;

export class AwsClients {
  private readonly cache = new Map<string, unknown>();

  constructor(readonly connection: AwsConnection) {}

  private get<C extends { destroy(): void }>(kind: ClientClass<C>, region: string): C {
    const key = `${kind.name}:${region}`;
    let client = this.cache.get(key) as C | undefined;
    if (!client) {
      // The SDK's own retries stay short: Temporal's activity retry policy is the one that counts.
      client = recordCalls(
        new kind({
          region,
          endpoint: this.connection.endpoint,
          credentials: this.connection.credentials,
          maxAttempts: 2,
          requestHandler: requestHandler(this.connection),
        }),
      );
      this.cache.set(key, client);
    }
    return client;
  }

  ec2 = (region: string) => this.get(EC2Client, region);
  elbv2 = (region: string) => this.get(ElasticLoadBalancingV2Client, region);
  rds = (region: string) => this.get(RDSClient, region);
  // Route 53 is global; its API lives in us-east-1.
  route53 = () => this.get(Route53Client, 'us-east-1');
  sns = (region: string) => this.get(SNSClient, region);

  destroy(): void {
    for (const client of this.cache.values()) (client as { destroy(): void }).destroy();
    this.cache.clear();
  }
}

/** An S3 client for a backup destination: the streaming store in the local stack, or AWS. */
export function s3ClientFor(destination: { region: string; endpoint?: string }, connection: AwsConnection): S3Client {
  const endpoint = destination.endpoint ?? connection.endpoint;
  const client = new S3Client({
    region: destination.region,
    endpoint,
    forcePathStyle: Boolean(endpoint),
    credentials: connection.credentials,
    requestHandler: requestHandler(connection),
    // S3-compatible stores (s3proxy, the emulator) refuse the SDK's default trailing CRC checksums;
    // drbook verifies every object with its own SHA-256 anyway.
    ...(endpoint ? { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' } : {}),
  });
  return recordCalls(client);
}
