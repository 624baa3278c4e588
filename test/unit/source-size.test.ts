/**
 * Source that reads on a screen: no line over 120 characters and no file over 400 lines.
 *
 * Source is TypeScript, JavaScript, shell (by extension or by a `#!` first line), SQL, option files and
 * config/*.yaml, as git lists them (tracked, or new and not ignored). Fixtures are recorded data, not source;
 * Markdown is prose. The file-length rule leaves tests aside (a test file holds one subject's cases).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '../..');
const MAX_LINE = 120;
const MAX_FILE_LINES = 400;
const SOURCE = /\.(ts|js|mjs|cjs|sh|sql|cnf|py)$|^config\/[^/]+\.yaml$/;

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
    .filter((f) => SOURCE.test(f) || readFileSync(join(ROOT, f), 'utf8').startsWith('#!'));
}

const linesOf = (file: string) => readFileSync(join(ROOT, file), 'utf8').split(/\r?\n/);

/** Every line over the limit in `file`, as "file:line (N chars)"; characters, not UTF-16 units or bytes. */
function longLines(file: string): string[] {
  return linesOf(file).flatMap((line, i) => {
    const chars = [...line].length;
    return chars > MAX_LINE ? [`${file}:${i + 1} (${chars} chars)`] : [];
  });
}

describe('source size', () => {
  const files = sourceFiles();

  it('finds the source files', () => {
    expect(files).toContain('scripts/stack.sh');
    expect(files).toContain('test/unit/source-size.test.ts');
    expect(files.length).toBeGreaterThan(100);
  });

  it(`has no line over ${MAX_LINE} characters`, () => {
    expect(files.flatMap(longLines)).toEqual([]);
  });

  it(`has no file over ${MAX_FILE_LINES} lines, tests aside`, () => {
    const long = files
      .filter((f) => !f.startsWith('test/'))
      .map((f) => ({ f, lines: linesOf(f).length - 1 }))
      .filter(({ lines }) => lines > MAX_FILE_LINES)
      .map(({ f, lines }) => `${f} (${lines} lines)`);
    expect(long).toEqual([]);
  });
});
