/**
 * The saved views docs/operating.md gives for drbook's runs are real list filters: each query is taken from the
 * docs and run against the dev server's visibility store (a misspelt search attribute or an operator the store
 * does not support is refused there). A run this file starts is found by the first view.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { failover } from '../../workflows';
import { buildAdapters, eventually, sandbox, temporal, type TemporalHarness } from '../helpers/stack';

jest.setTimeout(120_000);

function documentedViews(): string[] {
  const doc = readFileSync(path.join(__dirname, '..', '..', 'docs', 'operating.md'), 'utf8');
  const section = doc.slice(doc.indexOf("### A saved view of drbook's runs"));
  const block = /```\n([\s\S]*?)```/.exec(section)![1];
  return block.split('\n').filter((l) => l.trim());
}

describe("saved views of drbook's runs (docs/operating.md)", () => {
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

  it('documents at least four views', () => {
    expect(documentedViews().length).toBeGreaterThanOrEqual(4);
  });

  it.each(documentedViews().map((q) => [q]))('the server accepts %s', async (query) => {
    const found: string[] = [];
    for await (const wf of t.client.workflow.list({ query, pageSize: 20 })) {
      found.push(wf.workflowId);
      if (found.length >= 20) break;
    }
    expect(found.length).toBeLessThanOrEqual(20);
  });

  it("a failover dry run of catalog is listed by the views for drbook's runs and for one service", async () => {
    // A dry run reads the estate and changes nothing; it carries DrService, DrRunbook and DrMode like any failover.
    const workflowId = 'failover-catalog';
    const { runId } = await t.withWorkers(adapters.activities, async () => {
      const h = await t.client.workflow.start(failover, {
        taskQueue: t.taskQueue,
        workflowId,
        args: [{ service: 'catalog', mode: 'drill', reason: 'ui views test', dryRun: true }],
      });
      await h.result();
      return { runId: h.firstExecutionRunId };
    });
    const [all, oneService] = documentedViews();
    for (const view of [all, oneService.replace('"shop"', '"catalog"')]) {
      await eventually(
        async () => {
          for await (const wf of t.client.workflow.list({ query: `${view} AND WorkflowId = "${workflowId}"` }))
            if (wf.runId === runId) return true;
          return false;
        },
        30_000,
        `${workflowId} listed by ${view}`,
      );
    }
  });
});
