/**
 * The drbook worker: load and validate the inventory, build the adapters, serve the
 * runbook task queues, shut down cleanly on SIGINT/SIGTERM.
 *
 *   DRBOOK_INVENTORY   inventory file (default config/sandbox.yaml)
 *   DRBOOK_TASK_QUEUE  base task queue (default "drbook")
 *   DRBOOK_QUEUES      which sides this worker serves: "primary,dr" (default; one worker does both
 *                      locally), "primary" in the primary region, "dr" in the DR region
 *   DRBOOK_METRICS_PORT  Prometheus metrics on 127.0.0.1:<port> (default 9464; 0 turns them off)
 *   DRBOOK_PAYLOAD_KEYS  keyring file: payloads encrypted with AES-256-GCM (contract/codec.ts; off when unset)
 *   TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TLS_*, TEMPORAL_PROFILE  via @temporalio/envconfig
 */
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { bundleWorkflowCode, NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { sweepOrphanWorkDirs } from '../activities/workdirs';
import { InventoryError, drTaskQueue, TASK_QUEUE } from '../contract';
import { loadInventory } from '../config/load';
import { buildAdapters } from '../activities';
import { payloadCodecFromEnv } from '../contract/codec';

/**
 * What an embedding process may add to the worker (the chaos suite adds its fault hooks this way,
 * so the process it kills is this worker, not a copy): workflow interceptor modules bundled with
 * the workflows, worker interceptors, sinks.
 */
export interface WorkerAdditions {
  workflowInterceptorModules?: string[];
  interceptors?: WorkerOptions['interceptors'];
  sinks?: WorkerOptions['sinks'];
  /** Signals that shut the worker down gracefully (the SDK's default: SIGINT, SIGTERM, SIGQUIT and SIGUSR2). */
  shutdownSignals?: NodeJS.Signals[];
}

export async function runWorker(additions: WorkerAdditions = {}): Promise<void> {
  let loaded;
  try {
    loaded = loadInventory();
  } catch (err) {
    if (err instanceof InventoryError) {
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
  const { inventory, source } = loaded;
  let codec;
  try {
    codec = payloadCodecFromEnv();
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }

  const metricsPort = Number(process.env.DRBOOK_METRICS_PORT ?? 9464);
  if (metricsPort > 0 || additions.shutdownSignals) {
    Runtime.install({
      shutdownSignals: additions.shutdownSignals,
      telemetryOptions:
        metricsPort > 0 ? { metrics: { prometheus: { bindAddress: `127.0.0.1:${metricsPort}` } } } : undefined,
    });
  }

  // A worker killed with SIGKILL leaves its work directories (0600 password files) and a scratch
  // mariadbd behind: remove those of dead drbook processes before serving anything.
  const swept = await sweepOrphanWorkDirs();
  if (swept.removed.length)
    console.log(
      `removed ${swept.removed.length} work director${swept.removed.length === 1 ? 'y' : 'ies'} of dead workers` +
        (swept.killed.length ? `, killed ${swept.killed.length} orphaned scratch process(es)` : ''),
    );

  const { connectionOptions, namespace } = loadClientConnectConfig();
  const connection = await NativeConnection.connect(connectionOptions);
  const adapters = buildAdapters(loaded);
  const base = process.env.DRBOOK_TASK_QUEUE ?? TASK_QUEUE;
  const sides = (process.env.DRBOOK_QUEUES ?? 'primary,dr').split(',').map((s) => s.trim());
  const queues = [
    ...(sides.includes('primary') ? [base] : []),
    ...(sides.includes('dr') ? [drTaskQueue(base, inventory.regions.dr)] : []),
  ];
  if (queues.length === 0)
    throw new Error(`DRBOOK_QUEUES must name "primary" and/or "dr", got "${process.env.DRBOOK_QUEUES}"`);

  // Bundle once, share between the queues' workers; or take a bundle built before (DRBOOK_WORKFLOW_BUNDLE: the
  // code.js bundleWorkflowCode made from these workflows and interceptor modules), as the test suite's worker
  // processes do: bundling takes ~10 s of both cores at every start.
  const prebuilt = process.env.DRBOOK_WORKFLOW_BUNDLE;
  const workflowBundle = prebuilt
    ? { codePath: prebuilt }
    : await bundleWorkflowCode({
        workflowsPath: require.resolve('../workflows'),
        workflowInterceptorModules: additions.workflowInterceptorModules,
      });
  const workers = await Promise.all(
    queues.map((taskQueue) =>
      Worker.create({
        connection,
        namespace: namespace ?? 'default',
        taskQueue,
        workflowBundle,
        activities: adapters.activities,
        dataConverter: codec ? { payloadCodecs: [codec] } : undefined,
        interceptors: additions.interceptors,
        sinks: additions.sinks,
      }),
    ),
  );
  console.log(
    `worker ready: node ${process.version}, inventory ${source} (${inventory.services.length} services), ` +
      `task queues ${queues.join(', ')}, namespace ${namespace ?? 'default'}, ` +
      `payloads ${codec ? `encrypted (active key ${codec.activeKeyId})` : 'not encrypted'}`,
  );
  try {
    // Worker.run() resolves once Runtime's default SIGINT/SIGTERM handling has shut it down.
    await Promise.all(workers.map((w) => w.run()));
  } finally {
    await adapters.close();
    await connection.close();
  }
}

if (require.main === module) {
  runWorker().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
