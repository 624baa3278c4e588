/**
 * Network faults on runbooks that change the estate. The worker reaches the AWS API (Route 53,
 * SNS) and MariaDB through fault proxies; the servers' own replication keeps its real ports.
 *
 * - catalog (hot) fails over while the AWS API resets connections and back while it is slow:
 *   retries ride both out, DNS moves once each way, nothing is sent twice;
 * - the AWS API goes silent past switch-dns's retry budget: the run fails naming the record and
 *   the timeout, DNS untouched;
 * - shop's replica goes silent at assess: the run fails naming db-replica and the timeout
 *   before anything changed.
 */
import type { WorkflowFailedError, WorkflowHandle } from '@temporalio/client';
import { failover } from '../../workflows';
import { statusQuery } from '../../contract';
import { recordChaos } from '../helpers/chaos';
import { activityRetries, approvedFailback, approvedFailover } from '../helpers/drive';
import { readEstate } from '../helpers/estate';
import { blackhole, delay, pass, proxyEstate, resetNext, type ProxiedEstate } from '../helpers/fault-proxy';
import { buildAdapters, eventually, failureType, sandbox, temporal, type TemporalHarness } from '../helpers/stack';
import { restoreSandboxTopology } from '../helpers/topology';

jest.setTimeout(120_000);

