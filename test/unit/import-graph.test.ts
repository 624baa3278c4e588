/**
 * The shape of the import graph (docs/architecture.md, Layout): the contract at the bottom, the worker process
 * apart, no cycles, and one table of failure types. Every non-test .ts file is read with TypeScript's own
 * pre-processor (import, export ... from, import type, require, import()), so no regex has to know the syntax.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const ROOT = resolve(__dirname, '../..');
/** Not our source: dependencies, the pinned runtime, build output, data, and the tests themselves. */
const SKIP = new Set(['node_modules', '.tools', '.venv', '.data', 'lib', 'coverage', 'test']);

function sourceFiles(dir = ROOT): string[] {
  return readdirSync(dir).flatMap((name) => {
    if (name.startsWith('.') || SKIP.has(name)) return [];
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [relative(ROOT, path)] : [];
  });
}

/** Our file a relative specifier names (x.ts, or x/index.ts), or null for a package or a file that is not ours. */
function resolveSpecifier(from: string, specifier: string, files: Set<string>): string | null {
  if (!specifier.startsWith('.')) return null;
  const base = relative(ROOT, resolve(ROOT, dirname(from), specifier));
  return [`${base}.ts`, join(base, 'index.ts'), base].find((f) => files.has(f)) ?? null;
}

function importGraph(): Map<string, string[]> {
  const list = sourceFiles();
  const files = new Set(list);
  return new Map(
    list.map((file) => {
      const info = ts.preProcessFile(readFileSync(join(ROOT, file), 'utf8'), true, true);
      const targets = info.importedFiles
        .map((i) => resolveSpecifier(file, i.fileName, files))
        .filter((t): t is string => t !== null);
      return [file, [...new Set(targets)]];
    }),
  );
}

const folder = (file: string) => file.split('/')[0];

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

const graph = importGraph();

test('the graph is read: every layer has files and imports', () => {
  const folders = new Set([...graph.keys()].map(folder));
  for (const f of ['contract', 'workflows', 'activities', 'workers', 'config', 'cli', 'scripts'])
    expect(folders).toContain(f);
  expect([...graph.values()].flat().length).toBeGreaterThan(200);
});

test('contract/ imports nothing of ours outside contract/', () => {
  const outside = [...graph]
    .filter(([file]) => folder(file) === 'contract')
    .flatMap(([file, targets]) => targets.filter((t) => folder(t) !== 'contract').map((t) => `${file} -> ${t}`));
  expect(outside).toEqual([]);
});

test('nothing outside workers/ (and test/) imports workers/', () => {
  const intoWorkers = [...graph]
    .filter(([file]) => folder(file) !== 'workers')
    .flatMap(([file, targets]) => targets.filter((t) => folder(t) === 'workers').map((t) => `${file} -> ${t}`));
  expect(intoWorkers).toEqual([]);
});

test('activities/ import nothing from workflows/ (shared decisions live in contract/)', () => {
  const intoWorkflows = [...graph]
    .filter(([file]) => folder(file) === 'activities')
    .flatMap(([file, targets]) => targets.filter((t) => folder(t) === 'workflows').map((t) => `${file} -> ${t}`));
  expect(intoWorkflows).toEqual([]);
});

test('there is no import cycle among our files', () => {
  expect(cycles(graph).map((scc) => scc.join(' <-> '))).toEqual([]);
});

test('the cycle finder finds a cycle', () => {
  const g = new Map([
    ['a.ts', ['b.ts']],
    ['b.ts', ['c.ts']],
    ['c.ts', ['a.ts']],
    ['d.ts', ['a.ts']],
  ]);
  expect(cycles(g)).toEqual([['a.ts', 'b.ts', 'c.ts']]);
});

/**
 * A failure type written as a string literal outside the table (best effort): failure('X', ...),
 * ApplicationFailure.create({ type: 'X' ... }) and err.type === 'X' with a capitalised X (an error type, not a
 * file entry's 'file').
 */
const LITERAL_TYPE = [
  /\bfailure\(\s*['"`][A-Za-z]/g,
  /ApplicationFailure\.create\(\{[^}]*?\btype:\s*['"`]/g,
  /\.type\s*[!=]==\s*['"`][A-Z]/g,
];

test('failure types are written only in contract/ (the one table), never as string literals', () => {
  const literals = [...graph.keys()]
    .filter((file) => folder(file) !== 'contract')
    .flatMap((file) => {
      const text = readFileSync(join(ROOT, file), 'utf8');
      return LITERAL_TYPE.flatMap((re) =>
        [...text.matchAll(re)].map((m) => {
          const line = text.slice(0, m.index).split('\n').length;
          return `${file}:${line}: ${text.split('\n')[line - 1].trim()}`;
        }),
      );
    });
  expect(literals).toEqual([]);
});

test('the literal finder finds one written across lines', () => {
  const text = "throw ApplicationFailure.create({\n  type: 'NotReady',\n  message: 'x',\n});";
  expect(LITERAL_TYPE.some((re) => [...text.matchAll(re)].length > 0)).toBe(true);
  expect(LITERAL_TYPE.some((re) => [...'failure(ErrorType.NotReady, m)'.matchAll(re)].length > 0)).toBe(false);
});

test('messages are defined in contract/ only, each name once per kind (one `status` query)', () => {
  const defined = [...graph.keys()].flatMap((file) =>
    [
      ...readFileSync(join(ROOT, file), 'utf8').matchAll(/\bdefine(Query|Signal|Update)\s*(?:<[^(]*>)?\(\s*'([^']+)'/g),
    ].map((m) => ({ file, kind: m[1], name: m[2] })),
  );
  expect(defined.length).toBeGreaterThan(5);
  expect(defined.filter((d) => folder(d.file) !== 'contract').map((d) => `${d.file}: ${d.kind} ${d.name}`)).toEqual([]);
  const keys = defined.map((d) => `${d.kind} ${d.name}`);
  expect(keys.filter((k, i) => keys.indexOf(k) !== i)).toEqual([]);
});

test('every file of contract/ is under 400 lines', () => {
  const long = [...graph.keys()]
    .filter((file) => folder(file) === 'contract')
    .map((file) => ({ file, lines: readFileSync(join(ROOT, file), 'utf8').split('\n').length }))
    .filter((f) => f.lines > 400);
  expect(long).toEqual([]);
});
