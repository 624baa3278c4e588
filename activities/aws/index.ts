/**
 * AWS adapter: ELBv2, EC2, RDS, Route 53 and SNS calls the runbooks make, each naming the
 * resource it touched when it fails (activities/errors.ts maps SDK errors to types).
 */
import { DescribeInstancesCommand, type Filter } from '@aws-sdk/client-ec2';
import { DescribeTargetGroupsCommand, DescribeTargetHealthCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { DescribeDBInstancesCommand } from '@aws-sdk/client-rds';
import {
  GetHostedZoneCommand,
  ListHostedZonesByNameCommand,
  ListResourceRecordSetsCommand,
  type HostedZone,
} from '@aws-sdk/client-route-53';
import { ErrorType } from '../../contract';
import { aws, failure } from '../errors';
import type { AwsClients } from './clients';

export interface TargetHealth {
  targetGroup: string;
  region: string;
  healthy: number;
  total: number;
  targets: { id: string; state: string; reason?: string }[];
}

export interface InstanceSummary {
  id: string;
  state: string;
  privateIp?: string;
  tags: Record<string, string>;
}

export interface DnsRecord {
  zoneId: string;
  name: string;
  type: string;
  ttl: number | null;
  values: string[];
}

export interface RdsInstance {
  id: string;
  region: string;
  status: string;
  multiAz: boolean;
  /** Set on a read replica: the instance it replicates from. */
  replicaOf: string | null;
  endpoint: string | null;
}

const fqdn = (name: string) => (name.endsWith('.') ? name : `${name}.`);

export const tagFilters = (tags: Record<string, string>): Filter[] =>
  Object.entries(tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] }));

