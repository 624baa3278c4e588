/**
 * Commit subjects of at most 72 characters, the detail in the body: scripts/git-hooks/commit-msg (git runs it once
 * `scripts/stack.sh install` has set core.hooksPath) refuses a longer subject, or a body with no blank line before it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const HOOK = path.join(__dirname, '..', '..', 'scripts', 'git-hooks', 'commit-msg');
let dir: string;
beforeAll(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'drbook-commit-msg-'))));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function check(message: string) {
  const file = path.join(dir, 'COMMIT_EDITMSG');
  writeFileSync(file, message);
  const r = spawnSync('bash', [HOOK, file], { encoding: 'utf8' });
  return { code: r.status, err: r.stderr };
}

test.each([
  ['a 72-character subject and a body', `${'s'.repeat(72)}\n\nthe detail\n`, 0],
  ['a subject alone', 'Fence before promote\n', 0],
  ['comment lines git adds, ignored', '# Please enter the commit message\nShort subject\n\n# a comment\n', 0],
  ['a 73-character subject', `${'s'.repeat(73)}\n\nthe detail\n`, 1],
  ['a body with no blank line after the subject', 'Short subject\nthe detail at once\n', 1],
  ['72 characters of UTF-8, more bytes than that', `${'é'.repeat(72)}\n`, 0],
])('%s', (_name, message, code) => {
  const r = check(message);
  expect(r.code).toBe(code);
  if (code) expect(r.err).toMatch(/commit-msg: /);
});

test('a refused subject is named with its length', () => {
  expect(check(`${'x'.repeat(75)}\n`).err).toContain('the subject is 75 characters; at most 72');
});
