/**
 * The run's page in the Web UI (the workflow's current details, read through the SDK's metadata query as
 * the UI reads it) and the activity summaries in its history: stubbed activities, time-skipping server.
 * The browser sees the same in test/e2e/webui.test.ts.
 */
import { defaultPayloadConverter } from '@temporalio/common';
import type { WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { type Service, drTaskQueue } from '../../contract';
import { runMetadata } from '../../cli/run-metadata';
import { failover } from '../../workflows';
import { activitySummary } from '../../workflows/activity-summaries';
import { workflowBundle } from '../helpers/stack';
import { stubs, timeSkippingEnv } from '../helpers/stubs';

jest.setTimeout(60_000);

/** The page as the Web UI gets it: the built-in metadata query's currentDetails. */
async function pageOf(handle: WorkflowHandle): Promise<string> {
  const meta = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
  return meta.currentDetails ?? '';
}

async function eventuallyPage(handle: WorkflowHandle, ok: (page: string) => boolean): Promise<string> {
  let last = '';
  for (let i = 0; i < 200; i++) {
    last = await pageOf(handle).catch(() => '');
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the page never matched; last:\n${last}`);
}

describe('the runbook page and activity summaries (stubbed activities, time-skipping server)', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await timeSkippingEnv();
  });
  afterAll(async () => {
    await env?.teardown();
  });

  test('a failover drill: the gate with the exact signal JSON, approved with it, then the measured RTO', async () => {
    const s = stubs({ primaryReachable: true, heartbeatLagSeconds: 0.5 });
    const taskQueue = `unit-${Math.random().toString(36).slice(2)}`;
    const bundle = await workflowBundle();
    const workers = await Promise.all(
      [taskQueue, drTaskQueue(taskQueue, 'us-west-2')].map((q) =>
        Worker.create({
          connection: env.nativeConnection,
          taskQueue: q,
          workflowBundle: bundle,
          activities: s.activities,
        }),
      ),
    );
    const { gatePage, donePage, history } = await workers[0].runUntil(() =>
      workers[1].runUntil(async () => {
        const handle = await env.client.workflow.start(failover, {
          taskQueue,
          workflowId: 'failover-shop',
          args: [{ service: 'shop', mode: 'drill', reason: 'page test' }],
        });
        try {
          const gatePage = await eventuallyPage(handle, (p) => p.includes('Waiting for approval'));
          // The operator's path: copy the JSON from the page, put a name in, send it as the `approve` signal.
          const json = /```json\n(.+)\n```/.exec(gatePage)?.[1];
          expect(json).toBeDefined();
          // shop is critical: two approvers, each pasting the same JSON with their own name.
          for (const name of ['alice', 'bob'])
            await handle.signal('approve', JSON.parse(json!.replace('<your name>', name)));
          await handle.result();
          return { gatePage, donePage: await pageOf(handle), history: await handle.fetchHistory() };
        } finally {
          await handle.terminate('test over').catch(() => undefined);
        }
      }),
    );

    expect(gatePage).toMatch(/^## failover shop \(drill\): waiting for approval: promote/);
    expect(gatePage).toContain('**Reason:** page test');
    expect(gatePage).toContain('### ⏸ Waiting for approval: `promote`');
    expect(gatePage).toMatch(/\*\*Who may approve:\*\* alice, bob/);
    expect(gatePage).toMatch(/\*\*Deadline:\*\* \d{4}-\d\d-\d\dT/);
    expect(gatePage).toContain('signal name `approve`');
    expect(gatePage).toContain('```json\n{"step":"promote","approver":"<your name>"}\n```');
    expect(gatePage).toContain('drctl approve failover-shop --step promote --as <your name>');
    expect(gatePage).toMatch(/\| ✔ succeeded \| assess \|/);
    expect(gatePage).toContain('`abort`');

    expect(donePage).toMatch(/^## failover shop \(drill\): completed/);
    expect(donePage).toMatch(/\*\*RTO:\*\* measured [\d.]+ s of 900 s target/);
    expect(donePage).toMatch(/\*\*RPO:\*\* measured 0 s/);
    expect(donePage).toMatch(/\| ✔ succeeded \| approve-promote \| .* \| alice \+ bob \|/);
    expect(donePage).not.toContain('Waiting for approval');
    expect(donePage).not.toContain('### Abort');

    // Every activity the failover scheduled carries a summary naming its step and target.
    const summaries = (history.events ?? [])
      .filter((e) => e.activityTaskScheduledEventAttributes)
      .map((e) => ({
        type: e.activityTaskScheduledEventAttributes!.activityType!.name,
        summary: e.userMetadata?.summary ? defaultPayloadConverter.fromPayload<string>(e.userMetadata.summary) : null,
      }));
    expect(summaries.length).toBeGreaterThan(5);
    for (const { type, summary } of summaries) expect(summary).toContain(type!);
    expect(summaries).toContainEqual({ type: 'fencePrimary', summary: 'fence: fencePrimary db-primary' });
    expect(summaries).toContainEqual({ type: 'promoteReplica', summary: 'promote: promoteReplica db-replica' });
    expect(summaries).toContainEqual({ type: 'describeService', summary: 'plan: describeService shop' });
    expect(summaries).toContainEqual({
      type: 'switchDnsRecord',
      summary: 'switch-dns: switchDnsRecord db.shop.sandbox.internal → db-dr.sandbox.internal',
    });
  });

  test('a summary names the step and the target; it stays one line', () => {
    expect(activitySummary('switch-dns', 'switchDnsRecord', { name: 'db.shop', value: 'db-dr' })).toBe(
      'switch-dns: switchDnsRecord db.shop → db-dr',
    );
    expect(activitySummary('move-vip', 'addVip', { host: 'dr-host', address: '10.0.0.9' })).toBe(
      'move-vip: addVip 10.0.0.9 on dr-host',
    );
    expect(activitySummary(null, 'discoverTopology', { service: 'shop' })).toBe('discoverTopology shop');
    expect(
      activitySummary('notify-application', 'callApplicationWebhook', { url: 'https://u:p@app/hook?token=x' }),
    ).toBe('notify-application: callApplicationWebhook https://app/hook');
    expect(activitySummary('x', 'y', { server: 'a'.repeat(300) })).toHaveLength(120);
  });
});

describe('static summary and details of runs started by drctl and schedules', () => {
  test('the summary names runbook, service, mode and reason; the details give the inventory at start', () => {
    const shop = {
      name: 'shop',
      tier: 'critical',
      strategy: 'warm',
      database: { engine: 'mariadb', primary: 'db-primary', replica: 'db-replica' },
      dns: { record: 'db.shop.internal', type: 'CNAME', primaryValue: 'db-a', drValue: 'db-b' },
    } as unknown as Service;
    const m = runMetadata('failover', { service: 'shop', mode: 'real', reason: 'primary  lost\nat 03:00' }, shop);
    expect(m.staticSummary).toBe('failover shop (real): primary lost at 03:00');
    expect(m.staticDetails).toContain('| tier | critical (RTO 900 s, RPO 300 s) |');
    expect(m.staticDetails).toContain('| database | mariadb: primary db-primary, replica db-replica |');
    expect(m.staticDetails).toContain('| dns | db.shop.internal CNAME: db-a / DR db-b |');
    expect(runMetadata('drill', { service: 'shop', scope: 'switchover', reason: 'q1' }).staticSummary).toBe(
      'drill shop (switchover): q1',
    );
    expect(runMetadata('failover', { service: 'shop', mode: 'drill', dryRun: true, reason: 'x'.repeat(300) })).toEqual({
      staticSummary: expect.stringMatching(/^failover shop \(dry run\): x+…$/) as string,
    });
    expect(runMetadata('backup', {}).staticSummary).toBe('backup every service');
  });
});
