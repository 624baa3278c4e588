/** The AWS adapter against the AWS API emulator (moto server) seeded with the sandbox estate. */
import { randomUUID } from 'node:crypto';
import { CreateVpcCommand, DeleteVpcCommand } from '@aws-sdk/client-ec2';
import {
  ChangeResourceRecordSetsCommand,
  CreateHostedZoneCommand,
  DeleteHostedZoneCommand,
  ListResourceRecordSetsCommand,
} from '@aws-sdk/client-route-53';
import { ApplicationFailure } from '@temporalio/common';
import { AwsClients, awsConnectionFromInventory } from '../../activities/aws/clients';
import { buildAdapters, failureType as type, sandbox } from '../helpers/stack';

describe('AWS adapter (moto)', () => {
  const loaded = sandbox();
  const { activities, close } = buildAdapters(loaded);
  afterAll(close);
  const shop = loaded.inventory.services.find((s) => s.name === 'shop')!;

  test('reads ELB target health', async () => {
    const h = await activities.readTargetHealth({ region: 'us-east-1', targetGroup: shop.health.elbTargetGroup!.name });
    expect(h.total).toBeGreaterThanOrEqual(2);
    expect(h.healthy).toBe(h.total);
    expect(h.targets.every((t) => t.id.startsWith('i-'))).toBe(true);
  });

  test('finds the stopped DR instances by tag, in the DR region only', async () => {
    const dr = await activities.findInstancesByTags({ region: 'us-west-2', tags: shop.drCompute!.tags });
    expect(dr.length).toBe(2);
    expect(dr.every((i) => i.tags.Environment === 'DR' && i.tags.Service === 'shop')).toBe(true);
    const inPrimary = await activities.findInstancesByTags({ region: 'us-east-1', tags: shop.drCompute!.tags });
    expect(inPrimary).toEqual([]);
  });

  test('reads the DNS record and the RDS DR replica', async () => {
    const rec = await activities.readDnsRecord({ zone: shop.dns!.hostedZone, name: shop.dns!.record, type: 'CNAME' });
    expect(rec).toMatchObject({ name: 'db.shop.sandbox.internal.', type: 'CNAME' });
    expect(rec!.values).toHaveLength(1);
    const replica = await activities.describeRdsInstance({ region: 'us-west-2', instance: 'shop-db-dr' });
    expect(replica.replicaOf).toContain('shop-db');
  });

  test('a missing resource fails fast, non-retryable, naming the resource', async () => {
    const err = await activities
      .readTargetHealth({ region: 'us-east-1', targetGroup: 'no-such-tg' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(type(err)).toBe('ResourceNotFound');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as Error).message).toContain('ELB target group no-such-tg (us-east-1)');
    const zone = await activities
      .readDnsRecord({ zone: 'nowhere.internal', name: 'x.nowhere.internal', type: 'A' })
      .catch((e: unknown) => e);
    expect(type(zone)).toBe('ResourceNotFound');
  });
});

/**
 * Split-horizon DNS: a public and a private hosted zone with one name, each holding the service's record. A name
 * alone is ambiguous and refused (taking the first zone Route 53 lists could switch the wrong one); the
 * inventory's zone id picks one, and is checked against the name.
 */
