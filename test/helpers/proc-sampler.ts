/**
 * What other users of the machine could read while a runbook runs: every process's
 * /proc/<pid>/cmdline (world-readable), and /proc/<pid>/environ of the processes a worker
 * spawns (readable by their user). A separate process samples them every few milliseconds, so
 * the worker's event loop is not slowed and short-lived tools (mariadb-dump, zstd, mariadb,
 * mariabackup, the commands an SSH session runs) are still caught.
 *
 * The sampler reports each distinct command line once per process (a process may rewrite its own
 * arguments, as MySQL clients do to hide -p<password>: each version is reported), and each
 * descendant's environment once per command line. The caller, not the sampler, looks for secret
 * values in what it saw: no secret is ever handed to another process.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

export interface SampledProcess {
  pid: number;
  ppid: number;
  /** The kernel's name for the process (/proc/<pid>/stat, 15 characters at most). */
  comm: string;
  /** Arguments joined with spaces. */
  cmdline: string;
  /** NAME=value lines, for processes under one of the sampler's roots; otherwise undefined. */
  environ?: string;
}

export interface Sampling {
  processes: SampledProcess[];
  /** Complete passes over /proc. */
  passes: number;
  /** Time between the starts of consecutive passes, in milliseconds. */
  intervalMs: { median: number; p99: number; max: number };
}

export interface ProcSampler {
  /** Stop sampling; resolves with everything seen. */
  stop(): Promise<Sampling>;
}

/** Start sampling. `environOf`: pids whose descendants' environments are read too. */
export async function startProcSampler({
  environOf,
  intervalMs = 2,
}: {
  environOf: number[];
  intervalMs?: number;
}): Promise<ProcSampler> {
  const child = spawn(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', __filename, String(intervalMs), ...environOf.map(String)],
    { cwd: path.join(__dirname, '..', '..'), stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const processes: SampledProcess[] = [];
  let summary: Omit<Sampling, 'processes'> | undefined;
  let ready!: () => void;
  const started = new Promise<void>((resolve) => (ready = resolve));
  const ended = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) =>
      summary ? resolve() : reject(new Error(`proc sampler exited (${code}) without a summary`)),
    );
  });
  createInterface({ input: child.stdout }).on('line', (line) => {
    const msg = JSON.parse(line) as
      | { kind: 'ready' }
      | { kind: 'process'; process: SampledProcess }
      | { kind: 'summary'; summary: Omit<Sampling, 'processes'> };
    if (msg.kind === 'ready') ready();
    else if (msg.kind === 'process') processes.push(msg.process);
    else summary = msg.summary;
  });
  await Promise.race([started, ended]);
  return {
    async stop() {
      child.stdin.end();
      await ended;
      return { processes, ...summary! };
    },
  };
}

// ------------------------------------------------------------------------------------------------
// The sampler process: `node -r ts-node/register/transpile-only proc-sampler.ts <interval ms> <root pid>...`
// Stops, and prints its summary, when its stdin closes.
function sample(intervalMs: number, roots: Set<number>): void {
  const emit = (msg: object) => process.stdout.write(JSON.stringify(msg) + '\n');
  const ppidOf = new Map<number, number>();
  const reported = new Map<number, string>(); // pid → last command line reported
  const starts: number[] = [];
  let stopping = false;

  const read = (pid: string, file: string) => {
    try {
      return readFileSync(`/proc/${pid}/${file}`);
    } catch {
      return null; // gone already, or not ours to read
    }
  };
  const underRoot = (pid: number) => {
    for (let p = pid, hops = 0; p > 1 && hops < 64; p = ppidOf.get(p) ?? 0, hops++) if (roots.has(p)) return true;
    return false;
  };

  const pass = () => {
    starts.push(performance.now());
    for (const name of readdirSync('/proc')) {
      const c = name.charCodeAt(0);
      if (c < 48 || c > 57) continue;
      const raw = read(name, 'cmdline');
      if (!raw || raw.length === 0) continue; // kernel thread, or exited
      const cmdline = raw.toString('utf8').replace(/\0+$/, '').split('\0').join(' ');
      const pid = Number(name);
      if (reported.get(pid) === cmdline) continue;
      reported.set(pid, cmdline);
      // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
      const stat = read(name, 'stat')?.toString('utf8') ?? '';
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const ppid = Number(stat.slice(close + 2).split(' ')[1] ?? 0);
      ppidOf.set(pid, ppid);
      const environ = underRoot(pid) ? read(name, 'environ')?.toString('utf8').split('\0').join('\n') : undefined;
      emit({ kind: 'process', process: { pid, ppid, comm, cmdline, environ } });
    }
    if (stopping) return finish();
    setTimeout(pass, intervalMs);
  };

  const finish = () => {
    const gaps = starts
      .slice(1)
      .map((t, i) => t - starts[i])
      .sort((a, b) => a - b);
    const at = (q: number) => Math.round((gaps[Math.min(gaps.length - 1, Math.floor(q * gaps.length))] ?? 0) * 10) / 10;
    emit({
      kind: 'summary',
      summary: { passes: starts.length, intervalMs: { median: at(0.5), p99: at(0.99), max: at(1) } },
    });
    process.exit(0);
  };

  process.stdin.on('data', () => undefined);
  process.stdin.on('end', () => (stopping = true));
  pass();
  emit({ kind: 'ready' }); // after one whole pass
}

if (require.main === module) {
  const [interval, ...roots] = process.argv.slice(2).map(Number);
  sample(interval, new Set(roots));
}
