/**
 * A worker killed with SIGKILL leaves its private work directories (client defaults files with a
 * password, 0600) and a scratch server running on one. The sweep at worker start removes exactly
 * those of dead drbook processes and kills what still runs on them; a live process's directories,
 * directories without an owner file and names drbook does not make are left alone.
 *
 * Real processes: a child node process makes its work directory through privateWorkDir, writes a
 * defaults file and starts a detached process on it the way physical restore starts its scratch
 * mariadbd (--datadir/--pid-file/--socket inside the directory), then is SIGKILLed. (A stand-in
 * process takes the scratch server's place: an initialised data directory is not needed to prove
 * which process the sweep identifies and kills.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { privateWorkDir, sweepOrphanWorkDirs } from '../../activities/workdirs';
import { ROOT } from '../helpers/stack';

jest.setTimeout(120_000);

const root = mkdtempSync(path.join(tmpdir(), 'sweep-test-'));
const started: ChildProcess[] = [];

/** A worker stand-in: makes a work directory (and a scratch process on it), prints both, then waits. */
function worker(withScratch: boolean): Promise<{ child: ChildProcess; dir: string; scratchPid: number | null }> {
  const script = `
    const { spawn } = require('node:child_process');
    const { writeFileSync } = require('node:fs');
    const { privateWorkDir } = require('./activities/workdirs');
    privateWorkDir('physical', ${JSON.stringify(root)}).then((dir) => {
      writeFileSync(dir + '/client.cnf', '[client]\\npassword="secret"\\n', { mode: 0o600 });
      let scratch = null;
      if (${withScratch}) {
        scratch = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '--',
          '--datadir=' + dir + '/data', '--pid-file=' + dir + '/mariadbd.pid', '--socket=' + dir + '/mariadbd.sock'],
          { detached: true, stdio: 'ignore' });
        scratch.unref();
      }
      console.log(JSON.stringify({ dir, scratchPid: scratch ? scratch.pid : null }));
      setInterval(() => {}, 1000);
    });`;
  const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  started.push(child);
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`worker stand-in exited ${code}`)));
    createInterface({ input: child.stdout }).once('line', (line) => {
      const { dir, scratchPid } = JSON.parse(line) as { dir: string; scratchPid: number | null };
      resolve({ child, dir, scratchPid });
    });
  });
}

/** Running, not a zombie waiting to be reaped. */
const running = (pid: number) => {
  try {
    return !/^\S+ \(.*\) [ZX] /s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

afterAll(() => {
  for (const c of started) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

test("a SIGKILLed worker's work directory and scratch process are swept; nothing live or foreign is", async () => {
  const dead = await worker(true);
  const alive = await worker(false);
  const mine = await privateWorkDir('dump', root);
  const ownerless = path.join(root, 'drbook-dump-abc123');
  mkdirSync(ownerless, { mode: 0o700 });
  const foreign = path.join(root, 'someone-else-xyz789');
  mkdirSync(foreign);

  expect(statSync(dead.dir).mode & 0o777).toBe(0o700);
  dead.child.kill('SIGKILL');
  await new Promise((r) => dead.child.once('exit', r));
  // What SIGKILL leaves: the directory with its password file, the scratch process still running.
  expect(existsSync(path.join(dead.dir, 'client.cnf'))).toBe(true);
  expect(running(dead.scratchPid!)).toBe(true);

  const swept = await sweepOrphanWorkDirs(root);
  expect(swept).toEqual({ removed: [dead.dir], killed: [dead.scratchPid] });
  expect(existsSync(dead.dir)).toBe(false);
  expect(running(dead.scratchPid!)).toBe(false);
  for (const kept of [alive.dir, mine, ownerless, foreign]) expect([kept, existsSync(kept)]).toEqual([kept, true]);

  // A second sweep (another worker starting) finds nothing more.
  expect(await sweepOrphanWorkDirs(root)).toEqual({ removed: [], killed: [] });
});
