/**
 * The operator's Web UI path, end to end, in Debian's headless Chromium (playwright-core; no
 * browser download): start a `failover` drill of `shop` from the real Temporal Web UI's Start
 * Workflow form, read the pending approval and the signal JSON to send from the run's page (its
 * current details, rendered by the UI), send that `approve` signal from the UI, and see the page
 * report the run complete with its measured RTO; activity summaries show in the run's history.
 * Failback (started with drctl's static summary and details) puts the estate back; its summary
 * shows in the runs list. Screenshots of the page at the gate and at the end are kept in
 * $DRBOOK_DATA/logs/ (webui-console-gate.png, webui-console-completed.png); a failure leaves one too.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { runMetadata } from '../../cli/run-metadata';
import { failback } from '../../workflows';
import { type DrillReport, type FailoverReport, statusQuery } from '../../contract';
import { ensureRecentBackup } from '../helpers/backups';
import { restoreSandboxTopology } from '../helpers/topology';
import { approveFully } from '../helpers/drive';
import { readEstate } from '../helpers/estate';
import { buildAdapters, eventually, ROOT, sandbox, temporal, type TemporalHarness } from '../helpers/stack';

jest.setTimeout(170_000);

const CHROMIUM = '/usr/bin/chromium';
const UI = `http://127.0.0.1:${process.env.DRBOOK_UI_PORT ?? 8233 + Number(process.env.DRBOOK_PORT_OFFSET ?? 0)}`;
const SCREENSHOTS = path.join(process.env.DRBOOK_DATA ?? path.join(ROOT, '.data'), 'logs');

const describeWithChromium = existsSync(CHROMIUM) ? describe : describe.skip;

describeWithChromium('Temporal Web UI: a failover drill started and approved from the browser', () => {
  const loaded = sandbox();
  const adapters = buildAdapters(loaded);
  let t: TemporalHarness;
  let context: BrowserContext;
  let page: Page;
  const profile = mkdtempSync(path.join(tmpdir(), 'drbook-chromium-'));

  beforeAll(async () => {
    t = await temporal(loaded);
    await restoreSandboxTopology(t); // an earlier file (or an interrupted run) may have left shop failed over
    await ensureRecentBackup(t, adapters.activities, 'shop'); // a drill starts from a ready estate
    // A fresh profile per run (--user-data-dir): no state from earlier runs.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1400, height: 1000 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(20_000);
  });
  afterAll(async () => {
    for (const id of ['failover-shop', 'failback-shop', 'drill-shop'])
      await t.client.workflow
        .getHandle(id)
        .terminate('test cleanup')
        .catch(() => undefined);
    await context?.close();
    rmSync(profile, { recursive: true, force: true });
    await t.close();
    await adapters.close();
  });

  async function screenshotOnFailure<T>(name: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      mkdirSync(SCREENSHOTS, { recursive: true });
      const file = path.join(SCREENSHOTS, `webui-${name}-${Date.now()}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => undefined);
      await page.content().then(
        (html) => writeFileSync(file.replace(/\.png$/, '.html'), html),
        () => undefined,
      );
      throw new Error(`${(err as Error).message}\n(screenshot: ${file})`, { cause: err });
    }
  }

  async function keep(name: string): Promise<string> {
    mkdirSync(SCREENSHOTS, { recursive: true });
    const file = path.join(SCREENSHOTS, `webui-console-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return file;
  }

  /**
   * The Markdown the UI rendered on the run's User Metadata tab (static summary, details and current details).
   * UI 2.x renders each in a sandboxed iframe of its own, so the page's own text never contains it.
   */
  async function renderedMetadata(): Promise<string> {
    const frames = page.frames().filter((f) => f !== page.mainFrame());
    const texts = await Promise.all(
      frames.map((f) =>
        f
          .locator('body')
          .innerText({ timeout: 2_000 })
          .catch(() => ''),
      ),
    );
    return texts.join('\n');
  }

  /** Reload the run's page until its rendered current details show `text`; returns that rendered text. */
  async function pageShows(text: string, timeoutMs: number): Promise<string> {
    return eventually(
      async () => {
        await page.reload();
        await page.getByText('User Metadata', { exact: true }).first().click();
        const until = Date.now() + 15_000;
        while (Date.now() < until) {
          const shown = await renderedMetadata();
          if (shown.includes(text)) return shown;
          await page.waitForTimeout(500);
        }
        return null;
      },
      timeoutMs,
      `the run's page to show ${text}`,
    );
  }

  /** Type into a CodeMirror editor (the UI's JSON inputs) inside `scope`. */
  async function typeJson(scope: ReturnType<Page['locator']> | Page, value: object) {
    const editor = scope.locator('.cm-content').first();
    await editor.click();
    await page.keyboard.press('Control+A');
    await page.keyboard.press('Delete');
    await page.keyboard.insertText(JSON.stringify(value));
  }

  /** Start a run from the UI's Start Workflow form; resolves once the server has it on this file's task queue. */
  async function startFromForm(workflowId: string, workflowType: string, input: object): Promise<void> {
    await screenshotOnFailure('start', async () => {
      await page.goto(`${UI}/namespaces/default/workflows/start-workflow`);
      await page.locator('#workflowId').fill(workflowId);
      await page.locator('#taskQueue').fill(t.taskQueue);
      await page.locator('#workflowType').fill(workflowType);
      await typeJson(page, input);
      await page.locator('#workflowType').click(); // the JSON editor commits its value on blur
      await page.getByTestId('start-workflow-button').click();
      // The form stays put and confirms with a toast; the run is the proof.
      await eventually(
        () =>
          t.client.workflow
            .getHandle(workflowId)
            .describe()
            .then(
              (d) => d.taskQueue === t.taskQueue,
              () => false,
            ),
        20_000,
        'the run started from the Web UI',
      );
      await page.goto(`${UI}/namespaces/default/workflows/${workflowId}`);
    });
  }

  /**
   * The operator reads a gate off the run's page, not the status query: what it waits for, who may approve, how
   * many more approvals it needs, and the signal JSON to send.
   */
  async function readGate(step: string, workflowId: string, shot?: string) {
    return screenshotOnFailure(`gate-${step}`, async () => {
      const shown = await pageShows(`Waiting for approval: ${step}`, 90_000);
      expect(shown).toMatch(/signal name approve/);
      expect(shown).toContain(`drctl approve ${workflowId} --step ${step} --as <your name>`);
      const approvers = /Who may approve: (.+)/.exec(shown)![1].split(', ');
      const needed = Number(/Needs: (\d+) more approver/.exec(shown)![1]);
      const line = shown.split('\n').find((l) => l.includes('"approver":"<your name>"'))!;
      if (shot) await keep(shot);
      return { shown, approvers, needed, signal: JSON.parse(line.trim()) as Record<string, unknown> };
    });
  }

  /** More Actions → Send Signal → approve, with the page's JSON and a name in it. */
  async function approveFromUi(signal: Record<string, unknown>, approver: string): Promise<void> {
    await screenshotOnFailure('signal', async () => {
      // The page renders its action menu twice (wide and narrow layouts): use the visible one.
      await page.locator('button:visible', { hasText: 'More Actions' }).first().click();
      await page.locator('[data-testid=signal-button]:visible').first().click();
      const dialog = page.locator('dialog#signal-confirmation-modal:visible');
      // The UI lists the signals the workflow defines (SDK workflow metadata): pick `approve`.
      await dialog.getByTestId('signal-select-button').click();
      await dialog
        .locator('[role=option]', { hasText: /^\s*approve\s*$/ })
        .first()
        .click();
      await typeJson(dialog, { ...signal, approver, comment: 'approved in the Web UI' });
      await dialog.getByText('Encoding').click(); // blur: the JSON editor commits its value
      await dialog.getByTestId('confirm-modal-button').click();
    });
  }

  test(
    'start from the form, approve by signal, complete with the measured RTO; ' + 'failback restores the estate',
    async () => {
      const original = await readEstate(loaded, adapters);
      await t.withWorkers(adapters.activities, async () => {
        const handle = t.client.workflow.getHandle('failover-shop');
        await startFromForm('failover-shop', 'failover', {
          service: 'shop',
          mode: 'drill',
          reason: 'Web UI drill (e2e test)',
        });
        const gate = await readGate('promote', 'failover-shop', 'gate');
        expect(gate.signal).toEqual({ step: 'promote', approver: '<your name>' });
        expect(gate.approvers).toEqual(['alice', 'bob', 'carol']);
        const approvedBy = gate.approvers.slice(0, gate.needed);
        for (const approver of approvedBy) await approveFromUi(gate.signal, approver);

        const result = (await handle.result()) as FailoverReport;
        expect(result.outcome).toBe('completed');
        // shop is critical: a drill changes production too, so the page asks for two (productionApprovals).
        expect(approvedBy).toEqual(['alice', 'bob']);
        expect(result.approvals.map((a) => a.approver)).toEqual(approvedBy);
        expect(result.measured.rtoSeconds).toBeGreaterThan(0);

        await screenshotOnFailure('completed', async () => {
          const shown = await pageShows('failover shop (drill): completed', 30_000);
          expect(shown).toContain(`RTO: measured ${result.measured.rtoSeconds} s of 900 s target`);
          await keep('completed');
          // Activity summaries stand in for bare activity types in the run's event history.
          await page.getByText('Timeline', { exact: true }).first().click();
          await page
            .getByText(/promote: promoteReplica db-replica/)
            .first()
            .waitFor();
          await page
            .getByText(/switch-dns: switchDnsRecord db\.shop\S* → /)
            .first()
            .waitFor();
        });

        // Started as drctl starts it: a static summary in the runs list, the inventory at start as details.
        const shop = loaded.inventory.services.find((svc) => svc.name === 'shop');
        const back = await t.client.workflow.start(failback, {
          taskQueue: t.taskQueue,
          workflowId: 'failback-shop',
          args: [{ service: 'shop', mode: 'drill' }],
          ...runMetadata('failback', { service: 'shop', mode: 'drill' }, shop),
        });
        await screenshotOnFailure('summary', async () => {
          await page.goto(`${UI}/namespaces/default/workflows/failback-shop`);
          expect(await pageShows('failback shop (drill)', 30_000)).toContain('shop: the inventory at start');
        });
        await eventually(
          async () => (await back.query(statusQuery).catch(() => null))?.pendingApproval?.step === 'switch-back',
          60_000,
          'failback gate',
        );
        await approveFully(back, { step: 'switch-back', approver: 'bob' });
        expect((await back.result()).outcome).toBe('completed');
      });
      const restored = await readEstate(loaded, adapters);
      expect(restored.vip).toEqual(original.vip);
      expect(restored.dns).toEqual(original.dns);
      expect(restored.primary.readOnly).toBe(false);
      expect(restored.replica).toMatchObject({ readOnly: true, replicating: true });
    },
  );
  test("a switchover drill started from the form and approved from the drill's own page", async () => {
    const original = await readEstate(loaded, adapters);
    await t.withWorkers(adapters.activities, async () => {
      await startFromForm('drill-shop', 'drDrill', {
        service: 'shop',
        scope: 'switchover',
        reason: 'Web UI drill (e2e test)',
      });
      // Each child's gate shows on the drill's page; the signal sent there is relayed to the child that waits.
      for (const [step, child] of [
        ['promote', 'failover-shop'],
        ['switch-back', 'failback-shop'],
      ]) {
        const gate = await readGate(step, 'drill-shop', step === 'promote' ? 'drill-gate' : undefined);
        expect(gate.shown).toContain(
          `The child runbook ${child} waits; an approval sent to this run is relayed to it.`,
        );
        for (const approver of gate.approvers.slice(0, gate.needed)) await approveFromUi(gate.signal, approver);
      }
      const report = (await t.client.workflow.getHandle('drill-shop').result()) as DrillReport;
      expect(report.children.map((c) => [c.workflowId, c.outcome])).toEqual([
        ['failover-shop', 'completed'],
        ['failback-shop', 'completed'],
      ]);
      await screenshotOnFailure('drill-completed', async () => {
        const shown = await pageShows('drill shop (switchover): ', 30_000);
        expect(shown).not.toContain('Waiting for approval');
        await keep('drill-completed');
      });
    });
    const restored = await readEstate(loaded, adapters);
    expect(restored.vip).toEqual(original.vip);
    expect(restored.dns).toEqual(original.dns);
    expect(restored.primary.readOnly).toBe(false);
    expect(restored.replica).toMatchObject({ readOnly: true, replicating: true });
  });
});
