/**
 * The live page (current details, as the Web UI reads it through the metadata query) of the runs that have no
 * gate: readiness, the monitor, the binlog archive, the lock, the live roles and the launcher, with stubbed activities
 * on the time-skipping server. The backups' pages are read on the real stack in test/integration/backup-alerts.test.ts.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { binlogArchive, launchRunbook, monitor, readiness, serviceLock, serviceRoles } from '../../workflows';
import { drTaskQueue, monitorStateQuery, type MonitorState, releaseLockSignal } from '../../contract';
import { workflowBundle } from '../helpers/stack';
import { plan, stubs, timeSkippingEnv } from '../helpers/stubs';

jest.setTimeout(60_000);

async function pageOf(handle: WorkflowHandle): Promise<string> {
  const meta = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
  return meta.currentDetails ?? '';
}

/** The checks this test is not about fail at once (an unregistered activity would be retried). */
const notHere = async () => {
  throw ApplicationFailure.nonRetryable('not part of this test', 'NotConfigured');
};

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await timeSkippingEnv();
});
afterAll(async () => {
  await env?.teardown();
});

async function withWorkers<T>(activities: object, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = `unit-${Math.random().toString(36).slice(2)}`;
  const bundle = await workflowBundle();
  const workers = await Promise.all(
    [taskQueue, drTaskQueue(taskQueue, 'us-west-2')].map((q) =>
      Worker.create({ connection: env.nativeConnection, taskQueue: q, workflowBundle: bundle, activities }),
    ),
  );
  return workers[0].runUntil(() => workers[1].runUntil(() => fn(taskQueue)));
}

