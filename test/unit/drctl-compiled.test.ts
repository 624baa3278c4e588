/**
 * drctl works from compiled JavaScript, not only under ts-node: cli/drctl.ts and what it imports are compiled by
 * tsc (the repository's tsconfig.json) into a temporary directory, and `drctl --help` and each command's `--help`
 * run from the .js files there list every command the TypeScript program registers (restore-test included: it
 * was registered only when workflows/restore-test.ts sat beside the running file).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildProgram } from '../../cli/drctl';

const ROOT = path.join(__dirname, '..', '..');
const ENTRY = 'cli/drctl.ts';
let outDir: string;

beforeAll(() => {
  outDir = mkdtempSync(path.join(os.tmpdir(), 'drctl-js-'));
  const tsconfig = path.join(outDir, 'tsconfig.json');
  writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: path.join(ROOT, 'tsconfig.json'),
      // Types are checked by `tsc --noEmit -p .`; here only what it emits matters.
      compilerOptions: {
        outDir,
        rootDir: ROOT,
        noEmit: false,
        noCheck: true,
        typeRoots: [path.join(ROOT, 'node_modules', '@types')],
      },
      files: [path.join(ROOT, ENTRY)],
      include: [],
    }),
  );
  const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', tsconfig], {
    encoding: 'utf8',
  });
  if (tsc.status !== 0) throw new Error(`tsc failed: ${tsc.stdout}${tsc.stderr}`);
}, 120_000);

afterAll(() => rmSync(outDir, { recursive: true, force: true }));

const compiledJs = () => path.join(outDir, ENTRY.replace(/\.ts$/, '.js'));
/** node outside the repository, on the compiled .js: node_modules found through NODE_PATH only. */
function node(args: string[]) {
  const r = spawnSync(process.execPath, args, {
    encoding: 'utf8',
    env: { ...process.env, NODE_PATH: path.join(ROOT, 'node_modules') },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const commands = buildProgram().commands.map((c) => c.name());

test('the TypeScript program has every command group, restore-test among them', () => {
  expect(commands).toEqual(
    expect.arrayContaining(['failover', 'failback', 'drill', 'backup', 'restore-test', 'approve', 'status']),
  );
  expect(commands).toEqual(expect.arrayContaining(['abort', 'resolve', 'runs', 'report', 'readiness', 'schedules']));
});

test('compiled drctl --help lists every command', () => {
  const help = node([compiledJs(), '--help']);
  expect(help).toMatchObject({ code: 0, err: '' });
  const listed = [...help.out.matchAll(/^ {2}([a-z][a-z-]*) /gm)].map((m) => m[1]).filter((name) => name !== 'help');
  expect(listed.sort()).toEqual([...commands].sort());
});

test("compiled drctl <command> --help shows each command's usage", () => {
  // One process for all of them: runDrctl from the compiled module, each command's help captured.
  const script = `
    const { runDrctl } = require(${JSON.stringify(compiledJs())});
    (async () => {
      const helps = {};
      for (const command of ${JSON.stringify(commands)}) {
        let out = '';
        const code = await runDrctl([command, '--help'], { io: { out: (t) => (out += t), err: (t) => (out += t) } });
        helps[command] = { code, usage: out.split('\\n')[0] };
      }
      process.stdout.write(JSON.stringify(helps));
    })();`;
  const r = node(['-e', script]);
  expect(r).toMatchObject({ code: 0, err: '' });
  const helps = JSON.parse(r.out) as Record<string, { code: number; usage: string }>;
  for (const command of commands)
    expect(helps[command]).toEqual({ code: 0, usage: expect.stringMatching(new RegExp(`^Usage: drctl ${command} `)) });
});
