/**
 * The independent fence: an old primary that cannot be made read-only (unreachable over SQL, yet
 * perhaps alive and taking writes) is cut off through the AWS API instead, so an unattended
 * failover never promotes while a second writer may exist. Per service in the inventory
 * (`services[].awsFence`): stop its EC2 instance, or revoke every ingress rule of its security
 * group(s). Both are idempotent: an instance already stopped, a group with no ingress left, is done.
 */
import {
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  RevokeSecurityGroupIngressCommand,
  StopInstancesCommand,
  waitUntilInstanceStopped,
} from '@aws-sdk/client-ec2';
import { ErrorType } from '../../contract';
import { aws, failure } from '../errors';
import { whileHeartbeating } from '../process/heartbeat';
import { tagFilters } from './index';
import type { AwsClients } from './clients';

export interface AwsFenceResult {
  action: 'stop-instance' | 'revoke-ingress';
  /** The instances stopped, or the security groups emptied (all of them, already done or not). */
  resources: string[];
  detail: string;
}

const WAIT_SECONDS = 300;

export function createAwsFenceActivities(clients: AwsClients) {
  return {
    async isolateOldPrimary({
      region,
      action,
      tags,
    }: {
      region: string;
      action: 'stop-instance' | 'revoke-ingress';
      tags: Record<string, string>;
    }): Promise<AwsFenceResult> {
      const what =
        `${action === 'stop-instance' ? 'EC2 instances' : 'security groups'} ` +
        `tagged ${JSON.stringify(tags)} (${region})`;
      const ec2 = clients.ec2(region);
      if (action === 'stop-instance') {
        const out = await aws(what, () =>
          ec2.send(
            new DescribeInstancesCommand({
              Filters: [
                ...tagFilters(tags),
                { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
              ],
            }),
          ),
        );
        const instances = (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
        if (instances.length === 0) throw failure(ErrorType.ResourceNotFound, `no ${what}: nothing to fence`, { tags });
        const ids = instances.map((i) => i.InstanceId!);
        const up = instances.filter((i) => i.State?.Name !== 'stopped').map((i) => i.InstanceId!);
        // Force: a fence must not wait for a hung guest's clean shutdown.
        if (up.length)
          await aws(`EC2 stop ${up.join(',')} (${region})`, () =>
            ec2.send(new StopInstancesCommand({ InstanceIds: up, Force: true })),
          );
        await whileHeartbeating(
          { waitingFor: 'stopped', instances: ids },
          aws(`EC2 wait stopped ${ids.join(',')} (${region})`, () =>
            waitUntilInstanceStopped(
              { client: ec2, maxWaitTime: WAIT_SECONDS, minDelay: 1, maxDelay: 5 },
              { InstanceIds: ids },
            ),
          ),
        );
        return {
          action,
          resources: ids,
          detail: `${ids.join(', ')} stopped${up.length ? '' : ' (already)'} through the EC2 API`,
        };
      }
      const out = await aws(what, () => ec2.send(new DescribeSecurityGroupsCommand({ Filters: tagFilters(tags) })));
      const groups = out.SecurityGroups ?? [];
      if (groups.length === 0) throw failure(ErrorType.ResourceNotFound, `no ${what}: nothing to fence`, { tags });
      let revoked = 0;
      for (const g of groups) {
        if (!g.IpPermissions?.length) continue;
        await aws(`EC2 revoke ingress of ${g.GroupId} (${region})`, () =>
          ec2.send(new RevokeSecurityGroupIngressCommand({ GroupId: g.GroupId, IpPermissions: g.IpPermissions })),
        );
        revoked += g.IpPermissions.length;
      }
      // Re-read: the fence holds only if no ingress rule is left.
      const after = await aws(what, () => ec2.send(new DescribeSecurityGroupsCommand({ Filters: tagFilters(tags) })));
      const left = (after.SecurityGroups ?? []).filter((g) => g.IpPermissions?.length);
      if (left.length)
        throw failure(
          ErrorType.FenceFailed,
          `ingress still open on ${left.map((g) => g.GroupId).join(', ')} after revoking`,
          {
            tags,
          },
        );
      const ids = groups.map((g) => g.GroupId!);
      return { action, resources: ids, detail: `every ingress rule of ${ids.join(', ')} revoked (${revoked} rule(s))` };
    },
  };
}

export type AwsFenceActivities = ReturnType<typeof createAwsFenceActivities>;
