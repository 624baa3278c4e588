/**
 * The suite's cached workflow bundle (test/helpers/stack.ts) is keyed by a digest of BUNDLE_SOURCE_DIRS: every
 * file of ours the bundle holds must sit in one of them, or an edit to it would serve a stale bundle.
 */
import path from 'node:path';
import { BUNDLE_SOURCE_DIRS, ROOT, workflowBundle } from '../helpers/stack';

test('every source file in the workflow bundle is under a folder its cache digest reads', async () => {
  // The SDK inlines the source map at the end of the code (its separate sourceMap field is deprecated).
  const { code } = await workflowBundle();
  const inline = /sourceMappingURL=data:application\/json;(?:charset=utf-8;)?base64,([A-Za-z0-9+/=]+)\s*$/.exec(code);
  expect(inline).not.toBeNull();
  const sources = (JSON.parse(Buffer.from(inline![1], 'base64').toString('utf8')) as { sources: string[] }).sources;
  const ours = sources
    .map((s) => s.replace(/^webpack:\/\/[^/]*\//, ''))
    .map((s) => path.relative(ROOT, path.resolve(ROOT, s)))
    .filter((s) => !s.startsWith('..') && !s.includes('node_modules') && /\.ts$/.test(s));
  expect(ours.length).toBeGreaterThan(20);
  expect(ours.filter((s) => s.startsWith('contract/'))).not.toHaveLength(0);
  const outside = ours.filter((s) => !BUNDLE_SOURCE_DIRS.includes(s.split(path.sep)[0]));
  expect(outside).toEqual([]);
});
