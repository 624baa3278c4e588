/**
 * Seeds the AWS API emulator (and the streaming object store) with the sandbox estate
 * the inventory describes: for each service, a web tier behind an ELB target group,
 * stopped DR instances carrying the DR tags, tagged EBS volumes, an RDS primary with a
 * DR read replica, the DNS record, backup buckets in both regions and the SNS topic.
 *
 * Idempotent: every resource is looked up by name or tag before it is created, so it
 * runs on every stack start (moto keeps its state in memory only).
 *
 *   node -r ts-node/register/transpile-only scripts/seed-aws.ts
 */
import {
  CreateTagsCommand,
  CreateVolumeCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  DescribeVpcsCommand,
  RunInstancesCommand,
  StopInstancesCommand,
  type Filter,
} from '@aws-sdk/client-ec2';
import {
  CreateTargetGroupCommand,
  DescribeTargetGroupsCommand,
  RegisterTargetsCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import {
  CreateDBInstanceCommand,
  CreateDBInstanceReadReplicaCommand,
  DescribeDBInstancesCommand,
} from '@aws-sdk/client-rds';
import {
  ChangeResourceRecordSetsCommand,
  CreateHostedZoneCommand,
  ListHostedZonesByNameCommand,
  ListResourceRecordSetsCommand,
} from '@aws-sdk/client-route-53';
import { CreateBucketCommand, HeadBucketCommand, type BucketLocationConstraint } from '@aws-sdk/client-s3';
import { CreateTopicCommand } from '@aws-sdk/client-sns';
import { loadInventory } from '../config/load';
import type { Service } from '../contract';
import { AwsClients, awsConnectionFromInventory, s3ClientFor, type AwsConnection } from '../activities/aws/clients';

// A fixed AMI id moto ships with; any id works against the emulator.
const AMI = 'ami-03cf127a';
const say = (msg: string) => console.log(`[seed] ${msg}`);

async function instancesByTags(aws: AwsClients, region: string, tags: Record<string, string>) {
  const filters: Filter[] = Object.entries(tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] }));
  filters.push({ Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] });
  const out = await aws.ec2(region).send(new DescribeInstancesCommand({ Filters: filters }));
  return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
}

async function ensureInstances(
  aws: AwsClients,
  region: string,
  tags: Record<string, string>,
  count: number,
  stopped: boolean,
) {
  let instances = await instancesByTags(aws, region, tags);
  if (instances.length < count) {
    const out = await aws.ec2(region).send(
      new RunInstancesCommand({
        ImageId: AMI,
        InstanceType: 't3.micro',
        MinCount: count - instances.length,
        MaxCount: count - instances.length,
        TagSpecifications: [
          { ResourceType: 'instance', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) },
        ],
      }),
    );
    instances = [...instances, ...(out.Instances ?? [])];
  }
  const ids = instances.map((i) => i.InstanceId!);
  if (stopped) {
    const running = instances.filter((i) => i.State?.Name !== 'stopped').map((i) => i.InstanceId!);
    if (running.length) await aws.ec2(region).send(new StopInstancesCommand({ InstanceIds: running }));
  }
  return ids;
}

async function ensureTargetGroup(aws: AwsClients, region: string, name: string, instanceIds: string[]) {
  const elb = aws.elbv2(region);
  let arn: string | undefined;
  try {
    const found = await elb.send(new DescribeTargetGroupsCommand({ Names: [name] }));
    arn = found.TargetGroups?.[0]?.TargetGroupArn;
  } catch (err) {
    if ((err as Error).name !== 'TargetGroupNotFoundException') throw err;
  }
  if (!arn) {
    const vpcs = await aws
      .ec2(region)
      .send(new DescribeVpcsCommand({ Filters: [{ Name: 'is-default', Values: ['true'] }] }));
    const created = await elb.send(
      new CreateTargetGroupCommand({
        Name: name,
        Protocol: 'HTTP',
        Port: 80,
        VpcId: vpcs.Vpcs?.[0]?.VpcId,
        TargetType: 'instance',
      }),
    );
    arn = created.TargetGroups![0].TargetGroupArn!;
  }
  await elb.send(
    new RegisterTargetsCommand({ TargetGroupArn: arn, Targets: instanceIds.map((Id) => ({ Id, Port: 80 })) }),
  );
  return arn;
}

async function ensureVolumes(aws: AwsClients, region: string, tags: Record<string, string>, count: number) {
  const filters = Object.entries(tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] }));
  const found = await aws.ec2(region).send(new DescribeVolumesCommand({ Filters: filters }));
  for (let i = found.Volumes?.length ?? 0; i < count; i++) {
    const vol = await aws
      .ec2(region)
      .send(new CreateVolumeCommand({ AvailabilityZone: `${region}a`, Size: 20, VolumeType: 'gp3' }));
    await aws.ec2(region).send(
      new CreateTagsCommand({
        Resources: [vol.VolumeId!],
        Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
      }),
    );
  }
}

async function rdsInstance(aws: AwsClients, region: string, id: string) {
  try {
    const out = await aws.rds(region).send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: id }));
    return out.DBInstances?.[0];
  } catch (err) {
    if ((err as Error).name === 'DBInstanceNotFoundFault' || (err as Error).name === 'DBInstanceNotFound')
      return undefined;
    throw err;
  }
}

