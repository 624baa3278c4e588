/**
 * The RDS DR replica's promotion (once, whatever retries) and its re-creation after failback, against the AWS
 * API emulator (moto, answering PromoteReadReplica as AWS does: scripts/moto-server.py) through a small recording
 * proxy in front of it. The proxy counts PromoteReadReplica calls
 * and can answer one with InvalidDBInstanceState, as AWS does while the instance is busy (a promotion already
 * under way); moto itself never refuses a promotion.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import {
  AddTagsToResourceCommand,
  DescribeDBInstancesCommand,
  DescribeDBSnapshotsCommand,
  PromoteReadReplicaCommand,
} from '@aws-sdk/client-rds';
import { AwsClients, awsConnectionFromInventory } from '../../activities/aws/clients';
import {
  createRdsReplicaActivities,
  PROMOTE_ACCEPTED_TAG,
  PROMOTE_REQUESTED_TAG,
} from '../../activities/aws/rds-replica';
import type { LoadedInventory } from '../../config/load';
import { buildAdapters, failureType, sandbox } from '../helpers/stack';

/** Forwards to moto; records each call's Action; refuses the next `refusePromotions` PromoteReadReplica calls. */
async function recordingProxy(target: string) {
  const calls: { action: string; at: number; refused: boolean }[] = [];
  const state = { refusePromotions: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const action = new URLSearchParams(body.toString('utf8')).get('Action') ?? '';
      const refused = action === 'PromoteReadReplica' && state.refusePromotions > 0;
      calls.push({ action, at: Date.now(), refused });
      if (refused) {
        state.refusePromotions -= 1;
        res.writeHead(400, { 'content-type': 'text/xml' });
        res.end(
          '<ErrorResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><Error><Type>Sender</Type>' +
            '<Code>InvalidDBInstanceState</Code><Message>DB Instance is not in available state.</Message>' +
            '</Error><RequestId>rds-replica-test</RequestId></ErrorResponse>',
        );
        return;
      }
      const up = http.request(new URL(req.url ?? '/', target), { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', (err) => res.destroy(err));
      up.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    state,
    promotions: () => calls.filter((c) => c.action === 'PromoteReadReplica'),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('RDS DR replica: promoted once whatever the retries, re-created after failback (moto)', () => {
  const loaded = sandbox();
  const shop = loaded.inventory.services.find((s) => s.name === 'shop')!;
  const rds = shop.rds!;
  const dr = rds.drReplica!;
  const target = { region: dr.region, instance: dr.instance };
  const source = { region: rds.region, instance: rds.instance };
  const direct = new AwsClients(awsConnectionFromInventory(loaded.inventory, loaded.baseDir));
  let proxy: Awaited<ReturnType<typeof recordingProxy>>;
  let viaProxy: LoadedInventory;
  let adapters: ReturnType<typeof buildAdapters>;

  const describeDr = async () =>
    (await direct.rds(dr.region).send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: dr.instance })))
      .DBInstances![0];
  const tagsOf = async () =>
    Object.fromEntries(((await describeDr()).TagList ?? []).map((tag) => [tag.Key, tag.Value] as const));
  const tagDr = async (key: string, value: string) =>
    direct.rds(dr.region).send(
      new AddTagsToResourceCommand({
        ResourceName: (await describeDr()).DBInstanceArn!,
        Tags: [{ Key: key, Value: value }],
      }),
    );

  beforeAll(async () => {
    proxy = await recordingProxy(loaded.inventory.aws.endpoint!);
    viaProxy = { ...loaded, inventory: { ...loaded.inventory, aws: { ...loaded.inventory.aws, endpoint: proxy.url } } };
    adapters = buildAdapters(viaProxy);
  });
  beforeEach(async () => {
    // Each case starts from a fresh read replica of the primary (what failback leaves).
    await adapters.activities.recreateRdsReplica({ ...target, source });
    proxy.calls.length = 0;
    proxy.state.refusePromotions = 0;
  });
  afterAll(async () => {
    try {
      await adapters?.activities.recreateRdsReplica({ ...target, source });
    } finally {
      await adapters?.close();
      await proxy?.close();
      direct.destroy();
    }
  });

  test('promotes with one PromoteReadReplica; a retry finds the request made and does not call again', async () => {
    const first = await adapters.activities.promoteRdsReplica(target);
    expect(first).toMatchObject({ instance: dr.instance, alreadyPromoted: false, requests: 1 });
    const tags = await tagsOf();
    expect(tags[PROMOTE_REQUESTED_TAG]).toMatch(/^\d{4}-\d\d-\d\dT\S+Z /);
    expect(tags[PROMOTE_ACCEPTED_TAG]).toBe(tags[PROMOTE_REQUESTED_TAG]);
    // The tag was written before the call: the request is recorded even when the worker dies right after it.
    const order = proxy.calls.map((c) => c.action).filter((a) => a !== 'DescribeDBInstances');
    expect(order).toEqual(['AddTagsToResource', 'PromoteReadReplica', 'AddTagsToResource']);

    // A retry (the worker was killed while the first attempt waited for "available"): no longer a replica.
    const retry = await adapters.activities.promoteRdsReplica(target);
    expect(retry).toMatchObject({ alreadyPromoted: true, requests: 0 });
    expect(proxy.promotions()).toHaveLength(1);
  });

  test('an attempt that finds a fresh request waits for it instead of calling PromoteReadReplica', async () => {
    // As on AWS, where a promotion takes minutes: the emulator's "promotes before answering" off.
    const connection = awsConnectionFromInventory(viaProxy.inventory, viaProxy.baseDir);
    const emulator = { ...connection.emulator!, rdsPromotesBeforeAnswering: false };
    const clients = new AwsClients({ ...connection, emulator });
    try {
      // What a killed attempt leaves after its tag and its call, before it could record the acceptance.
      await tagDr(PROMOTE_REQUESTED_TAG, `${new Date().toISOString()} failover-shop/earlier-attempt`);
      let settled = false;
      const retry = createRdsReplicaActivities(clients)
        .promoteRdsReplica(target)
        .finally(() => (settled = true));
      await new Promise((resolve) => setTimeout(resolve, 4000));
      expect(settled).toBe(false);
      expect(proxy.promotions()).toHaveLength(0);
      // The earlier attempt's promotion goes through (straight to moto, not through the proxy).
      await direct.rds(dr.region).send(new PromoteReadReplicaCommand({ DBInstanceIdentifier: dr.instance }));
      await tagDr(PROMOTE_ACCEPTED_TAG, `${new Date().toISOString()} failover-shop/earlier-attempt`);
      expect(await retry).toMatchObject({ alreadyPromoted: false, requests: 0 });
      expect(proxy.promotions()).toHaveLength(0);
    } finally {
      clients.destroy();
    }
  });

  test(
    'on the emulator, which promotes before it answers, ' + 'a request on a replica was lost: made again at once',
    async () => {
      expect(loaded.inventory.aws.emulator?.rdsPromotesBeforeAnswering).toBe(true);
      // What an attempt killed between its tag and its call leaves: a request, no promotion.
      await tagDr(PROMOTE_REQUESTED_TAG, `${new Date().toISOString()} failover-shop/killed-before-call`);
      const started = Date.now();
      expect(await adapters.activities.promoteRdsReplica(target)).toMatchObject({
        alreadyPromoted: false,
        requests: 1,
      });
      expect(Date.now() - started).toBeLessThan(30_000); // not the 2 minutes a request on AWS is given
      expect(proxy.promotions()).toHaveLength(1);
      // And a retry after that finds it promoted: still the one promotion.
      expect(await adapters.activities.promoteRdsReplica(target)).toMatchObject({ alreadyPromoted: true, requests: 0 });
      expect(proxy.promotions()).toHaveLength(1);
    },
  );

  test(
    'InvalidDBInstanceState from PromoteReadReplica is "in progress": ' + 'waited on, asked again only once stale',
    async () => {
      const clients = new AwsClients(awsConnectionFromInventory(viaProxy.inventory, viaProxy.baseDir));
      try {
        const rdsActs = createRdsReplicaActivities(clients, {
          requestLostAfterMs: 3000,
          minPollMs: 200,
          maxPollMs: 500,
        });
        proxy.state.refusePromotions = 1;
        const result = await rdsActs.promoteRdsReplica(target);
        expect(result).toMatchObject({ alreadyPromoted: false, requests: 2 });
        const [refused, accepted] = proxy.promotions();
        expect(refused.refused).toBe(true);
        expect(accepted.refused).toBe(false);
        // Not a validation failure, and no hammering: the second request only after the first was stale.
        expect(accepted.at - refused.at).toBeGreaterThanOrEqual(3000);
        expect(proxy.promotions()).toHaveLength(2);
      } finally {
        clients.destroy();
      }
    },
  );

  test(
    'an attempt killed after PromoteReadReplica, before it tagged the acceptance: ' + 'the retry calls no more',
    async () => {
      // What the killed attempt left: its request tagged and the promotion made (straight to moto), no acceptance.
      await tagDr(PROMOTE_REQUESTED_TAG, `${new Date().toISOString()} failover-shop/killed-attempt`);
      await direct.rds(dr.region).send(new PromoteReadReplicaCommand({ DBInstanceIdentifier: dr.instance }));
      // The emulator answers as AWS does (scripts/moto-server.py): the promoted instance names no source.
      expect((await describeDr()).ReadReplicaSourceDBInstanceIdentifier).toBeUndefined();
      const clients = new AwsClients(awsConnectionFromInventory(viaProxy.inventory, viaProxy.baseDir));
      try {
        // A request this old counts as lost if the instance still looked like a replica: it must not.
        const rdsActs = createRdsReplicaActivities(clients, { requestLostAfterMs: 0, minPollMs: 200, maxPollMs: 500 });
        expect(await rdsActs.promoteRdsReplica(target)).toMatchObject({ alreadyPromoted: true, requests: 0 });
        expect(proxy.promotions()).toHaveLength(0);
      } finally {
        clients.destroy();
      }
    },
  );

  test(
    'without the emulator setting (AWS semantics): ' + 'promoted once the source is gone; a tag alone is not',
    async () => {
      const connection = awsConnectionFromInventory(viaProxy.inventory, viaProxy.baseDir);
      const clients = new AwsClients({ ...connection, emulator: undefined });
      try {
        const asOnAws = createRdsReplicaActivities(clients, { waitMs: 2000, minPollMs: 200, maxPollMs: 500 });
        // drbook's own acceptance tag on an instance that still replicates proves nothing: it waits, then fails.
        await tagDr(PROMOTE_REQUESTED_TAG, `${new Date().toISOString()} failover-shop/tag-only`);
        await tagDr(PROMOTE_ACCEPTED_TAG, `${new Date().toISOString()} failover-shop/tag-only`);
        const err = await asOnAws.promoteRdsReplica(target).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ApplicationFailure);
        expect(failureType(err)).toBe('RdsWaitTimedOut');
        expect((err as Error).message).toContain(`${dr.instance}: still not available and no longer a replica`);
        expect(proxy.promotions()).toHaveLength(0);

        await adapters.activities.recreateRdsReplica({ ...target, source });
        proxy.calls.length = 0;
        expect(await asOnAws.promoteRdsReplica(target)).toMatchObject({ alreadyPromoted: false, requests: 1 });
        expect(proxy.promotions()).toHaveLength(1);
      } finally {
        clients.destroy();
      }
    },
  );

  test(
    'after a promotion, the DR instance is replaced by a new read replica of the primary, ' +
      'its data in a final snapshot',
    async () => {
      await adapters.activities.promoteRdsReplica(target);
      const primaryArn = (
        await direct.rds(rds.region).send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: rds.instance }))
      ).DBInstances![0].DBInstanceArn!;

      const replaced = await adapters.activities.recreateRdsReplica({ ...target, source });
      expect(replaced).toMatchObject({ instance: dr.instance, recreated: true, replicaOf: primaryArn });
      expect(replaced.finalSnapshot).toMatch(new RegExp(`^${dr.instance}-promoted-\\d{8}t\\d{9}z$`));
      const snapshots = await direct
        .rds(dr.region)
        .send(new DescribeDBSnapshotsCommand({ DBSnapshotIdentifier: replaced.finalSnapshot! }));
      expect(snapshots.DBSnapshots?.[0]?.DBInstanceIdentifier).toBe(dr.instance);
      const now = await describeDr();
      expect(now).toMatchObject({ DBInstanceStatus: 'available', ReadReplicaSourceDBInstanceIdentifier: primaryArn });
      expect(Object.keys(await tagsOf()).filter((k) => k.startsWith('drbook:promote'))).toEqual([]);
      const deletes = proxy.calls.filter((c) => c.action === 'DeleteDBInstance').length;

      // Idempotent: a second run (a retry) finds the replica in place and changes nothing.
      const again = await adapters.activities.recreateRdsReplica({ ...target, source });
      expect(again).toMatchObject({ recreated: false, finalSnapshot: null, replicaOf: primaryArn });
      expect(proxy.calls.filter((c) => c.action === 'DeleteDBInstance')).toHaveLength(deletes);
      expect(proxy.calls.filter((c) => c.action === 'CreateDBInstanceReadReplica')).toHaveLength(1);
    },
  );

  test('a primary that does not exist is refused, naming it, before anything is deleted', async () => {
    await adapters.activities.promoteRdsReplica(target);
    const err = await adapters.activities
      .recreateRdsReplica({ ...target, source: { region: rds.region, instance: 'some-other-db' } })
      .catch((e: unknown) => e);
    expect(failureType(err)).toBe('ResourceNotFound');
    expect((err as Error).message).toContain('some-other-db');
    expect(proxy.calls.filter((c) => c.action === 'DeleteDBInstance')).toHaveLength(0);
  });
});
