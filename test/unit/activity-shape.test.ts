/**
 * The shape of activities/, read from the source with the TypeScript compiler API:
 * - no source file over 400 lines;
 * - no function, method or arrow over 120 lines (an activity factory composes smaller ones);
 * - one identifier quoter, one shell quoter and one heartbeat-while-a-child-runs helper, all in
 *   activities/process/ (found by name and by shape: a backquote-doubling replace, a '\'' replace,
 *   a setInterval that heartbeats).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { tsFilesUnder } from '../helpers/source-files';

const ROOT = path.join(__dirname, '..', '..', 'activities');
const MAX_FILE_LINES = 400;
const MAX_FUNCTION_LINES = 120;

const files = tsFilesUnder(ROOT).map((file) => ({
  file,
  rel: path.relative(path.join(ROOT, '..'), file),
  source: ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true),
}));

function walk(node: ts.Node, visit: (n: ts.Node) => void): void {
  visit(node);
  node.forEachChild((c) => walk(c, visit));
}

const lineOf = (sf: ts.SourceFile, pos: number) => sf.getLineAndCharacterOfPosition(pos).line + 1;

/** A readable name for a function-like node: its own, or the variable/property it is assigned to. */
function nameOf(node: ts.FunctionLikeDeclaration): string {
  if (node.name && ts.isIdentifier(node.name)) return node.name.text;
  const parent = node.parent;
  if (parent && (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent)) && ts.isIdentifier(parent.name))
    return parent.name.text;
  return '(anonymous)';
}

interface Definition {
  where: string;
  name: string;
}

/** Every function-like definition, with where it is and how long it is. */
const functions = files.flatMap(({ rel, source }) => {
  const out: { where: string; name: string; lines: number; text: string }[] = [];
  walk(source, (n) => {
    if (ts.isFunctionLike(n) && 'body' in n && n.body) {
      const f = n;
      const start = lineOf(source, f.getStart(source));
      const end = lineOf(source, f.getEnd());
      out.push({ where: `${rel}:${start}`, name: nameOf(f), lines: end - start + 1, text: f.getText(source) });
    }
  });
  return out;
});

/** Definitions (functions or variables holding one) whose name or body says they are `kind`. */
function definitionsOf(byName: RegExp, byBody: RegExp): Definition[] {
  const found = new Map<string, Definition>();
  for (const f of functions) {
    // The innermost definition counts: a factory that holds a quoter is not itself one.
    const inner = functions.some((g) => g !== f && f.text.includes(g.text) && byBody.test(g.text));
    if (byName.test(f.name) || (byBody.test(f.text) && !inner)) found.set(f.where, { where: f.where, name: f.name });
  }
  return [...found.values()];
}

test(`no source file under activities/ is over ${MAX_FILE_LINES} lines`, () => {
  const long = files
    .map(({ rel, source }) => ({ rel, lines: source.getLineAndCharacterOfPosition(source.getEnd()).line }))
    .filter((f) => f.lines > MAX_FILE_LINES)
    .map((f) => `${f.rel}: ${f.lines} lines`);
  expect(long).toEqual([]);
});

test(`no function, method or arrow in activities/ is over ${MAX_FUNCTION_LINES} lines`, () => {
  const long = functions.filter((f) => f.lines > MAX_FUNCTION_LINES).map((f) => `${f.where} ${f.name}: ${f.lines}`);
  expect(long).toEqual([]);
});

test('one identifier quoter, in activities/process/', () => {
  const quoters = definitionsOf(/^(ident|quoteId|quoteIdent\w*|quoteName|quoteIdentifier)$/, /replace\(\/`\/g/);
  expect(quoters.map((q) => `${q.where.replace(/:\d+$/, '')} ${q.name}`).sort()).toEqual([
    'activities/process/quote.ts quoteIdentifier',
    'activities/process/quote.ts quoteName',
  ]);
});

test('one shell quoter, in activities/process/', () => {
  const quoters = definitionsOf(/^(shellQuote|quoteShell|shq)$/, /replace\(\/'\/g/);
  expect(quoters.map((q) => q.where.replace(/:\d+$/, ''))).toEqual(['activities/process/quote.ts']);
});

test('one heartbeat-while-it-runs helper, in activities/process/', () => {
  // A setInterval whose callback heartbeats, or a lookup of the activity's context: written once, in
  // process/heartbeat.ts, and used by every step that runs a child or waits long.
  const beats = definitionsOf(
    /^(heartbeat|heartbeatEvery|whileHeartbeating|activityContext)$/,
    /setInterval\([^]*\.heartbeat\(|Context\.current\(\)\.heartbeat/,
  );
  expect(beats.map((b) => `${b.where.replace(/:\d+$/, '')} ${b.name}`).sort()).toEqual([
    'activities/process/heartbeat.ts activityContext',
    'activities/process/heartbeat.ts heartbeat',
    'activities/process/heartbeat.ts heartbeatEvery',
    'activities/process/heartbeat.ts whileHeartbeating',
  ]);
});
