/**
 * Runbooks read as step lists: no workflow function (declaration, arrow, function expression, method, constructor,
 * accessor) over 60 lines, and no file over 400, anywhere in workflows/ (its step folders included). Read from the
 * source with the TypeScript compiler API.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { tsFilesUnder } from '../helpers/source-files';

const WORKFLOWS = join(__dirname, '../../workflows');
const MAX_FUNCTION_LINES = 60;
const MAX_FILE_LINES = 400;
/** Every function in `file` longer than the limit, as "file:line name (N lines)". */
function longFunctions(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const lineOf = (pos: number) => source.getLineAndCharacterOfPosition(pos).line + 1;
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const lines = lineOf(node.getEnd()) - lineOf(node.getStart()) + 1;
      if (lines > MAX_FUNCTION_LINES) {
        const name = node.name && ts.isIdentifier(node.name) ? node.name.text : ts.SyntaxKind[node.kind];
        found.push(`${file.slice(WORKFLOWS.length + 1)}:${lineOf(node.getStart())} ${name} (${lines} lines)`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

describe('runbooks read as step lists', () => {
  const files = tsFilesUnder(WORKFLOWS);

  test('finds the workflow modules, the runbook folders among them', () => {
    const names = files.map((f) => f.slice(WORKFLOWS.length + 1));
    expect(names).toEqual(expect.arrayContaining(['failover/index.ts', 'backup/index.ts', 'drill/index.ts']));
    expect(names.length).toBeGreaterThan(40);
  });

  test(`no workflow function is over ${MAX_FUNCTION_LINES} lines`, () => {
    expect(files.flatMap(longFunctions)).toEqual([]);
  });

  test(`no workflow file is over ${MAX_FILE_LINES} lines`, () => {
    const long = files
      .map((f) => ({ file: f.slice(WORKFLOWS.length + 1), lines: readFileSync(f, 'utf8').split('\n').length - 1 }))
      .filter(({ lines }) => lines > MAX_FILE_LINES);
    expect(long).toEqual([]);
  });
});