describe('Route 53: two hosted zones of one name', () => {
  const loaded = sandbox();
  const { activities, close } = buildAdapters(loaded);
  const clients = new AwsClients(awsConnectionFromInventory(loaded.inventory, loaded.baseDir));
  const r53 = clients.route53();
  const zone = `split-${randomUUID().slice(0, 8)}.internal`;
  const record = `db.${zone}`;
  const zones: Record<'public' | 'private', string> = { public: '', private: '' };
  let vpcId = '';

  const upsert = (zoneId: string, value: string) =>
    r53.send(
      new ChangeResourceRecordSetsCommand({
        HostedZoneId: zoneId,
        ChangeBatch: {
          Changes: [
            {
              Action: 'UPSERT',
              ResourceRecordSet: { Name: record, Type: 'CNAME', TTL: 60, ResourceRecords: [{ Value: value }] },
            },
          ],
        },
      }),
    );
  const valueIn = async (zoneId: string) => {
    const out = await r53.send(new ListResourceRecordSetsCommand({ HostedZoneId: zoneId }));
    return out.ResourceRecordSets?.find((r) => r.Name === `${record}.` && r.Type === 'CNAME')?.ResourceRecords?.[0]
      ?.Value;
  };

  beforeAll(async () => {
    const vpc = await clients.ec2('us-east-1').send(new CreateVpcCommand({ CidrBlock: '10.214.0.0/16' }));
    vpcId = vpc.Vpc!.VpcId!;
    const pub = await r53.send(new CreateHostedZoneCommand({ Name: zone, CallerReference: `${zone}-public` }));
    const priv = await r53.send(
      new CreateHostedZoneCommand({
        Name: zone,
        CallerReference: `${zone}-private`,
        HostedZoneConfig: { PrivateZone: true },
        VPC: { VPCRegion: 'us-east-1', VPCId: vpcId },
      }),
    );
    zones.public = pub.HostedZone!.Id!;
    zones.private = priv.HostedZone!.Id!;
    expect(zones.public).not.toBe(zones.private);
    await upsert(zones.public, 'db-public.example.com');
    await upsert(zones.private, 'db-private.internal');
  });

  afterAll(async () => {
    for (const id of Object.values(zones).filter(Boolean)) {
      const value = await valueIn(id).catch(() => undefined);
      if (value)
        await r53.send(
          new ChangeResourceRecordSetsCommand({
            HostedZoneId: id,
            ChangeBatch: {
              Changes: [
                {
                  Action: 'DELETE',
                  ResourceRecordSet: { Name: record, Type: 'CNAME', TTL: 60, ResourceRecords: [{ Value: value }] },
                },
              ],
            },
          }),
        );
      await r53.send(new DeleteHostedZoneCommand({ Id: id }));
    }
    if (vpcId) await clients.ec2('us-east-1').send(new DeleteVpcCommand({ VpcId: vpcId }));
    clients.destroy();
    await close();
  });

  test('a zone named only: refused as ambiguous, naming both zones and the setting; nothing switched', async () => {
    for (const call of [
      () => activities.readDnsRecord({ zone, name: record, type: 'CNAME' }),
      () => activities.switchDnsRecord({ zone, name: record, type: 'CNAME', ttl: 60, value: 'db-dr.example.com' }),
    ]) {
      const err = await call().catch((e: unknown) => e);
      expect(type(err)).toBe('NotConfigured');
      expect((err as ApplicationFailure).nonRetryable).toBe(true);
      const message = (err as Error).message;
      expect(message).toContain(`2 hosted zones named ${zone}.`);
      expect(message).toContain('set dns.hostedZoneId');
      for (const id of Object.values(zones)) expect(message).toContain(id.replace('/hostedzone/', ''));
    }
    expect(await valueIn(zones.public)).toBe('db-public.example.com');
    expect(await valueIn(zones.private)).toBe('db-private.internal');
  });

  test('with the zone id: that zone is read and switched, the other one untouched', async () => {
    const bare = zones.private.replace('/hostedzone/', '');
    const read = await activities.readDnsRecord({ zone, zoneId: bare, name: record, type: 'CNAME' });
    expect(read).toMatchObject({ values: ['db-private.internal'] });
    const switched = await activities.switchDnsRecord({
      zone,
      zoneId: zones.private,
      name: record,
      type: 'CNAME',
      ttl: 60,
      value: 'db-private-dr.internal',
    });
    expect(switched).toMatchObject({ changed: true, previous: ['db-private.internal'] });
    expect(await valueIn(zones.private)).toBe('db-private-dr.internal');
    expect(await valueIn(zones.public)).toBe('db-public.example.com');
  });

  test('a zone id whose zone has another name is refused, naming both; an unknown id is ResourceNotFound', async () => {
    const shop = loaded.inventory.services.find((s) => s.name === 'shop')!;
    const err = await activities
      .readDnsRecord({ zone: shop.dns!.hostedZone, zoneId: zones.public, name: shop.dns!.record, type: 'CNAME' })
      .catch((e: unknown) => e);
    expect(type(err)).toBe('NotConfigured');
    expect((err as Error).message).toContain(`is ${zone}., not ${shop.dns!.hostedZone}.`);
    const missing = await activities
      .readDnsRecord({ zone, zoneId: 'Z0000000000NOSUCHZONE', name: record, type: 'CNAME' })
      .catch((e: unknown) => e);
    expect(type(missing)).toBe('ResourceNotFound');
  });
});