const bareZoneId = (id: string) => id.replace(/^\/hostedzone\//, '');

/**
 * The hosted zone to change. With `zoneId` (the inventory's `dns.hostedZoneId`): that zone, refused unless it
 * carries `zone`'s name. Without: the one zone of that name; several (split-horizon: a public and a private
 * zone share a name) are refused, because taking the first would change whichever Route 53 lists first.
 */
export async function hostedZoneIdFor(clients: AwsClients, zone: string, zoneId?: string): Promise<string> {
  const r53 = clients.route53();
  if (zoneId) {
    const out = await aws(`Route 53 zone ${zoneId} (${zone})`, () =>
      r53.send(new GetHostedZoneCommand({ Id: bareZoneId(zoneId) })),
    );
    const named = out.HostedZone?.Name;
    if (named !== fqdn(zone))
      throw failure(
        ErrorType.NotConfigured,
        `Route 53 hosted zone ${bareZoneId(zoneId)} is ${named ?? 'unnamed'}, not ${fqdn(zone)}: ` +
          'dns.hostedZoneId and dns.hostedZone must name the same zone',
        { zone, zoneId },
      );
    return out.HostedZone!.Id!;
  }
  const matches: HostedZone[] = [];
  let next: { DNSName?: string; HostedZoneId?: string } = { DNSName: fqdn(zone) };
  // Zones come sorted by name, so the ones named `zone` are together; read on while a page ends inside them.
  for (;;) {
    const out = await aws(`Route 53 zone ${zone}`, () => r53.send(new ListHostedZonesByNameCommand(next)));
    const page = out.HostedZones ?? [];
    matches.push(...page.filter((z) => z.Name === fqdn(zone)));
    if (!out.IsTruncated || page.at(-1)?.Name !== fqdn(zone)) break;
    next = { DNSName: out.NextDNSName, HostedZoneId: out.NextHostedZoneId };
  }
  if (matches.length === 0)
    throw failure(ErrorType.ResourceNotFound, `Route 53 hosted zone ${zone} does not exist`, { zone });
  if (matches.length > 1) {
    const which = matches.map((z) => `${bareZoneId(z.Id!)} ${z.Config?.PrivateZone ? 'private' : 'public'}`);
    throw failure(
      ErrorType.NotConfigured,
      `Route 53 has ${matches.length} hosted zones named ${fqdn(zone)} (${which.join(', ')}): ` +
        'set dns.hostedZoneId in the inventory to the one drbook changes',
      { zone, zoneIds: matches.map((z) => bareZoneId(z.Id!)) },
    );
  }
  return matches[0].Id!;
}

export function createAwsActivities(clients: AwsClients) {
  return {
    /** Health of every target in an ELB target group (looked up by name). */
    async readTargetHealth({ region, targetGroup }: { region: string; targetGroup: string }): Promise<TargetHealth> {
      const resource = `ELB target group ${targetGroup} (${region})`;
      const elb = clients.elbv2(region);
      const groups = await aws(resource, () => elb.send(new DescribeTargetGroupsCommand({ Names: [targetGroup] })));
      const arn = groups.TargetGroups?.[0]?.TargetGroupArn;
      const health = await aws(resource, () => elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: arn })));
      const targets = (health.TargetHealthDescriptions ?? []).map((d) => ({
        id: d.Target?.Id ?? '?',
        state: d.TargetHealth?.State ?? 'unknown',
        reason: d.TargetHealth?.Reason,
      }));
      return {
        targetGroup,
        region,
        healthy: targets.filter((t) => t.state === 'healthy').length,
        total: targets.length,
        targets,
      };
    },

    /** Instances (not terminated) carrying every given tag, e.g. the stopped DR fleet. */
    async findInstancesByTags({
      region,
      tags,
    }: {
      region: string;
      tags: Record<string, string>;
    }): Promise<InstanceSummary[]> {
      const resource = `EC2 instances tagged ${JSON.stringify(tags)} (${region})`;
      const filters = [
        ...tagFilters(tags),
        { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
      ];
      const out = await aws(resource, () =>
        clients.ec2(region).send(new DescribeInstancesCommand({ Filters: filters })),
      );
      return (out.Reservations ?? [])
        .flatMap((r) => r.Instances ?? [])
        .map((i) => ({
          id: i.InstanceId!,
          state: i.State?.Name ?? 'unknown',
          privateIp: i.PrivateIpAddress,
          tags: Object.fromEntries((i.Tags ?? []).map((t) => [t.Key!, t.Value ?? ''])),
        }))
        .sort((a, b) => a.id.localeCompare(b.id));
    },

    /** The record as Route 53 serves it now (null if absent); `zoneId` picks the zone where a name is not enough. */
    async readDnsRecord({
      zone,
      zoneId: configuredZoneId,
      name,
      type,
    }: {
      zone: string;
      zoneId?: string;
      name: string;
      type: string;
    }): Promise<DnsRecord | null> {
      const zoneId = await hostedZoneIdFor(clients, zone, configuredZoneId);
      const out = await aws(`Route 53 record ${name} ${type}`, () =>
        clients.route53().send(
          new ListResourceRecordSetsCommand({
            HostedZoneId: zoneId,
            StartRecordName: fqdn(name),
            StartRecordType: type as 'A',
            MaxItems: 1,
          }),
        ),
      );
      const rr = out.ResourceRecordSets?.find((r) => r.Name === fqdn(name) && r.Type === type);
      if (!rr) return null;
      return {
        zoneId,
        name: fqdn(name),
        type,
        ttl: rr.TTL ?? null,
        values: (rr.ResourceRecords ?? []).map((r) => r.Value!),
      };
    },

    async describeRdsInstance({ region, instance }: { region: string; instance: string }): Promise<RdsInstance> {
      const out = await aws(`RDS instance ${instance} (${region})`, () =>
        clients.rds(region).send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: instance })),
      );
      const db = out.DBInstances?.[0];
      if (!db) throw failure(ErrorType.ResourceNotFound, `RDS instance ${instance} (${region}) does not exist`);
      return {
        id: instance,
        region,
        status: db.DBInstanceStatus ?? 'unknown',
        multiAz: Boolean(db.MultiAZ),
        replicaOf: db.ReadReplicaSourceDBInstanceIdentifier ?? null,
        endpoint: db.Endpoint?.Address ?? null,
      };
    },
  };
}

export type AwsActivities = ReturnType<typeof createAwsActivities>;
