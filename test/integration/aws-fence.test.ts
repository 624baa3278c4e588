/**
 * The independent fence of an unattended failover (activities/aws/fence.ts) against the AWS API
 * emulator: the old primary's EC2 instance stopped, or every ingress rule of its security group
 * revoked; both idempotent; nothing found fails fast, naming what was looked for. Each test makes
 * its own instance and group under a tag of its own, and removes them.
 */
import { randomUUID } from 'node:crypto';
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  DeleteSecurityGroupCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { AwsClients, awsConnectionFromInventory } from '../../activities/aws/clients';
import { buildAdapters, failureType, sandbox } from '../helpers/stack';

describe('AWS fence of an old primary (moto)', () => {
  const loaded = sandbox();
  const { activities, close } = buildAdapters(loaded);
  const ec2 = new AwsClients(awsConnectionFromInventory(loaded.inventory, loaded.baseDir)).ec2('us-east-1');
  const made: { instances: string[]; groups: string[] } = { instances: [], groups: [] };
  afterAll(async () => {
    if (made.instances.length) await ec2.send(new TerminateInstancesCommand({ InstanceIds: made.instances }));
    for (const GroupId of made.groups) await ec2.send(new DeleteSecurityGroupCommand({ GroupId }));
    await close();
  });

  test('stop-instance: the old primary instance is stopped; a second call finds it stopped', async () => {
    const tags = { Role: 'db-primary', FenceTest: randomUUID() };
    const out = await ec2.send(
      new RunInstancesCommand({
        ImageId: 'ami-12c6146b',
        InstanceType: 't3.micro',
        MinCount: 1,
        MaxCount: 1,
        TagSpecifications: [
          { ResourceType: 'instance', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) },
        ],
      }),
    );
    const id = out.Instances![0].InstanceId!;
    made.instances.push(id);

    const fenced = await activities.isolateOldPrimary({ region: 'us-east-1', action: 'stop-instance', tags });
    expect(fenced).toMatchObject({
      action: 'stop-instance',
      resources: [id],
      detail: `${id} stopped through the EC2 API`,
    });
    const state = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    expect(state.Reservations![0].Instances![0].State?.Name).toBe('stopped');

    const again = await activities.isolateOldPrimary({ region: 'us-east-1', action: 'stop-instance', tags });
    expect(again.detail).toBe(`${id} stopped (already) through the EC2 API`);
  });

  test('revoke-ingress: every ingress rule of the old primary security group is revoked', async () => {
    const tags = { Role: 'db-primary', FenceTest: randomUUID() };
    const group = await ec2.send(
      new CreateSecurityGroupCommand({
        GroupName: `db-primary-${tags.FenceTest}`,
        Description: 'old primary (fence test)',
        TagSpecifications: [
          { ResourceType: 'security-group', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) },
        ],
      }),
    );
    const groupId = group.GroupId!;
    made.groups.push(groupId);
    await ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: groupId,
        IpPermissions: [
          { IpProtocol: 'tcp', FromPort: 3306, ToPort: 3306, IpRanges: [{ CidrIp: '10.0.0.0/8' }] },
          { IpProtocol: 'tcp', FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: '10.1.0.0/16' }] },
        ],
      }),
    );

    const fenced = await activities.isolateOldPrimary({ region: 'us-east-1', action: 'revoke-ingress', tags });
    expect(fenced).toMatchObject({ action: 'revoke-ingress', resources: [groupId] });
    expect(fenced.detail).toBe(`every ingress rule of ${groupId} revoked (2 rule(s))`);
    const after = await ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [groupId] }));
    expect(after.SecurityGroups![0].IpPermissions ?? []).toEqual([]);

    const again = await activities.isolateOldPrimary({ region: 'us-east-1', action: 'revoke-ingress', tags });
    expect(again.detail).toBe(`every ingress rule of ${groupId} revoked (0 rule(s))`);
  });

  test('nothing carrying the tags: fails fast, non-retryable, naming the tags', async () => {
    const tags = { Role: 'db-primary', FenceTest: randomUUID() };
    const err = await activities
      .isolateOldPrimary({ region: 'us-east-1', action: 'stop-instance', tags })
      .catch((e: unknown) => e);
    expect(failureType(err)).toBe('ResourceNotFound');
    expect((err as Error).message).toContain(`no EC2 instances tagged ${JSON.stringify(tags)} (us-east-1)`);
  });
});
