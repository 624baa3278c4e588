/** The AWS adapter against the AWS API emulator (moto server) seeded with the sandbox estate. */
import { ApplicationFailure } from '@temporalio/common';
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
