/**
 * The drbook worker as a child process (workers/main.ts, or the held worker with a fault hook),
 * so a test can SIGKILL it like a crashed host and start a new one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { ROOT, workflowBundleFile } from './stack';

export interface WorkerProcess {
  pid: number;
  /** Everything the process printed so far. */
  output(): string;
  /** Resolves once the output matches `pattern`; rejects if the process exits or `timeoutMs` passes. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** SIGKILL (no shutdown, no goodbye to the server), resolved once the process is gone. */
  kill(): Promise<void>;
  /** Let a held worker go on (SIGUSR2, see held-worker.ts). */
  release(): void;
  /** SIGTERM: the worker's own graceful shutdown. */
  stop(): Promise<void>;
}

const started = new Set<ChildProcess>();
/** The workflow interceptor the held worker bundles (held-worker.ts passes the same module). */
const HELD_WORKER_INTERCEPTOR = require.resolve('./held-worker-workflow');

/**
 * Start a worker serving `taskQueue` (and its DR queue), metrics off; resolves once it polls.
 * With `hold`, the held worker (test/helpers/held-worker.ts) runs instead.
 */
export async function startWorker({ taskQueue, hold }: { taskQueue: string; hold?: string }): Promise<WorkerProcess> {
  const entry = hold ? 'test/helpers/held-worker.ts' : 'workers/main.ts';
  // The suite's cached bundle (the held worker's includes its interceptor), not a bundle per process start.
  const bundle = await workflowBundleFile(hold ? [HELD_WORKER_INTERCEPTOR] : []);
  const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', entry], {
    cwd: ROOT,
    env: {
      ...process.env,
      DRBOOK_TASK_QUEUE: taskQueue,
      DRBOOK_METRICS_PORT: '0',
      DRBOOK_CHAOS_HOLD: hold ?? '',
      DRBOOK_WORKFLOW_BUNDLE: bundle,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.add(child);
  let text = '';
  const listeners = new Set<() => void>();
  // Also to a file, to read after a failed run: $DRBOOK_DATA/logs/chaos-worker-<pid>.log
  const log = path.join(process.env.DRBOOK_DATA ?? path.join(ROOT, '.data'), 'logs', `chaos-worker-${child.pid}.log`);
  mkdirSync(path.dirname(log), { recursive: true });
  const onData = (chunk: Buffer) => {
    appendFileSync(log, chunk);
    text += chunk.toString('utf8');
    for (const l of listeners) l();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      started.delete(child);
      resolve();
    }),
  );
  const waitFor = (pattern: RegExp, timeoutMs = 60_000) =>
    new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        listeners.delete(check);
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      const check = () => {
        if (pattern.test(text)) done();
      };
      const timer = setTimeout(
        () =>
          done(new Error(`worker ${child.pid}: no ${pattern} within ${timeoutMs} ms; output:\n${text.slice(-2000)}`)),
        timeoutMs,
      );
      listeners.add(check);
      void exited.then(() =>
        done(
          new Error(
            `worker ${child.pid} exited (${child.exitCode ?? child.signalCode}) before ${pattern}:\n` +
              text.slice(-2000),
          ),
        ),
      );
      check();
    });
  const worker: WorkerProcess = {
    pid: child.pid!,
    output: () => text,
    waitFor,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    release() {
      child.kill('SIGUSR2');
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
  await waitFor(/worker ready/, 120_000);
  return worker;
}

/** Kill every worker process this test file started that still runs (afterAll). */
export async function killStartedWorkers(): Promise<void> {
  await Promise.all(
    [...started].map(
      (child) =>
        new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}
