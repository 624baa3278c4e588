/** The real worker process, started with a bad inventory: it must stop before connecting, listing every problem. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT } from '../helpers/stack';

test('a bad inventory stops the worker with every problem listed by path', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'drbook-worker-'));
  const file = path.join(dir, 'broken.yaml');
  writeFileSync(
    file,
    [
      'version: 1',
      'regions: { primary: us-east-1, dr: nowhere }',
      'approvers: [{ name: Alice }]',
      'services:',
      '  - { name: shop, tier: gold, strategy: warm, dns: { hostedZone: z, record: r, primaryValue: a, ' +
        'drValue: b, ttl: 0 } }',
    ].join('\n'),
  );
  const run = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', 'workers/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, DRBOOK_INVENTORY: file, TEMPORAL_ADDRESS: '127.0.0.1:1', DRBOOK_METRICS_PORT: '0' },
    encoding: 'utf8',
    timeout: 60000,
  });
  expect(run.status).toBe(1);
  expect(run.stderr).toContain(`${file}: 4 problem(s) in the inventory`);
  for (const p of ['regions.dr', 'approvers.0.name', 'services.0.tier', 'services.0.dns.ttl']) {
    expect(run.stderr).toContain(`  - ${p}: `);
  }
  expect(run.stdout).not.toContain('worker ready');
});
