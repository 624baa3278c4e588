/**
 * No line over 120 characters in source: TypeScript, JavaScript, shell (by extension or by a `#!` first line), SQL,
 * option files and config/*.yaml, as git lists them (tracked, or new and not ignored). Fixtures are recorded data,
 * not source. Markdown is prose: its tables are checked by whoever writes them.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '../..');
const MAX_LINE = 120;
const SOURCE = /\.(ts|js|mjs|cjs|sh|sql|cnf|py)$|^config\/[^/]+\.yaml$/;
/**
 * Files whose owners shorten their own lines in this session; the list empties as they land. `file#name` is the shell
 * function `name() {` … `}` of that file, the rest of the file held to the rule.
 */
const OWNED_ELSEWHERE = [
  'workflows/backup.ts', // fixed by its owner in this session
  'workflows/backup-policy.ts', // fixed by its owner in this session
  'workflows/binlog-archive.ts', // fixed by its owner in this session
  'workflows/restore-test.ts', // fixed by its owner in this session
  'workflows/drill.ts', // fixed by its owner in this session
  'workflows/monitor.ts', // fixed by its owner in this session
  'workflows/readiness.ts', // fixed by its owner in this session
  'workflows/resolve-split.ts', // fixed by its owner in this session
  'workflows/failover/index.ts', // fixed by its owner in this session
  'workflows/failback/index.ts', // fixed by its owner in this session
  'activities/mysql/reclone.ts', // fixed by its owner in this session
  'activities/mysql/reprotect.ts', // fixed by its owner in this session
  'activities/mysql/topology-sql.ts', // fixed by its owner in this session
  'jest.config.js', // fixed by its owner in this session
  '.ci/run', // fixed by its owner in this session
  'test/helpers/', // fixed by its owner in this session (the whole folder)
  'test/unit/workflow-length.test.ts', // fixed by its owner in this session
  'test/unit/import-graph.test.ts', // fixed by its owner in this session
  'test/chaos/worker-kill.test.ts', // fixed by its owner in this session
  'test/integration/backup.test.ts', // fixed by its owner in this session
  'workers/main.ts', // fixed by its owner in this session
];

function sourceFiles(): string[] {
  const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return [...new Set(listed.split('\0'))]
    .filter(
      (f) =>
        f !== '' &&
        !f.startsWith('test/fixtures/') &&
        statSync(join(ROOT, f), { throwIfNoEntry: false })?.isFile() === true,
    )
    .filter((f) => SOURCE.test(f) || readFileSync(join(ROOT, f), 'utf8').startsWith('#!'))
    .filter((f) => !OWNED_ELSEWHERE.some((owned) => (owned.endsWith('/') ? f.startsWith(owned) : f === owned)));
}

/** The 0-based line numbers of the shell functions of `file` that OWNED_ELSEWHERE names. */
function ownedLines(file: string, lines: string[]): Set<number> {
  const owned = new Set<number>();
  for (const entry of OWNED_ELSEWHERE.filter((o) => o.startsWith(`${file}#`))) {
    const start = lines.indexOf(`${entry.slice(file.length + 1)}() {`);
    const end = lines.indexOf('}', start);
    if (start < 0 || end < 0) continue;
    for (let i = start; i <= end; i++) owned.add(i);
  }
  return owned;
}

/** Every line over the limit in `file`, as "file:line (N chars)"; characters, not UTF-16 units or bytes. */
function longLines(file: string): string[] {
  const lines = readFileSync(join(ROOT, file), 'utf8').split(/\r?\n/);
  const owned = ownedLines(file, lines);
  return lines.flatMap((line, i) => {
    const chars = [...line].length;
    return chars > MAX_LINE && !owned.has(i) ? [`${file}:${i + 1} (${chars} chars)`] : [];
  });
}

describe('source lines', () => {
  it('finds the source files', () => {
    const files = sourceFiles();
    expect(files).toContain('scripts/stack.sh');
    expect(files).toContain('test/unit/line-length.test.ts');
    expect(files.length).toBeGreaterThan(100);
  });

  it(`has no line over ${MAX_LINE} characters`, () => {
    expect(sourceFiles().flatMap(longLines)).toEqual([]);
  });
});
