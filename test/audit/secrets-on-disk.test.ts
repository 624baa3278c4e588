/**
 * Runs after the whole suite, like the history audit: what the runbooks left on disk.
 *
 * - Database passwords reach mariadb-dump, mariadb, mariadb-binlog and mariabackup only through a
 *   0600 defaults file in a private temp directory (`drbook-*` under the system temp directory),
 *   removed when the step ends. After every backup, restore, point-in-time replay and re-clone of the
 *   suite, no file under those directories may hold one of this stack's secret values.
 * - Nothing secret in logs: every log the stack and the chaos suite's worker processes wrote
 *   (DRBOOK_DATA/logs: worker, Temporal, MariaDB, moto, s3proxy, sshd, the sandbox app) is searched
 *   for the same values.
 *
 * The values are this stack's own (generated per DRBOOK_DATA by scripts/stack.sh install), so
 * another stack's files in a shared temp directory cannot match by accident.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sandboxSecrets } from '../helpers/secrets';
import { ROOT, sandbox } from '../helpers/stack';

/** Every regular file under `dir` (links not followed). */
function* files(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* files(p);
    else if (entry.isFile()) yield p;
  }
}

function leaksIn(file: string, secrets: Map<string, string>): string[] {
  // Logs and defaults files are small; a 64 MiB cap keeps a runaway log from stalling the audit.
  const size = statSync(file).size;
  const text = readFileSync(file)
    .subarray(0, Math.min(size, 64 * 1024 * 1024))
    .toString('utf8');
  return [...secrets].filter(([, value]) => text.includes(value)).map(([where]) => `${file}: ${where}`);
}

test('no defaults file or other temp file of a runbook step is left holding a secret', () => {
  const secrets = sandboxSecrets(sandbox());
  const leftovers = readdirSync(tmpdir())
    .filter((name) => name.startsWith('drbook-'))
    .map((name) => path.join(tmpdir(), name))
    .filter((p) => statSync(p).isDirectory());
  const leaks = leftovers.flatMap((dir) => [...files(dir)].flatMap((f) => leaksIn(f, secrets)));
  expect(leaks).toEqual([]);
});

test('no log of the stack or of a worker process holds a secret value', () => {
  const secrets = sandboxSecrets(sandbox());
  const logs = path.join(process.env.DRBOOK_DATA ?? path.join(ROOT, '.data'), 'logs');
  expect(existsSync(logs)).toBe(true);
  const scanned = [...files(logs)];
  // The stack always writes these; an empty or missing set would make the check vacuous.
  expect(scanned.map((f) => path.basename(f))).toEqual(expect.arrayContaining(['temporal.log', 'moto.log']));
  const leaks = scanned.flatMap((f) => leaksIn(f, secrets));
  expect(leaks).toEqual([]);
});
