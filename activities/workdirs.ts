/**
 * Private work directories on the worker's disk: 0700, under the OS temp directory, named
 * `drbook-<kind>-XXXXXX`. They hold client defaults files (a password, 0600), a backup spooled
 * and verified before it is loaded, a scratch mariadbd's data directory and socket.
 *
 * Each holds `owner`: the pid and start time of the worker process that made it. A worker killed
 * with SIGKILL never runs its clean-up, so every worker sweeps at start: a directory whose owner
 * process is gone (no such pid, or a pid reused by a younger process) is an orphan; a scratch
 * mariadbd still running on it is killed, then the directory is removed. Directories of a live
 * worker (another stack on the same machine, a test process), without an owner file, or not ours
 * (another uid, a symlink, a name drbook does not make) are never touched.
 */
import { lstatSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const OWNER = 'owner';
const NAME = /^drbook-[a-z][a-z-]*-[A-Za-z0-9]{6}$/;

/**
 * A process's start time in clock ticks since boot (/proc/<pid>/stat field 22), or null when there is
 * no such process (or only its zombie, which no one may have reaped yet).
 */
async function startTimeOf(pid: number): Promise<string | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat === null) return null;
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ")".
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[0] === 'Z' || fields[0] === 'X' ? null : (fields[19] ?? null);
}

let self: Promise<string> | null = null;
/** This process's owner line: "<pid> <start time>". */
function ownerLine(): Promise<string> {
  self ??= startTimeOf(process.pid).then((start) => `${process.pid} ${start ?? '?'}\n`);
  return self;
}

/** A fresh private work directory owned by this process; the caller removes it when its step ends. */
export async function privateWorkDir(kind: string, root = tmpdir()): Promise<string> {
  const dir = await mkdtemp(path.join(root, `drbook-${kind}-`)); // mode 0700
  await writeFile(path.join(dir, OWNER), await ownerLine(), { mode: 0o600 });
  return dir;
}

/** Whether the process that wrote `owner` is still running (the same process: same pid and start time). */
async function ownerAlive(owner: string): Promise<boolean> {
  const [pid, start] = owner.trim().split(' ');
  if (!/^\d+$/.test(pid)) return true; // unreadable: not provably an orphan, leave it
  if (Number(pid) === process.pid) return true;
  const now = await startTimeOf(Number(pid));
  return now !== null && (start === '?' || now === start);
}

/** Processes of this uid started on `dir` (a scratch mariadbd: --datadir / --pid-file / --socket inside it). */
async function processesOn(dir: string): Promise<number[]> {
  const uid = process.getuid?.();
  const found: number[] = [];
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (uid !== undefined && lstatSync(`/proc/${entry}`).uid !== uid) continue;
      const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0');
      if (
        argv.some((a) => /^--(datadir|pid-file|socket)=/.test(a) && a.slice(a.indexOf('=') + 1).startsWith(`${dir}/`))
      )
        found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

async function gone(pid: number, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if ((await startTimeOf(pid)) === null) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return (await startTimeOf(pid)) === null;
}

export interface SweepResult {
  /** Orphaned work directories removed. */
  removed: string[];
  /** Processes (scratch mariadbd) killed because they ran on an orphaned directory. */
  killed: number[];
}

/** At worker start: remove the work directories of drbook processes that died without cleaning up. */
export async function sweepOrphanWorkDirs(root = tmpdir()): Promise<SweepResult> {
  const result: SweepResult = { removed: [], killed: [] };
  const uid = process.getuid?.();
  for (const name of await readdir(root).catch(() => [] as string[])) {
    if (!NAME.test(name)) continue;
    const dir = path.join(root, name);
    try {
      const st = lstatSync(dir);
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
      const owner = await readFile(path.join(dir, OWNER), 'utf8').catch(() => null);
      if (owner === null || (await ownerAlive(owner))) continue;
      for (const pid of await processesOn(dir)) {
        process.kill(pid, 'SIGKILL');
        if (await gone(pid, 5000)) result.killed.push(pid);
      }
      await rm(dir, { recursive: true, force: true });
      result.removed.push(dir);
    } catch {
      // raced with its owner or another sweeper: the next start tries again
    }
  }
  return result;
}
