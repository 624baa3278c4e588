/**
 * The operator's CLI path end to end, as an SRE runs it on the local stack: a drbook worker
 * process (workers/main.ts, with its Prometheus endpoint) and bin/drctl as child processes.
 * `drctl drill shop --scope switchover` runs a whole drill, the two approvals are given with
 * `drctl approve … --as <name>`, `drctl report --html` writes the report with both charts, and the
 * worker's /metrics then carries drbook's gauges (RTO/RPO, restore test, backup age) for shop.
 * The backup and restore test before and after are started with drctl too.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { readEstate } from '../helpers/estate';
import { drillChildAtGate } from '../helpers/drive';
import { buildAdapters, eventually, ROOT, sandbox, temporal, type TemporalHarness } from '../helpers/stack';

jest.setTimeout(480_000);

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

describe('drctl drill shop --scope switchover, from the command line against a worker process', () => {
  const loaded = sandbox();
  const adapters = buildAdapters(loaded);
  const queue = `e2e-${randomUUID()}`;
  const dir = mkdtempSync(path.join(tmpdir(), 'drbook-drctl-'));
  let t: TemporalHarness;
  let worker: ChildProcess;
  let workerLog = '';
  let metricsPort: number;

  /** bin/drctl as a child process on this test's task queue: exit code and output. */
  const drctl = (...args: string[]) =>
    new Promise<{ code: number; out: string; err: string }>((resolve) => {
      execFile(
        path.join(ROOT, 'bin', 'drctl'),
        ['--task-queue', queue, ...args],
        { env: process.env, timeout: 300_000 },
        (error, out, err) => resolve({ code: error ? ((error.code as number | undefined) ?? 1) : 0, out, err }),
      );
    });

  const metrics = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();

  beforeAll(async () => {
    t = await temporal(loaded);
    metricsPort = await freePort();
    // No DRBOOK_WORKFLOW_BUNDLE: this worker bundles its workflows at start, as a production worker does.
    worker = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', 'workers/main.ts'], {
      cwd: ROOT,
      env: { ...process.env, DRBOOK_TASK_QUEUE: queue, DRBOOK_METRICS_PORT: String(metricsPort) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    worker.stdout!.on('data', (d: Buffer) => (workerLog += d.toString()));
    worker.stderr!.on('data', (d: Buffer) => (workerLog += d.toString()));
    await eventually(async () => workerLog.includes('worker ready'), 120_000, 'the worker process to start');
  });
  afterAll(async () => {
    await t.terminate(['drill-shop', 'failover-shop', 'failback-shop']);
    if (worker.exitCode === null) {
      const exited = new Promise((r) => worker.once('exit', r));
      worker.kill('SIGTERM');
      await exited;
    }
    await t.close();
    await adapters.close();
  });

  const waitForGate = (runbook: string, step: string) => drillChildAtGate(t, 'shop', runbook, step, 180_000);

  test(
    'a whole switchover drill with two CLI approvals, ' + 'the HTML report with both charts, and the metrics',
    async () => {
      // Last night's backup, by hand (the drill's readiness and the restore test below want one).
      const backup = await drctl('backup', 'shop', '--wait');
      expect(backup).toMatchObject({ code: 0, out: expect.stringMatching(/started backup nightly-backup-manual-/) });

      const before = await readEstate(loaded, adapters);
      expect(await drctl('drill', 'shop', '--scope', 'switchover')).toMatchObject({
        code: 0,
        out: expect.stringMatching(/started drill drill-shop/),
      });

      await waitForGate('failover', 'promote');
      // shop is critical: its drill switchover changes production, so each gate needs two approvers.
      expect(await drctl('approve', 'drill-shop', '--step', 'promote', '--as', 'alice')).toMatchObject({
        code: 0,
        out: expect.stringMatching(/approved promote of failover-shop as alice: 1 more approver\(s\) needed/),
      });
      expect(await drctl('approve', 'drill-shop', '--step', 'promote', '--as', 'bob')).toMatchObject({
        code: 0,
        out: expect.stringMatching(/approved promote of failover-shop as bob: the run continues/),
      });
      await waitForGate('failback', 'switch-back');
      expect(await drctl('approve', 'drill-shop', '--step', 'switch-back', '--as', 'bob')).toMatchObject({
        code: 0,
        out: expect.stringMatching(/approved switch-back of failback-shop as bob: 1 more approver\(s\) needed/),
      });
      expect(await drctl('approve', 'drill-shop', '--step', 'switch-back', '--as', 'carol')).toMatchObject({
        code: 0,
        out: expect.stringMatching(/approved switch-back of failback-shop as carol: the run continues/),
      });
      const report = (await t.client.workflow.getHandle('drill-shop').result()) as {
        outcome: string;
        measured: { rtoSeconds: number; rpoSeconds: number };
      };
      expect(report.outcome).toBe('passed');
      expect(report.measured.rpoSeconds).toBe(0);

      const status = await drctl('status', 'drill-shop');
      expect(status.out).toMatch(/drill-shop\s+drDrill\s+COMPLETED/);
      const html = path.join(dir, 'drill.html');
      expect(await drctl('report', 'drill-shop', '--html', html)).toMatchObject({ code: 0, out: `wrote ${html}\n` });
      const page = readFileSync(html, 'utf8');
      expect(page).toMatch(/<figure id="timeline"><svg/);
      expect(page).toMatch(/<figure id="trend"><svg/);
      expect(page).toMatch(/PASSED/);

      // The estate is back where it was (failback).
      const after = await readEstate(loaded, adapters);
      expect(after.vip).toEqual(before.vip);
      expect(after.dns).toEqual(before.dns);
      expect(after.replica).toMatchObject({ readOnly: true, replicating: true });

      // A readiness run and a restore test through drctl, then the worker's Prometheus endpoint.
      expect((await drctl('readiness', 'shop')).out).toMatch(/^shop: READY/m);
      expect(await drctl('restore-test', 'shop', '--wait')).toMatchObject({
        code: 0,
        out: expect.stringMatching(/"outcome": "passed"/),
      });

      const text = await metrics();
      const gauge = (name: string, labels: RegExp) =>
        text.split('\n').find((l) => l.startsWith(name) && labels.test(l) && !l.startsWith('#'));
      const value = (line: string | undefined) => Number(line?.split(' ').pop());
      expect(
        value(gauge('drbook_rto_seconds', /runbook="drill".*service="shop"|service="shop".*runbook="drill"/)),
      ).toBe(report.measured.rtoSeconds);
      expect(
        value(gauge('drbook_rpo_seconds', /runbook="drill".*service="shop"|service="shop".*runbook="drill"/)),
      ).toBe(0);
      expect(gauge('drbook_rto_seconds', /runbook="failover"/)).toMatch(/service="shop"/);
      expect(value(gauge('drbook_restore_test_ok', /service="shop"/))).toBe(1);
      const age = value(gauge('drbook_backup_age_seconds', /service="shop"/));
      expect(age).toBeGreaterThanOrEqual(0);
      expect(age).toBeLessThan(6 * 3600);
      expect(value(gauge('drbook_ready', /service="shop"/))).toBe(1);
      expect(text).toMatch(/^temporal_\w+/m); // and Temporal's own metrics
    },
  );
});
