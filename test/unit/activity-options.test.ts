/**
 * One place for activity options: workflows/activity-options.ts. Read from the source with the TypeScript compiler
 * API: no other workflow file builds an activity proxy or writes a timeout or retry policy of its own.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

const WORKFLOWS = join(__dirname, '../../workflows');
const OPTIONS_MODULE = 'activity-options.ts';
/** Keys that make an activity's options: written only in the options module. */
const OPTION_KEYS = new Set([
  'startToCloseTimeout',
  'scheduleToCloseTimeout',
  'heartbeatTimeout',
  'retry',
  'maximumAttempts',
  'nonRetryableErrorTypes',
]);

function workflowSources(): { file: string; source: ts.SourceFile }[] {
  return readdirSync(WORKFLOWS)
    .filter((f) => f.endsWith('.ts'))
    .map((file) => {
      const text = readFileSync(join(WORKFLOWS, file), 'utf8');
      return { file, source: ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true) };
    });
}

/** Every place in `source` that builds activity options or a proxy, as "file:line what". */
function optionSites(file: string, source: ts.SourceFile): string[] {
  const sites: string[] = [];
  const at = (node: ts.Node) => `${file}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
  const visit = (node: ts.Node) => {
    if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'proxyActivities') {
      sites.push(`${at(node)} proxyActivities`);
    }
    if (ts.isPropertyAssignment(node) && ts.isIdentifier(node.name) && OPTION_KEYS.has(node.name.text)) {
      sites.push(`${at(node)} ${node.name.text}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return sites;
}

describe('activity options live in workflows/activity-options.ts', () => {
  test('no other workflow file calls proxyActivities or writes timeouts and retry policies', () => {
    const elsewhere = workflowSources()
      .filter(({ file }) => file !== OPTIONS_MODULE)
      .flatMap(({ file, source }) => optionSites(file, source));
    expect(elsewhere).toEqual([]);
  });

  test('the options module is where the proxies are built (the check above reads the right thing)', () => {
    const own = workflowSources().find(({ file }) => file === OPTIONS_MODULE);
    expect(own).toBeDefined();
    const sites = optionSites(own!.file, own!.source);
    expect(sites.some((s) => s.endsWith('proxyActivities'))).toBe(true);
    expect(sites.some((s) => s.endsWith('startToCloseTimeout'))).toBe(true);
  });
});
