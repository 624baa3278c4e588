/**
 * The whole path: client → Temporal dev server → worker → AWS, MySQL and SSH adapters →
 * the real sandbox components, through the read-only `readiness` workflow.
 */
import { WorkflowFailedError } from '@temporalio/client';
import type { ReadinessReport } from '../../contract';
import { readiness } from '../../workflows';
import { ensureRecentBackup } from '../helpers/backups';
import { buildAdapters, failureType, sandbox, temporal, type TemporalHarness } from '../helpers/stack';

describe('readiness workflow on the local stack', () => {
  const loaded = sandbox();
  const adapters = buildAdapters(loaded);
  let t: TemporalHarness;
  beforeAll(async () => {
    t = await temporal(loaded);
  });
  afterAll(async () => {
    await t.close();
    await adapters.close();
  });

  const run = (input: unknown, id: string) =>
    t.client.workflow.execute(readiness, {
      args: [input as { service: string }],
      taskQueue: t.taskQueue,
      workflowId: `${id}-${t.taskQueue}`,
    });

  test('shop is ready: every check ran against a real component and passed', async () => {
    await ensureRecentBackup(t, adapters.activities, 'shop');
    const report: ReadinessReport = await t.withWorkers(adapters.activities, () =>
      run({ service: 'shop' }, 'readiness-shop'),
    );
    expect(report.checks.map((c) => c.name)).toEqual([
      'topology',
      'primary-targets-healthy',
      'primary-database-reachable',
      'replica-replicating',
      'replica-lag-within-rpo',
      'rds-dr-replica-available',
      'dr-instances-present',
      'dns-record-present',
      'vip-on-primary-host',
      'dr-host-reachable',
      'rds-multi-az',
      'ssh-host-keys-match',
      'verified-backup-recent',
    ]);
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.ready).toBe(true);
    expect(report.expectedRpoSeconds).toBeLessThan(5);
    expect(report.targets).toEqual({ rtoSeconds: 900, rpoSeconds: 300 });
  });

  test("replica-replicating matches the replica's source against the primary's replication address", async () => {
    // An inventory that says replicas reach db-primary on another address than the one db-replica uses.
    const elsewhere = structuredClone(loaded);
    elsewhere.inventory.mysqlServers['db-primary'].replication = { host: '10.99.0.1' };
    const misaddressed = buildAdapters(elsewhere);
    try {
      const report: ReadinessReport = await t.withWorkers(misaddressed.activities, () =>
        run({ service: 'shop' }, 'readiness-shop-misaddressed'),
      );
      const port = loaded.inventory.mysqlServers['db-primary'].port;
      expect(report.checks.find((c) => c.name === 'replica-replicating')).toEqual({
        name: 'replica-replicating',
        ok: false,
        detail: `db-replica replicates from 127.0.0.1:${port}, not from db-primary's replication address`,
      });
      expect(report.ready).toBe(false);
    } finally {
      await misaddressed.close();
    }
  });

  test.each([
    [{ service: 'nope' }, 'UnknownService', /unknown service "nope"; the inventory has: shop/],
    [{ service: 'Shop!' }, 'InvalidInput', /service: a service name from the inventory/],
    [{ service: 'shop', extra: 1 }, 'InvalidInput', /Unrecognized key.*extra/],
  ])('bad input %j fails with %s before any side effect', async (input, type, message) => {
    const err = await t.withWorkers(adapters.activities, () => run(input, 'readiness-bad').catch((e: unknown) => e));
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause;
    expect(failureType(cause)).toBe(type);
    expect(cause?.message).toMatch(message);
    // Only the inventory look-up may have run (and only for a well-formed input).
    const history = await t.client.workflow.getHandle(`readiness-bad-${t.taskQueue}`).fetchHistory();
    const scheduled = history.events!.filter((e) => e.activityTaskScheduledEventAttributes);
    expect(scheduled.map((e) => e.activityTaskScheduledEventAttributes!.activityType!.name)).toEqual(
      type === 'UnknownService' ? ['describeService'] : [],
    );
  });
});
