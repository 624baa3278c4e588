/**
 * The worker as scripts/stack.sh starts it: on the pinned node, saying so when it starts, and without a runtime
 * warning in its log once it has run a runbook that builds its AWS clients (under the end-of-life Node 20 the AWS
 * SDK printed a NodeVersionSupportWarning there; docs/runtime.md).
 */
import { randomUUID } from 'node:crypto';
import { readiness } from '../../workflows';
import { NODE_WARNING, PINNED_NODE } from '../helpers/runtime';
import { sandbox, temporal, type TemporalHarness } from '../helpers/stack';
import { killStartedWorkers, startWorker } from '../helpers/worker-process';

let t: TemporalHarness;
beforeAll(async () => {
  t = await temporal(sandbox());
});
afterAll(async () => {
  await killStartedWorkers();
  await t.close();
});

test('the worker runs on the pinned node and logs no runtime warning', async () => {
  const taskQueue = `runtime-${randomUUID()}`;
  const worker = await startWorker({ taskQueue });
  try {
    expect(worker.output()).toContain(`worker ready: node v${PINNED_NODE},`);
    // Read-only, and it calls ELBv2, EC2, RDS and Route 53: the worker builds its AWS clients.
    const report = await t.client.workflow.execute(readiness, {
      args: [{ service: 'shop' }],
      taskQueue,
      workflowId: `readiness-shop-${taskQueue}`,
    });
    expect(report.checks.map((c) => c.name)).toContain('primary-targets-healthy');
    expect(worker.output()).not.toMatch(NODE_WARNING);
  } finally {
    await worker.stop();
  }
});