test(
  'readiness: the check running now, ' + 'then each check with what it found, and NOT READY naming the failing',
  async () => {
    const s = stubs({ primaryReachable: true, heartbeatLagSeconds: 0.5 });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const activities = {
      ...Object.fromEntries(
        [
          'describeRdsInstance',
          'findInstancesByTags',
          'pickNewestVerifiedBackup',
          'readTargetHealth',
          'runRemoteCommand',
        ].map((n) => [n, notHere]),
      ),
      ...s.activities,
      // The first check holds until the test has read the page mid-run.
      discoverTopology: async (input: { service: string }) => {
        await held;
        return s.activities.discoverTopology(input);
      },
    };
    const { running, done } = await withWorkers(activities, async (taskQueue) => {
      const handle = await env.client.workflow.start(readiness, {
        taskQueue,
        workflowId: `readiness-shop-${taskQueue}`,
        args: [{ service: 'shop' }],
      });
      let page = '';
      for (let i = 0; i < 200 && !page.includes('▶ running | topology'); i++) {
        page = await pageOf(handle).catch(() => '');
        await new Promise((r) => setTimeout(r, 50));
      }
      release();
      await handle.result();
      return { running: page, done: await pageOf(handle) };
    });
    expect(running).toMatch(/^## readiness shop: checking \(0 done\)/);
    expect(running).toContain('▶ running | topology');
    expect(running).toContain('**Tier:** critical: RTO');

    expect(done).toMatch(/^## readiness shop: NOT READY \(\d+ failing\)/);
    expect(done).toMatch(/✔ succeeded \| replica-lag-within-rpo \|.*heartbeat 0\.5 s behind/);
    expect(done).toMatch(/✖ failed \| dr-instances-present \|.*not part of this test/);
    expect(done).toContain('### Problems');
    expect(done).toMatch(/- ✖ dr-instances-present: .*not part of this test/);
    expect(done).toContain('`drctl readiness shop`');
    expect(done).not.toContain('▶ running');
  },
);

test('monitor: healthy, then UNHEALTHY with the failed check, then the incident and its failover', async () => {
  const script = [true, true, false, false];
  let checks = 0;
  const s = stubs({
    primaryReachable: false,
    heartbeatLagSeconds: 1,
    service: {
      health: {
        ...plan().service.health,
        httpUrl: 'http://shop.invalid/health',
        interval: 10,
        failuresBeforeIncident: 3,
        cooldownAfterFailover: 3600,
      },
    },
  });
  const activities = {
    ...s.activities,
    checkHttpHealth: async ({ url }: { url: string }) => {
      const ok = script[checks++] ?? false;
      return { url, ok, status: ok ? 200 : 503, at: Date.now(), detail: ok ? 'ok' : 'database read-only' };
    },
  };
  const pages = await withWorkers(activities, async (taskQueue) => {
    const handle = await env.client.workflow.start(monitor, {
      taskQueue,
      workflowId: 'monitor-shop',
      args: [{ service: 'shop' }],
    });
    try {
      // Workflow time moves in 5 s steps until the monitor's own state shows the checks wanted.
      const when = async (ok: (st: MonitorState) => boolean) => {
        for (;;) {
          const st = checks ? await handle.query(monitorStateQuery).catch(() => null) : null;
          if (st && ok(st)) return pageOf(handle);
          await env.sleep('5s');
        }
      };
      const healthy = await when((st) => checks >= 2 && st.lastHealthyAt !== null && st.consecutiveFailures === 0);
      const unhealthy = await when((st) => st.consecutiveFailures === 2);
      await when((st) => st.incidents.length === 1);
      const incident = await pageOf(handle);
      return { healthy, unhealthy, incident };
    } finally {
      await handle.terminate('test over').catch(() => undefined);
      await env.client.workflow
        .getHandle('failover-shop')
        .terminate('test over')
        .catch(() => undefined);
    }
  });
  expect(pages.healthy).toMatch(/^## monitor shop: healthy since \d{4}-/);
  expect(pages.healthy).toContain('**Watching:** http://shop.invalid/health');
  expect(pages.healthy).toContain('after 3 failed checks in a row start `failover-shop`');
  expect(pages.healthy).toContain('(none yet)');

  expect(pages.unhealthy).toMatch(/^## monitor shop: UNHEALTHY since \S+ \(2\/3 checks\)/);
  expect(pages.unhealthy).toMatch(
    /\*\*Last failed check:\*\* \S+: http:\/\/shop\.invalid\/health: 503 database read-only/,
  );

  expect(pages.incident).toMatch(/✔ succeeded \| incident → failover-shop \|.*failover started: http:\/\/shop/);
  expect(pages.incident).toMatch(/\*\*Cooldown until:\*\* \d{4}-/);
});

test('binlog archive: each service as it goes, the failed one under Problems, FAILED naming it', async () => {
  const s = stubs({ primaryReachable: true, heartbeatLagSeconds: 0 });
  const activities = {
    ...s.activities,
    listBackedUpServices: async () => ['shop', 'wiki'],
    archiveBinlogs: async ({ service }: { service: string }) => {
      if (service === 'wiki')
        throw ApplicationFailure.nonRetryable('db-scratch refused: read-only', 'SourceNotWritable');
      return {
        service,
        server: 'db-primary',
        copied: ['binlog.000007'],
        newest: 'binlog.000007',
        newestClosedAt: null,
      };
    },
  };
  const page = await withWorkers(activities, async (taskQueue) => {
    const handle = await env.client.workflow.start(binlogArchive, {
      taskQueue,
      workflowId: `binlogs-${taskQueue}`,
      args: [{ concurrency: 1 }],
    });
    await handle.result().catch(() => undefined);
    return pageOf(handle);
  });
  expect(page).toMatch(/^## binlogArchive \*: FAILED for wiki/);
  expect(page).toMatch(/✔ succeeded \| shop \|.*db-primary: 1 copied \(binlog\.000007\)/);
  expect(page).toMatch(/✖ failed \| wiki \|.*db-scratch refused: read-only/);
  expect(page).toMatch(/- ✖ wiki: .*db-scratch refused: read-only \[BackupFailed\]/);
});

test('a lock started by hand says how to release it, then who released it', async () => {
  // wiki's lock, not shop's: the monitor case's failover-shop held lock-shop, and the server ends that child only
  // after the test terminated its parent (asynchronously), so a second lock-shop here could find it still running.
  const page = await withWorkers({}, async (taskQueue) => {
    const handle = await env.client.workflow.start(serviceLock, {
      taskQueue,
      workflowId: 'lock-wiki',
      args: [{ service: 'wiki' }],
    });
    let held = '';
    for (let i = 0; i < 200 && !held.includes('held by'); i++) held = await pageOf(handle).catch(() => '');
    await handle.signal(releaseLockSignal, { by: 'alice' });
    await handle.result();
    return { held, released: await pageOf(handle) };
  });
  expect(page.held).toMatch(/^## serviceLock wiki: held by an operator \(started by hand\)/);
  expect(page.held).toContain('signal `release`, input `{"by": "<your name>"}`');
  expect(page.released).toMatch(/^## serviceLock wiki: released by alice/);
});

test("the live roles and the launcher's outcome on their pages", async () => {
  const s = stubs({ primaryReachable: true, heartbeatLagSeconds: 0, topology: 'split' });
  const pages = await withWorkers(s.activities, async (taskQueue) => {
    const roles = await env.client.workflow.start(serviceRoles, {
      taskQueue,
      workflowId: `roles-shop-${taskQueue}`,
      args: [{ service: 'shop' }],
    });
    await roles.result();
    const launch = await env.client.workflow.start(launchRunbook, {
      taskQueue,
      workflowId: `launch-drill-shop-${taskQueue}`,
      args: [{ runbook: 'drill', service: 'shop', input: { service: 'shop', scope: 'isolated', reason: 'page' } }],
    });
    await launch.result();
    await env.client.workflow
      .getHandle('drill-shop')
      .terminate('test over')
      .catch(() => undefined);
    return { roles: await pageOf(roles), launch: await pageOf(launch) };
  });
  expect(pages.roles).toMatch(/^## serviceRoles shop: split: db-primary, db-replica writable/);
  expect(pages.roles).toMatch(/- \*\*db-replica:\*\* read_only=OFF/);
  expect(pages.roles).toContain('`drctl resolve shop`');
  expect(pages.launch).toMatch(/^## launch drill shop: started: started drill-shop \(run /);
});
