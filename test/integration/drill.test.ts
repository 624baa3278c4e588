/**
 * The quarterly DR drill of `shop` on the real local stack, driven through drctl as an
 * operator would: an isolated drill (production untouched, everything torn down) and a
 * switchover drill (failover + failback, both approved from the CLI), each ending with a
 * stored report whose HTML carries the timeline and the RTO/RPO trend charts.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type DrillReport, statusQuery } from '../../contract';
import { ensureRecentBackup } from '../helpers/backups';
import { readEstate } from '../helpers/estate';
import { drctlOn, drillChildAtGate } from '../helpers/drive';
import { buildAdapters, sandbox, sql, temporal, type TemporalHarness } from '../helpers/stack';

jest.setTimeout(240_000);

describe('DR drill of shop through drctl', () => {
  const loaded = sandbox();
  const adapters = buildAdapters(loaded);
  let t: TemporalHarness;
  let original: Awaited<ReturnType<typeof readEstate>>;
  const dir = mkdtempSync(path.join(tmpdir(), 'drbook-drill-'));

  const drctl = (...args: string[]) => drctlOn(t, ...args);

  const waitForGate = (runbook: string, step: string) => drillChildAtGate(t, 'shop', runbook, step, 90_000);

  beforeAll(async () => {
    t = await temporal(loaded);
    await ensureRecentBackup(t, adapters.activities, 'shop'); // a drill starts from a ready estate
    original = await readEstate(loaded, adapters);
    expect(original.primary.readOnly).toBe(false);
    expect(original.replica.replicating).toBe(true);
  });
  afterEach(() => t.terminate(['drill-shop', 'failover-shop', 'failback-shop']));
  afterAll(async () => {
    await t.close();
    await adapters.close();
  });

  test('clear errors for unknown services, runs, approvers and steps', async () => {
    expect(await drctl('drill', 'nope', '--scope', 'isolated')).toMatchObject({
      code: 1,
      err: expect.stringMatching(/unknown service "nope"; the inventory has: .*shop/),
    });
    expect(await drctl('status', 'drill-no-such-run')).toMatchObject({
      code: 1,
      err: expect.stringMatching(/no run "drill-no-such-run"/),
    });
    expect(await drctl('approve', 'drill-shop', '--step', 'promote', '--as', 'mallory')).toMatchObject({
      code: 1,
      err: expect.stringMatching(/"mallory" is not an approver in the inventory/),
    });
    expect((await drctl('drill', 'shop', '--scope', 'sideways')).code).not.toBe(0);
  });

  test(
    'isolated drill: the DR copy comes up and takes writes, ' + 'production is untouched, everything is torn down',
    async () => {
      const report = await t.withWorkers(adapters.activities, async () => {
        const started = await drctl('drill', 'shop', '--scope', 'isolated', '--reason', 'isolated drill test');
        expect(started).toMatchObject({ code: 0, out: expect.stringMatching(/started drill drill-shop/) });
        return (await t.client.workflow.getHandle('drill-shop').result()) as DrillReport;
      });
      expect(report.findings.filter((f) => f.severity === 'critical')).toEqual([]);
      expect(report.outcome).toBe('passed');
      expect(report.steps.map((s) => s.name)).toEqual([
        'readiness',
        'start-dr-compute',
        'copy-dr-data',
        'verify-dr-copy',
        'production-untouched',
        'drop-dr-copy',
        'resume-replica',
        'stop-dr-compute',
      ]);
      expect(report.measured.rtoSeconds).toBeGreaterThan(0);
      expect(report.measured.rpoSeconds).toBeLessThanOrEqual(report.targets.rpoSeconds);
      expect(report.links?.html).toMatch(/shop\/reports\/drill\/\d{8}T\d{6}Z\.html$/);

      // Production never noticed: same topology, VIP, DNS; DR compute back to standby; no scratch left.
      const after = await readEstate(loaded, adapters);
      expect({
        ...after,
        primary: { ...after.primary, ordersChecksum: '' },
        replica: { ...after.replica, ordersChecksum: '' },
      }).toEqual({
        ...original,
        primary: { ...original.primary, ordersChecksum: '' },
        replica: { ...original.replica, ordersChecksum: '' },
      });
      const scratch = await sql(loaded, 'db-restore-scratch');
      try {
        const [rows] = await scratch.query<import('mysql2').RowDataPacket[]>("SHOW DATABASES LIKE 'drill\\_%'");
        expect(rows).toEqual([]);
      } finally {
        await scratch.end();
      }

      const html = path.join(dir, 'isolated.html');
      expect(await drctl('report', 'drill-shop', '--html', html)).toMatchObject({ code: 0 });
      const page = readFileSync(html, 'utf8');
      expect(page).toMatch(/<figure id="timeline"><svg/);
      expect(page).toMatch(/<figure id="trend"><svg/);
      expect(page).not.toMatch(/<script/);
    },
  );

  test(
    'switchover drill: failover and failback approved from drctl, ' +
      'zero data loss, report with trend, topology restored',
    async () => {
      const report = await t.withWorkers(adapters.activities, async () => {
        expect((await drctl('drill', 'shop', '--scope', 'switchover')).code).toBe(0);

        await waitForGate('failover', 'promote');
        const live = await drctl('status', 'drill-shop');
        expect(live.out).toMatch(/WAITING for approval of "promote"/);
        expect(live.out).toMatch(/drctl approve failover-shop --step promote --as <name>/);
        expect(await drctl('approve', 'drill-shop', '--step', 'fence', '--as', 'alice')).toMatchObject({
          code: 1,
          err: expect.stringMatching(/waits for approval of step "promote", not "fence"/),
        });
        expect(
          await drctl('approve', 'drill-shop', '--step', 'promote', '--as', 'alice', '--comment', 'drill go'),
        ).toMatchObject({
          code: 0,
          out: expect.stringMatching(/approved promote of failover-shop as alice: 1 more approver\(s\) needed/),
        });
        // A drill switchover fences, promotes and moves DNS on production: one approver does not open the gate.
        const held = await t.client.workflow.getHandle('failover-shop').query(statusQuery);
        expect(held.pendingApproval).toMatchObject({ step: 'promote', needed: 1 });
        expect(held.steps.map((s) => s.name)).not.toContain('fence');
        expect(await drctl('approve', 'drill-shop', '--step', 'promote', '--as', 'bob')).toMatchObject({
          code: 0,
          out: expect.stringMatching(/approved promote of failover-shop as bob: the run continues/),
        });

        await waitForGate('failback', 'switch-back');
        const approved = await drctl('approve', 'drill-shop', '--step', 'switch-back', '--as', 'bob', '--json');
        expect(approved.code).toBe(0);
        expect(JSON.parse(approved.out)).toMatchObject({ workflowId: 'failback-shop', accepted: true, stillNeeded: 1 });
        const second = await drctl('approve', 'drill-shop', '--step', 'switch-back', '--as', 'carol', '--json');
        expect(JSON.parse(second.out)).toMatchObject({ workflowId: 'failback-shop', accepted: true, stillNeeded: 0 });
        return (await t.client.workflow.getHandle('drill-shop').result()) as DrillReport;
      });
      expect(report.findings.filter((f) => f.severity === 'critical')).toEqual([]);
      expect(report.outcome).toBe('passed');
      expect(report.measured.rpoSeconds).toBe(0);
      expect(report.rtoMet).toBe(true);
      expect(report.approvals.map((a) => [a.runbook, a.step, a.approver])).toEqual([
        ['failover', 'promote', 'alice'],
        ['failover', 'promote', 'bob'],
        ['failback', 'switch-back', 'bob'],
        ['failback', 'switch-back', 'carol'],
      ]);
      expect(new Set(report.steps.map((s) => s.runbook))).toEqual(new Set(['drill', 'failover', 'failback']));
      expect(report.trend.length).toBeGreaterThanOrEqual(2); // the isolated drill above is in the trend
      expect(report.trend.at(-1)!.id).toBe(report.id);

      const restored = await readEstate(loaded, adapters);
      expect(restored.primary).toMatchObject({ readOnly: false });
      expect(restored.replica).toMatchObject({ readOnly: true, replicating: true });
      expect(restored.vip).toEqual(original.vip);
      expect(restored.dns).toEqual(original.dns);
      expect(restored.drInstances).toEqual(original.drInstances);

      const runs = await drctl('runs', '--service', 'shop', '--runbook', 'drill', '--json');
      const rows = JSON.parse(runs.out) as { workflowId: string; outcome: string; rtoSeconds: number }[];
      expect(rows[0]).toMatchObject({
        workflowId: 'drill-shop',
        outcome: 'passed',
        rtoSeconds: report.measured.rtoSeconds,
      });

      const md = await drctl('report', 'drill-shop', '--md');
      expect(md.out).toMatch(/# DR drill \(switchover\) of shop: PASSED/);
      expect(md.out).toMatch(/\| failover \| promote \| alice \|/);
    },
  );
});
