/**
 * A child process's end, told the same way everywhere: its exit (a missing tool is NotConfigured, never retried
 * into success), the tail of its stderr (bounded: a chatty tool cannot fill the worker's memory), its version.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { ErrorType } from '../../contract';
import { failure } from '../errors';

const execFileAsync = promisify(execFile);

/** How much of a child's stderr is kept: its last characters, where tools print why they stopped. */
const STDERR_TAIL = 4000;

/**
 * The child's exit code and signal once it has closed. A spawn failure rejects: NotConfigured when the tool is not
 * installed, else `failType` (the step's own failure: DumpFailed for backups, RestoreFailed for restores).
 */
export function exitOf(
  child: ChildProcess,
  bin: string,
  failType: ErrorType = ErrorType.DumpFailed,
): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? failure(ErrorType.NotConfigured, `${bin} is not installed on this worker`)
          : failure(failType, `${bin}: ${err.message}`),
      ),
    );
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
}

/** The tail of a stream's text (a child's stderr), read when the child is done. */
export function collect(stream: NodeJS.ReadableStream | null, limit = STDERR_TAIL): () => string {
  let text = '';
  stream?.on('data', (d: Buffer) => (text = (text + d.toString()).slice(-limit)));
  return () => text.trim();
}

/** SIGKILL every child still running (cancellation, a failure elsewhere in the pipeline, the step's end). */
export function killAll(children: readonly ChildProcess[]): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

const toolVersions = new Map<string, Promise<string>>();
/** `tool --version`, once per worker. */
export function toolVersion(bin: string): Promise<string> {
  let v = toolVersions.get(bin);
  if (!v) {
    v = execFileAsync(bin, ['--version']).then(
      (r) => r.stdout.trim().split('\n')[0],
      () => 'unknown',
    );
    toolVersions.set(bin, v);
  }
  return v;
}