async function ensureRds(aws: AwsClients, svc: Service) {
  const rds = svc.rds!;
  let primary = await rdsInstance(aws, rds.region, rds.instance);
  if (!primary) {
    const out = await aws.rds(rds.region).send(
      new CreateDBInstanceCommand({
        DBInstanceIdentifier: rds.instance,
        DBInstanceClass: 'db.t3.micro',
        Engine: 'mysql',
        AllocatedStorage: 20,
        MasterUsername: 'admin',
        // The emulator needs a value; it is not a credential anyone uses.
        MasterUserPassword: 'sandbox-only-not-a-secret',
        MultiAZ: svc.tier === 'critical',
        BackupRetentionPeriod: 7,
        Tags: [{ Key: 'Service', Value: svc.name }],
      }),
    );
    primary = out.DBInstance;
  }
  if (rds.drReplica && !(await rdsInstance(aws, rds.drReplica.region, rds.drReplica.instance))) {
    await aws.rds(rds.drReplica.region).send(
      new CreateDBInstanceReadReplicaCommand({
        DBInstanceIdentifier: rds.drReplica.instance,
        SourceDBInstanceIdentifier: primary!.DBInstanceArn,
        DBInstanceClass: 'db.t3.micro',
        Tags: [{ Key: 'Service', Value: svc.name }],
      }),
    );
  }
}

async function ensureDns(aws: AwsClients, svc: Service) {
  const dns = svc.dns!;
  const r53 = aws.route53();
  const zoneName = dns.hostedZone.endsWith('.') ? dns.hostedZone : `${dns.hostedZone}.`;
  const zones = await r53.send(new ListHostedZonesByNameCommand({ DNSName: zoneName }));
  let zoneId = zones.HostedZones?.find((z) => z.Name === zoneName)?.Id;
  if (!zoneId) {
    const out = await r53.send(
      new CreateHostedZoneCommand({ Name: zoneName, CallerReference: `drbook-seed-${zoneName}` }),
    );
    zoneId = out.HostedZone!.Id!;
  }
  // The record is only created where missing: after a failover it points at the DR side and must stay there.
  const records = await r53.send(new ListResourceRecordSetsCommand({ HostedZoneId: zoneId }));
  const recordName = dns.record.endsWith('.') ? dns.record : `${dns.record}.`;
  if (!records.ResourceRecordSets?.some((r) => r.Name === recordName && r.Type === dns.type)) {
    await r53.send(
      new ChangeResourceRecordSetsCommand({
        HostedZoneId: zoneId,
        ChangeBatch: {
          Comment: 'drbook sandbox seed',
          Changes: [
            {
              Action: 'CREATE',
              ResourceRecordSet: {
                Name: recordName,
                Type: dns.type,
                TTL: dns.ttl,
                ResourceRecords: [{ Value: dns.primaryValue }],
              },
            },
          ],
        },
      }),
    );
  }
}

async function ensureBucket(
  destination: { region: string; bucket: string; endpoint?: string },
  connection: AwsConnection,
) {
  // The streaming store (an endpoint of its own) has no regions: it only takes buckets created in us-east-1.
  const s3 = s3ClientFor(destination.endpoint ? { ...destination, region: 'us-east-1' } : destination, connection);
  try {
    await s3.send(new HeadBucketCommand({ Bucket: destination.bucket }));
  } catch {
    await s3.send(
      new CreateBucketCommand({
        Bucket: destination.bucket,
        CreateBucketConfiguration:
          destination.endpoint || destination.region === 'us-east-1'
            ? undefined
            : { LocationConstraint: destination.region as BucketLocationConstraint },
      }),
    );
  } finally {
    s3.destroy();
  }
}

async function main() {
  const { inventory, baseDir } = loadInventory();
  const connection = awsConnectionFromInventory(inventory, baseDir);
  if (!connection.endpoint) throw new Error('seed-aws only seeds an emulator: the inventory has no aws.endpoint');
  const aws = new AwsClients(connection);
  try {
    for (const target of inventory.notifications) {
      if (target.kind === 'sns') {
        await aws.sns(target.region).send(new CreateTopicCommand({ Name: target.topicArn.split(':').pop()! }));
      }
    }
    for (const svc of inventory.services) {
      if (svc.health.elbTargetGroup) {
        const tg = svc.health.elbTargetGroup;
        const web = await ensureInstances(
          aws,
          tg.region,
          { Service: svc.name, Role: 'web', Environment: 'Production' },
          2,
          false,
        );
        await ensureTargetGroup(aws, tg.region, tg.name, web);
      }
      if (svc.drCompute) await ensureInstances(aws, svc.drCompute.region, svc.drCompute.tags, 2, true);
      if (svc.backup?.volumeTags) await ensureVolumes(aws, inventory.regions.primary, svc.backup.volumeTags, 2);
      if (svc.rds) await ensureRds(aws, svc);
      if (svc.dns) await ensureDns(aws, svc);
      const { primary, offsite } = svc.backup?.destinations ?? {};
      for (const dest of [primary, offsite]) {
        if (!dest) continue;
        await ensureBucket(dest, connection); // the streaming store
        // the emulator's S3 (lifecycle, policies)
        await ensureBucket({ region: dest.region, bucket: dest.bucket }, connection);
      }
      say(`service ${svc.name}: estate present`);
    }
  } finally {
    aws.destroy();
  }
}

main().catch((err) => {
  console.error(`[seed] failed: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