describe('network faults under failover and failback', () => {
  const loaded = sandbox();
  const catalog = loaded.inventory.services.find((s) => s.name === 'catalog')!;
  const appUrl = new URL(loaded.inventory.services.find((s) => s.name === 'shop')!.health.httpUrl!).origin;
  /** Direct (unproxied) adapters: how the test reads and, if it must, repairs the estate. */
  const direct = buildAdapters(loaded);
  let estate: ProxiedEstate;
  let adapters: ReturnType<typeof buildAdapters>;
  let t: TemporalHarness;

  const catalogDns = async () =>
    (await direct.activities.readDnsRecord({
      zone: catalog.dns!.hostedZone,
      name: catalog.dns!.record,
      type: 'CNAME',
    }))!.values;
  /** Webhook notifications (the on-call inbox) sent by one run, and how many of them repeat an idempotency key. */
  async function notificationsOf(handle: WorkflowHandle) {
    const { runId } = await handle.describe();
    const inbox = (await (await fetch(`${appUrl}/notifications`)).json()) as { body: { idempotencyKey?: string } }[];
    const keys = inbox.map((n) => n.body.idempotencyKey ?? '').filter((k) => k.includes(`/${runId}/`));
    return { sent: keys.length, duplicated: keys.length - new Set(keys).size };
  }

  beforeAll(async () => {
    estate = await proxyEstate(loaded, {
      mysql: ['db-primary', 'db-replica'],
      aws: true,
      awsTimeouts: { connectSeconds: 2, idleSeconds: 2 },
    });
    adapters = buildAdapters(estate.loaded);
    t = await temporal(estate.loaded);
    await restoreSandboxTopology(t);
  });
  afterEach(async () => {
    estate.setAll(pass);
    await t.terminate(['failover-catalog', 'failback-catalog', 'failover-shop']);
  });
  afterAll(async () => {
    // Whatever happened above, catalog's record points at its primary side again.
    await direct.activities
      .switchDnsRecord({ ...catalogRecord(), value: catalog.dns!.primaryValue })
      .catch(() => undefined);
    await t?.close();
    await adapters?.close();
    await estate?.close();
    await direct.close();
  });
  const catalogRecord = () => ({
    zone: catalog.dns!.hostedZone,
    name: catalog.dns!.record,
    type: catalog.dns!.type,
    ttl: catalog.dns!.ttl,
  });

  test(
    'catalog fails over while the AWS API resets connections, and back while it is slow: ' + 'DNS moves once each way',
    async () => {
      expect(await catalogDns()).toEqual([catalog.dns!.primaryValue]);
      const aws = estate.proxies.aws;
      const resetsBefore = aws.stats.resets;
      const { report, retries, notes } = await t.withWorkers(adapters.activities, async () => {
        // Three refused connections: the SDK's own retry takes one attempt, the activity's retry the rest.
        const handle = await approvedFailover(
          t,
          { service: 'catalog', mode: 'drill', reason: 'chaos: AWS API resets' },
          { atPromoteGate: () => aws.set(resetNext(3)) },
        );
        const r = await handle.result();
        return {
          report: r,
          retries: await activityRetries(handle, 'switchDnsRecord'),
          notes: await notificationsOf(handle),
        };
      });
      const moved = (await catalogDns()).join(',') === catalog.dns!.drValue;
      recordChaos({
        fault: 'AWS API connection resets during switch-dns (catalog failover)',
        runs: 1,
        survived: report.outcome === 'completed' && moved ? 1 : 0,
        duplicated: notes.duplicated,
      });
      expect(report.outcome).toBe('completed');
      expect(await catalogDns()).toEqual([catalog.dns!.drValue]);
      expect(aws.stats.resets - resetsBefore).toBe(3);
      expect(retries).toBeGreaterThanOrEqual(1);
      expect(report.steps.find((s) => s.name === 'switch-dns')).toMatchObject({ state: 'succeeded' });
      expect(notes).toEqual({ sent: 2, duplicated: 0 }); // failed-over + report, once each

      aws.set(delay(300));
      const back = await t.withWorkers(adapters.activities, () => approvedFailback(t, 'catalog'));
      const home = (await catalogDns()).join(',') === catalog.dns!.primaryValue;
      recordChaos({
        fault: 'AWS API latency 300 ms (catalog failback)',
        runs: 1,
        survived: back.outcome === 'completed' && home ? 1 : 0,
        duplicated: 0,
      });
      expect(back.outcome).toBe('completed');
      expect(await catalogDns()).toEqual([catalog.dns!.primaryValue]);
    },
  );

  test(
    'the AWS API goes silent past switch-dns’s retry budget: ' +
      'the run fails naming the record and the timeout; DNS untouched',
    async () => {
      const started = Date.now();
      const err = await t.withWorkers(adapters.activities, async () => {
        const handle = await approvedFailover(
          t,
          { service: 'catalog', mode: 'drill', reason: 'chaos: AWS API black hole' },
          { atPromoteGate: () => estate.proxies.aws.set(blackhole) },
        );
        await eventually(
          async () =>
            (await handle.query(statusQuery)).steps.some((s) => s.name === 'switch-dns' && s.state === 'failed'),
          90_000,
          'switch-dns to fail',
        );
        // The network heals after the step gave up: the run still fails, and people hear why.
        estate.proxies.aws.set(pass);
        return handle.result().catch((e: unknown) => e as WorkflowFailedError);
      });
      const cause = (err as WorkflowFailedError).cause;
      const named =
        failureType(cause) === 'TimeoutError' &&
        /step switch-dns failed: Route 53 zone sandbox\.internal: TimeoutError: .*timed out/.test(cause?.message ?? '');
      const untouched = (await catalogDns()).join(',') === catalog.dns!.primaryValue;
      recordChaos({
        fault: 'AWS API black-holed past the switch-dns budget (catalog failover)',
        runs: 1,
        survived: named && untouched ? 1 : 0,
        duplicated: 0,
      });
      expect(failureType(cause)).toBe('TimeoutError');
      expect(cause?.message).toMatch(
        /step switch-dns failed: Route 53 zone sandbox\.internal: TimeoutError: .*timed out/,
      );
      expect(await catalogDns()).toEqual([catalog.dns!.primaryValue]);
      expect((Date.now() - started) / 1000).toBeLessThan(100);
    },
  );

  test(
    'shop’s replica goes silent at assess: ' + 'the run fails naming db-replica and the timeout, nothing changed',
    async () => {
      const before = await readEstate(loaded, direct);
      estate.proxies['mysql:db-replica'].set(blackhole);
      const err = await t.withWorkers(adapters.activities, () =>
        t.client.workflow
          .execute(failover, {
            taskQueue: t.taskQueue,
            workflowId: 'failover-shop',
            args: [{ service: 'shop', mode: 'drill', reason: 'chaos: replica black hole' }],
          })
          .catch((e: unknown) => e as WorkflowFailedError),
      );
      estate.proxies['mysql:db-replica'].set(pass);
      const cause = (err as WorkflowFailedError).cause;
      const after = await readEstate(loaded, direct);
      const named = /step assess failed: MySQL server db-replica: (ETIMEDOUT|PROTOCOL_SEQUENCE_TIMEOUT): /.test(
        cause?.message ?? '',
      );
      recordChaos({
        fault: 'db-replica black-holed at assess (shop failover)',
        runs: 1,
        survived: named && JSON.stringify(after) === JSON.stringify(before) ? 1 : 0,
        duplicated: 0,
      });
      expect(cause?.message).toMatch(
        /step assess failed: MySQL server db-replica: (ETIMEDOUT|PROTOCOL_SEQUENCE_TIMEOUT): /,
      );
      expect(after).toEqual(before);
    },
  );
});
