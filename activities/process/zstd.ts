/**
 * zstd as every pipeline runs it: compressing a tool's output into the destinations (counted before, hashed after),
 * or decompressing a backup on its way to a loader. The worker reads only what it must hash or route.
 */
import { spawn, type ChildProcess, type StdioNull, type StdioPipe } from 'node:child_process';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ErrorType } from '../../contract';
import { collect, exitOf } from './child';
import { Counter, Digest } from './streams';
import type { Upload } from './upload';

export interface Zstd {
  child: ChildProcess;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: string | null }>;
}

/**
 * `zstd -c` compressing at `level` with `threads` workers (0: one per core); `-vv` prints the exact sizes in and out
 * at the end (ZSTD_SIZES), else quiet. `stdin` is a pipe, or another child's stdout handed over in the kernel.
 */
export function startZstd({
  level,
  threads,
  verbose = false,
  stdin = 'pipe',
}: {
  level: number;
  threads: number;
  verbose?: boolean;
  stdin?: StdioPipe | Readable;
}): Zstd {
  const child = spawn('zstd', [verbose ? '-vv' : '-q', `-${level}`, `-T${threads}`, '-c'], {
    stdio: [stdin, 'pipe', 'pipe'],
  });
  const exit = exitOf(child, 'zstd');
  exit.catch(() => undefined); // awaited by the caller; an early failure must not go unhandled meanwhile
  return { child, stderr: collect(child.stderr), exit };
}

/** zstd -vv ends with the exact sizes in and out: "… : 21.49%   (523174282 B => 112430322 B, …)". */
export const ZSTD_SIZES = /\(\s*(\d+) B =>\s*(\d+) B,/;

/** `zstd -d -q -c`, from a pipe or a file (then stdin is not used); a failure to start is a RestoreFailed. */
export function startUnzstd({ file, stderr = 'pipe' }: { file?: string; stderr?: StdioPipe | StdioNull } = {}): Zstd {
  const child = spawn('zstd', ['-d', '-q', '-c', ...(file ? [file] : [])], {
    stdio: [file ? 'ignore' : 'pipe', 'pipe', stderr],
  });
  const exit = exitOf(child, 'zstd', ErrorType.RestoreFailed);
  exit.catch(() => undefined); // awaited by the caller (or not at all: a reader that stops early kills it)
  return { child, stderr: collect(child.stderr), exit };
}

/**
 * `source | Counter | zstd | Digest | every destination of the upload`; the upload's abort kills zstd. Resolves to
 * zstd's exit once both halves have flowed; the counter (raw bytes) and digest (compressed) tell how much.
 */
export function compressInto(
  upload: Upload,
  fanOut: NodeJS.WritableStream,
  source: Readable,
  { level, threads }: { level: number; threads: number },
) {
  const zstd = startZstd({ level, threads });
  const counter = new Counter();
  const digest = new Digest();
  upload.onAbort(() => zstd.child.kill('SIGKILL'));
  const done = Promise.all([
    pipeline(source, counter, zstd.child.stdin!, { signal: upload.signal }),
    pipeline(zstd.child.stdout!, digest, fanOut, { signal: upload.signal }),
    zstd.exit,
  ]).then(([, , exit]) => exit);
  return { zstd, counter, digest, done };
}
