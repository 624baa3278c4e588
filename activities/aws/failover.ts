/**
 * AWS changes a failover makes: start (and later stop) the DR fleet, point DNS at the DR side
 * (the RDS DR replica's promotion and re-creation: ./rds-replica.ts). Each reads the current
 * state first and does nothing when the change is already made; each waits with the SDK's
 * waiters, heartbeating.
 */
import {
  DescribeInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  waitUntilInstanceRunning,
  waitUntilInstanceStopped,
} from '@aws-sdk/client-ec2';
import { ChangeResourceRecordSetsCommand, waitUntilResourceRecordSetsChanged } from '@aws-sdk/client-route-53';
import { PublishCommand } from '@aws-sdk/client-sns';
import { ErrorType } from '../../contract';
import { aws, failure } from '../errors';
import { whileHeartbeating } from '../process/heartbeat';
import { createAwsActivities, hostedZoneIdFor, tagFilters } from './index';
import type { AwsClients } from './clients';

const WAIT_SECONDS = 600;

/** The DR compute: stopped instances tagged for DR started, and stopped again after failback. */
function createDrComputeActivities(clients: AwsClients) {
  async function instanceIds(region: string, tags: Record<string, string>, states: string[]) {
    const out = await aws(`EC2 instances tagged ${JSON.stringify(tags)} (${region})`, () =>
      clients.ec2(region).send(
        new DescribeInstancesCommand({
          Filters: [...tagFilters(tags), { Name: 'instance-state-name', Values: states }],
        }),
      ),
    );
    return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId!);
  }

  return {
    /** Start every stopped instance carrying the DR tags and wait until all of them run. */
    async startDrInstances({
      region,
      tags,
    }: {
      region: string;
      tags: Record<string, string>;
    }): Promise<{ started: string[]; running: string[] }> {
      const all = await instanceIds(region, tags, ['pending', 'running', 'stopping', 'stopped']);
      if (all.length === 0)
        throw failure(ErrorType.ResourceNotFound, `no EC2 instance tagged ${JSON.stringify(tags)} in ${region}`, {
          region,
          tags,
        });
      const stopped = await instanceIds(region, tags, ['stopped']);
      if (stopped.length) {
        await aws(`EC2 start ${stopped.join(',')} (${region})`, () =>
          clients.ec2(region).send(new StartInstancesCommand({ InstanceIds: stopped })),
        );
      }
      await whileHeartbeating(
        { waitingFor: 'running', instances: all },
        aws(`EC2 wait running ${all.join(',')} (${region})`, () =>
          waitUntilInstanceRunning(
            { client: clients.ec2(region), maxWaitTime: WAIT_SECONDS, minDelay: 1, maxDelay: 5 },
            { InstanceIds: all },
          ),
        ),
      );
      return { started: stopped, running: all };
    },

    /** Put the DR fleet back to warm standby (after a drill or a failback). */
    async stopDrInstances({
      region,
      tags,
    }: {
      region: string;
      tags: Record<string, string>;
    }): Promise<{ stopped: string[] }> {
      const running = await instanceIds(region, tags, ['pending', 'running']);
      if (running.length) {
        await aws(`EC2 stop ${running.join(',')} (${region})`, () =>
          clients.ec2(region).send(new StopInstancesCommand({ InstanceIds: running })),
        );
        await whileHeartbeating(
          { waitingFor: 'stopped', instances: running },
          aws(`EC2 wait stopped (${region})`, () =>
            waitUntilInstanceStopped(
              { client: clients.ec2(region), maxWaitTime: WAIT_SECONDS, minDelay: 1, maxDelay: 5 },
              { InstanceIds: running },
            ),
          ),
        );
      }
      return { stopped: running };
    },
  };
}

/** Traffic and people: the DNS record switched, an SNS message published. */
function createTrafficActivities(clients: AwsClients) {
  const read = createAwsActivities(clients);

  return {
    /** UPSERT the record to `value` with `ttl`, then wait until Route 53 reports INSYNC. */
    async switchDnsRecord({
      zone,
      zoneId: configuredZoneId,
      name,
      type,
      ttl,
      value,
    }: {
      zone: string;
      /** The inventory's dns.hostedZoneId: which of several zones of one name (split-horizon) to change. */
      zoneId?: string;
      name: string;
      type: string;
      ttl: number;
      value: string;
    }): Promise<{ name: string; value: string; changed: boolean; previous: string[] }> {
      const current = await read.readDnsRecord({ zone, zoneId: configuredZoneId, name, type });
      if (current && current.values.length === 1 && current.values[0] === value && current.ttl === ttl) {
        return { name, value, changed: false, previous: current.values };
      }
      const zoneId = current?.zoneId ?? (await hostedZoneIdFor(clients, zone, configuredZoneId));
      const r53 = clients.route53();
      const out = await aws(`Route 53 UPSERT ${name} ${type}`, () =>
        r53.send(
          new ChangeResourceRecordSetsCommand({
            HostedZoneId: zoneId,
            ChangeBatch: {
              Comment: `drbook: ${name} -> ${value}`,
              Changes: [
                {
                  Action: 'UPSERT',
                  ResourceRecordSet: {
                    Name: name,
                    Type: type as 'CNAME',
                    TTL: ttl,
                    ResourceRecords: [{ Value: value }],
                  },
                },
              ],
            },
          }),
        ),
      );
      await whileHeartbeating(
        { waitingFor: 'INSYNC', change: out.ChangeInfo?.Id },
        aws(`Route 53 change ${out.ChangeInfo?.Id}`, () =>
          waitUntilResourceRecordSetsChanged(
            { client: r53, maxWaitTime: WAIT_SECONDS, minDelay: 1, maxDelay: 10 },
            { Id: out.ChangeInfo!.Id! },
          ),
        ),
      );
      return { name, value, changed: true, previous: current?.values ?? [] };
    },

    /** Publish to an SNS topic; the message id is the receipt. */
    async publishSns({
      region,
      topicArn,
      subject,
      message,
    }: {
      region: string;
      topicArn: string;
      subject: string;
      message: string;
    }): Promise<{ messageId: string }> {
      const out = await aws(`SNS ${topicArn}`, () =>
        clients
          .sns(region)
          .send(new PublishCommand({ TopicArn: topicArn, Subject: subject.slice(0, 99), Message: message })),
      );
      return { messageId: out.MessageId ?? '' };
    },
  };
}

export function createAwsFailoverActivities(clients: AwsClients) {
  return {
    ...createDrComputeActivities(clients),
    ...createTrafficActivities(clients),
  };
}

export type AwsFailoverActivities = ReturnType<typeof createAwsFailoverActivities>;
