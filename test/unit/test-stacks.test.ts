/**
 * `scripts/stack.sh test` runs the chaos project on a second stack beside the first (docs/local-stack.md): the two
 * must share no port, data directory (where each keeps its secrets, logs and AWS call log), socket or network
 * namespace, or one stack's faults and side effects would show in the other's tests. Read from what
 * `stack.sh env` and `stack.sh env second` print, for the default offset and for a run beside it at offset 100.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const STACK_SH = path.join(__dirname, '..', '..', 'scripts', 'stack.sh');

/** The settings `stack.sh env [second]` prints, run with nothing of the caller's stack in its environment. */
function settings(offset: number, which: 'first' | 'second'): Record<string, string> {
  const out = execFileSync('bash', [STACK_SH, 'env', ...(which === 'second' ? ['second'] : [])], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DRBOOK_PORT_OFFSET: String(offset),
      DRBOOK_DATA: `/tmp/drbook-stacks-test-${offset}`,
    },
    encoding: 'utf8',
  });
  const vars: Record<string, string> = {};
  for (const m of out.matchAll(/^export (\w+)=(.*)$/gm)) if (m[1] !== 'PATH') vars[m[1]] = m[2];
  return vars;
}

/** What a stack holds alone: its ports, its paths (data, sockets, host trees, the AWS call log) and namespaces. */
function holdings(vars: Record<string, string>): string[] {
  const ports = Object.entries(vars)
    .filter(([k]) => k.endsWith('_PORT'))
    .map(([, v]) => `port ${v}`);
  const paths = ['DRBOOK_DATA', 'DRBOOK_PRIMARY_SOCKET', 'DRBOOK_REPLICA_SOCKET', 'DRBOOK_WIKI_UPLOADS']
    .map((k) => `path ${vars[k]}`)
    .concat(`path ${vars.DRBOOK_DATA}/run/aws-calls.jsonl`);
  const namespaces = [vars.DRBOOK_NETNS_PRIMARY, vars.DRBOOK_NETNS_DR].map((n) => `netns ${n}`);
  return [...ports, ...paths, ...namespaces];
}

describe('the two stacks of a test run share nothing', () => {
  test.each([0, 100])('offset %i: the second stack has its own ports, data, sockets and namespaces', (offset) => {
    const first = settings(offset, 'first');
    const second = settings(offset, 'second');
    expect(Object.keys(second).sort()).toEqual(Object.keys(first).sort());
    expect(Object.keys(first).filter((k) => k.endsWith('_PORT')).length).toBeGreaterThanOrEqual(13);
    expect(first.TEMPORAL_ADDRESS).toBe(`127.0.0.1:${first.DRBOOK_TEMPORAL_PORT}`);
    expect(second.TEMPORAL_ADDRESS).toBe(`127.0.0.1:${second.DRBOOK_TEMPORAL_PORT}`);
    const a = holdings(first);
    const b = holdings(second);
    expect(new Set(a).size).toBe(a.length);
    expect(new Set(b).size).toBe(b.length);
    expect(a.filter((h) => b.includes(h))).toEqual([]);
    // The second stack's data lives inside the first's: one directory to keep or remove.
    expect(second.DRBOOK_DATA.startsWith(`${first.DRBOOK_DATA}/`)).toBe(true);
  });

  test('a test run at offset 100 beside one at the default offset: four stacks, nothing shared', () => {
    const all = [0, 100].flatMap((offset) => [settings(offset, 'first'), settings(offset, 'second')]);
    const ports = all.flatMap((vars) => holdings(vars).filter((h) => h.startsWith('port ')));
    expect(new Set(ports).size).toBe(ports.length);
    const namespaces = all.flatMap((vars) => holdings(vars).filter((h) => h.startsWith('netns ')));
    expect(new Set(namespaces).size).toBe(namespaces.length);
  });
});
