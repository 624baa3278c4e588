/**
 * Secrets never on a command line nor in a spawned tool's environment, checked while it happens:
 * a sampler (test/helpers/proc-sampler.ts) reads every process's /proc/<pid>/cmdline, and the
 * environment of every process the worker and the sandbox sshd start, every few milliseconds,
 * while real runbooks run on the stack:
 *
 * - nightlyBackup of shop: the logical dump (mariadb-dump | dd | zstd) and, switched on in this
 *   test's copy of the inventory, the physical one (mariabackup | zstd); snapshots off (AWS API
 *   calls only, no process);
 * - restoreTest of that backup: zstd -d | mariadb into the scratch server, and the physical restore;
 * - a drill failover of shop and its failback (a switchover and back): the VIP moves over SSH, so
 *   sshd's sessions run `ip addr` commands.
 *
 * No value of test/helpers/secrets.ts (database, replication and application passwords, the AWS
 * secret key, the SSH private key in 40-character runs) may appear in any of them. The sampler must
 * also prove it works: it sees a canary on a deliberately spawned short-lived process's command
 * line and in another one's environment, and it sampled mariadb-dump, mariadb, zstd, mariabackup
 * and an SSH session's command, and read the environment of the tools, by name.
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { nightlyBackup, restoreTest } from '../../workflows';
import { isolatedBackups } from '../helpers/backups';
import { approvedFailback, approvedFailover } from '../helpers/drive';
import { startProcSampler, type Sampling } from '../helpers/proc-sampler';
import { sandboxSecrets } from '../helpers/secrets';
import { buildAdapters, ROOT, sandbox, temporal, type TemporalHarness } from '../helpers/stack';

jest.setTimeout(480_000);

const base = sandbox();
const t = isolatedBackups(
  base,
  (inventory) => {
    inventory.services.find((s) => s.name === 'shop')!.backup!.physical = true;
  },
  'drbook-cmdline-audit',
);

/** Run `command` with `args` (and `env`) to its end: a process the sampler has only its short life to see. */
const runBriefly = (command: string, args: string[], env: NodeJS.ProcessEnv = process.env) =>
  new Promise<void>((resolve, reject) =>
    spawn(command, args, { env, stdio: 'ignore' })
      .once('error', reject)
      .once('exit', () => resolve()),
  );

describe('secrets on command lines and in spawned environments, sampled from /proc while runbooks run', () => {
  const adapters = buildAdapters(t.loaded);
  let h: TemporalHarness;
  let restoreLifecycles: () => Promise<void> = async () => undefined;
  let backupId: string | undefined;

  beforeAll(async () => {
    h = await temporal(t.loaded);
    restoreLifecycles = await t.keepLifecycles();
  });
  afterAll(async () => {
    await h?.terminate(['failover-shop', 'failback-shop']);
    await restoreLifecycles();
    await h?.close();
    await adapters.close();
    await t.cleanUp();
  });

  test('no secret value in any process seen; the sampler saw its canaries and the tools by name', async () => {
    const secrets = sandboxSecrets(t.loaded);
    const sshd = Number(
      readFileSync(path.join(process.env.DRBOOK_DATA ?? path.join(ROOT, '.data'), 'run', 'sshd.pid')),
    );
    // This process hosts the worker (its tools are its children); sshd's sessions run the SSH steps' commands.
    const sampler = await startProcSampler({ environOf: [process.pid, sshd] });
    const canary = {
      cmdline: `drbook-canary-${randomBytes(12).toString('hex')}`,
      environ: randomBytes(12).toString('hex'),
    };
    let sampling: Sampling;
    const started = Date.now();
    try {
      // Short-lived, as the tools are: sh's $0 carries the canary for a quarter of a second.
      await runBriefly('sh', ['-c', 'sleep 0.25', canary.cmdline]);
      await runBriefly('sleep', ['0.25'], { ...process.env, DRBOOK_AUDIT_CANARY: canary.environ });

      await h.withWorkers(adapters.activities, async () => {
        const summary = await h.client.workflow.execute(nightlyBackup, {
          args: [{ services: ['shop'], snapshots: false }],
          taskQueue: h.taskQueue,
          workflowId: `audit-cmdline-backup-${randomUUID().slice(0, 8)}`,
          workflowExecutionTimeout: '180s',
        });
        backupId = summary.backupId;
        const restored = await h.client.workflow.execute(restoreTest, {
          args: [{ service: 'shop', backupId, rds: false }],
          taskQueue: h.taskQueue,
          workflowId: `audit-cmdline-restore-${randomUUID().slice(0, 8)}`,
          workflowExecutionTimeout: '180s',
        });
        expect(restored).toMatchObject({ service: 'shop' });

        const failover = await approvedFailover(h, {
          service: 'shop',
          mode: 'drill',
          reason: 'audit: secrets on command lines',
        });
        expect(await failover.result()).toMatchObject({ outcome: 'completed', newPrimary: 'db-replica' });
        expect((await approvedFailback(h, 'shop')).outcome).toBe('completed');
      });
    } finally {
      sampling = await sampler.stop();
    }
    const { processes, passes, intervalMs } = sampling;
    const environs = processes.filter((p) => p.environ !== undefined);
    console.log(
      `cmdline audit: ${passes} passes over /proc in ${Math.round((Date.now() - started) / 1000)} s ` +
        `(interval median ${intervalMs.median} ms, p99 ${intervalMs.p99} ms, max ${intervalMs.max} ms); ` +
        `${processes.length} command lines, ${environs.length} environments; ` +
        `by name: ${['mariadb-dump', 'mariadb', 'zstd', 'mariabackup', 'dd']
          .map((n) => `${n} ${processes.filter((p) => p.comm === n).length}`)
          .join(', ')}`,
    );

    // The sampler works: it saw both canaries, and the tools by name, with their environments.
    expect(processes.some((p) => p.cmdline.includes(canary.cmdline))).toBe(true);
    expect(environs.some((p) => p.environ!.includes(`DRBOOK_AUDIT_CANARY=${canary.environ}`))).toBe(true);
    const seen = (comm: string, withEnviron = false) =>
      processes.some((p) => p.comm === comm && (!withEnviron || p.environ !== undefined));
    expect({
      'mariadb-dump': seen('mariadb-dump', true),
      mariadb: seen('mariadb', true),
      zstd: seen('zstd', true),
      mariabackup: seen('mariabackup', true),
    }).toEqual({ 'mariadb-dump': true, mariadb: true, zstd: true, mariabackup: true });
    // An SSH step's command, run by an sshd session (the VIP moves), with its environment.
    expect(environs.some((p) => /\bip addr (add|del) /.test(p.cmdline))).toBe(true);

    // No secret anywhere (named by where it comes from and where it was seen, never by value).
    const leaks = processes.flatMap((p) =>
      [...secrets]
        .flatMap(([where, value]) => [
          p.cmdline.includes(value) ? `${where} on the command line of ${p.comm} (pid ${p.pid})` : '',
          p.environ?.includes(value) ? `${where} in the environment of ${p.comm} (pid ${p.pid})` : '',
        ])
        .filter(Boolean),
    );
    expect(leaks).toEqual([]);
  });
});
