/**
 * Runbooks read as step lists: no workflow function (declaration, arrow, function expression, method, constructor,
 * accessor) over 60 lines, and no source file over 400, in the workflow modules converted so far. Read from the
 * source with the TypeScript compiler API. A module is a file `workflows/<name>.ts` or a folder `workflows/<name>/`.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

const WORKFLOWS = join(__dirname, '../../workflows');
const MAX_FUNCTION_LINES = 60;
const MAX_FILE_LINES = 400;
/** The modules held to the rule (extend the list as runbooks are converted). */
const CONVERTED = [
  'failover',
  'failback',
  'runbook',
  'approvals',
  'workflow-ids',
  'steps',
  'plan',
  'lock',
  'compensations',
  'activity-options',
  'activity-summaries',
  'dns',
  'restore-test',
  'drill',
  'backup',
  'backup-policy',
  'binlog-archive',
  'monitor',
  'readiness',
  'resolve-split',
];

function filesOf(module: string): string[] {
  const folder = join(WORKFLOWS, module);
  if (existsSync(folder) && statSync(folder).isDirectory()) {
    return readdirSync(folder)
      .filter((f) => f.endsWith('.ts'))
      .map((f) => join(folder, f));
  }
  return [`${folder}.ts`];
}

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
  const files = CONVERTED.flatMap(filesOf);

  test('every converted module exists', () => {
    expect(files.filter((f) => !existsSync(f))).toEqual([]);
  });

  test(`no workflow function in them is over ${MAX_FUNCTION_LINES} lines`, () => {
    expect(files.flatMap(longFunctions)).toEqual([]);
  });

  test(`no file of them is over ${MAX_FILE_LINES} lines`, () => {
    const long = files
      .map((f) => ({ file: f.slice(WORKFLOWS.length + 1), lines: readFileSync(f, 'utf8').split('\n').length - 1 }))
      .filter(({ lines }) => lines > MAX_FILE_LINES);
    expect(long).toEqual([]);
  });
});
