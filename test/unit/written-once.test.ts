/**
 * Things written once, read from the source with the TypeScript compiler API (string literals and template parts,
 * not comments): the statements that start replication (re-protect and re-clone share them), and the "stopped"
 * notification a failed failover or failback sends.
 */
import { readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { tsFilesUnder } from '../helpers/source-files';

const ROOT = resolve(__dirname, '../..');

/** The .ts files of one of our folders. */
const tsFiles = (dir: string) => tsFilesUnder(join(ROOT, dir));

/** Every string literal and template part of the files, with the file it is in. */
function stringsOf(files: string[]): { file: string; text: string }[] {
  return files.flatMap((file) => {
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const found: { file: string; text: string }[] = [];
    const visit = (node: ts.Node) => {
      if (ts.isStringLiteralLike(node) || ts.isTemplateLiteralToken(node)) {
        found.push({ file: relative(ROOT, file), text: node.text });
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
    return found;
  });
}

test('replication is started in one place: CHANGE MASTER / CHANGE REPLICATION SOURCE only in topology-sql.ts', () => {
  const starts = stringsOf(tsFiles('activities')).filter((s) =>
    /CHANGE (MASTER|REPLICATION SOURCE) TO|^START (SLAVE|REPLICA)$/.test(s.text),
  );
  expect([...new Set(starts.map((s) => s.file))]).toEqual(['activities/mysql/topology-sql.ts']);
  // One statement pair per flavour.
  expect(starts).toHaveLength(4);
});

test('the "stopped" notification of a failed runbook is written once in workflows/', () => {
  // Its subject: "FAILOVER OF shop STOPPED".
  const stopped = stringsOf(tsFiles('workflows')).filter((s) => / STOPPED$/.test(s.text));
  expect(stopped.map((s) => s.file)).toEqual(['workflows/steps.ts']);
});
