/**
 * Names and values that reach a shell, a command line or an option file are refused or escaped
 * before they can become more than a value:
 * - `vip.device` in the inventory, and again where readiness builds its remote `ip` command (a plan
 *   that did not come through the inventory's validation);
 * - option-file values (client defaults files) with newlines and quotes, read back by the real
 *   `my_print_defaults`: one option each, the value exactly as given; a NUL is refused.
 * (Database names read from a re-clone's source: test/integration/reclone-names.test.ts.)
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import YAML from 'yaml';
import { InventoryError, parseInventory, drTaskQueue } from '../../contract';
import { expandEnv } from '../../config/load';
import { optionValue, writeClientDefaults } from '../../activities/process/defaults-file';
import { readiness } from '../../workflows';
import { SANDBOX_INVENTORY, workflowBundle } from '../helpers/stack';
import { stubs, timeSkippingEnv } from '../helpers/stubs';

jest.setTimeout(240_000);

const HOSTILE_DEVICES = ['eth0; touch /tmp/drbook-pwned', '$(id)', '-x', 'eth0 up', "eth0'"];

describe('vip.device', () => {
  test.each(HOSTILE_DEVICES)('the inventory refuses %j, naming services.0.vip.device', (device) => {
    const doc = YAML.parse(expandEnv(readFileSync(SANDBOX_INVENTORY, 'utf8'), {}, []));
    doc.services[0].vip.device = device;
    let problems: string[] = [];
    try {
      parseInventory(doc);
    } catch (err) {
      if (!(err instanceof InventoryError)) throw err;
      problems = err.problems;
    }
    expect(problems).toEqual([expect.stringMatching(/^services\.0\.vip\.device: a network device name/)]);
  });

  describe('readiness, given a plan that skipped validation', () => {
    let env: TestWorkflowEnvironment;
    beforeAll(async () => {
      env = await timeSkippingEnv();
    });
    afterAll(async () => {
      await env?.teardown();
    });

    test('never sends the device to a remote shell and fails the VIP checks naming vip.device', async () => {
      const device = 'eth0; touch /tmp/drbook-pwned';
      const s = stubs({ primaryReachable: true, heartbeatLagSeconds: 0.5 });
      const commands: string[] = [];
      // The checks this test is not about fail at once (an unregistered activity would be retried).
      const notHere = async () => {
        throw ApplicationFailure.nonRetryable('not part of this test', 'NotConfigured');
      };
      const activities = {
        ...Object.fromEntries(
          [
            'describeRdsInstance',
            'findInstancesByTags',
            'pickNewestVerifiedBackup',
            'pingDatabase',
            'readDnsRecord',
            'readReplicationStatus',
            'readTargetHealth',
          ].map((name) => [name, notHere]),
        ),
        ...s.activities,
        describeService: async (input: { service: string }) => {
          const plan = await s.activities.describeService(input);
          return { ...plan, service: { ...plan.service, vip: { ...plan.service.vip!, device } } };
        },
        runRemoteCommand: async ({ command }: { host: string; command: string }) => {
          commands.push(command);
          return { exitCode: 0, stdout: '', stderr: '' };
        },
      };
      const taskQueue = `unit-${Math.random().toString(36).slice(2)}`;
      const bundle = await workflowBundle();
      const workers = await Promise.all(
        [taskQueue, drTaskQueue(taskQueue, 'us-west-2')].map((q) =>
          Worker.create({ connection: env.nativeConnection, taskQueue: q, workflowBundle: bundle, activities }),
        ),
      );
      const report = await workers[0].runUntil(() =>
        workers[1].runUntil(() =>
          env.client.workflow.execute(readiness, {
            taskQueue,
            workflowId: `readiness-${taskQueue}`,
            args: [{ service: 'shop' }],
          }),
        ),
      );
      expect(commands.filter((c) => c.includes('touch'))).toEqual([]);
      const vipChecks = report.checks.filter((c) => ['vip-on-primary-host', 'dr-host-reachable'].includes(c.name));
      expect(vipChecks).toHaveLength(2);
      for (const c of vipChecks) {
        expect(c.ok).toBe(false);
        expect(c.detail).toContain(`vip.device ${JSON.stringify(device)} is not a network device name`);
      }
    });
  });
});

describe('option-file values', () => {
  test('newlines, quotes, backslashes and tabs stay inside one value (read back by my_print_defaults)', async () => {
    const password = 'p"a\\ss\nhost=attacker.example\r\n[mysqld]\tinit-file=/tmp/x #not a comment';
    const user = 'drbook\nprotocol=socket';
    const { dir, file } = await writeClientDefaults({ host: '127.0.0.1', port: 3306, user, password });
    try {
      const out = execFileSync('my_print_defaults', [`--defaults-file=${file}`, 'client'], { encoding: 'utf8' });
      // my_print_defaults prints one "--name=value" per option; values may hold newlines, so split on "\n--".
      const options = `\n${out.replace(/\n$/, '')}`.split('\n--').slice(1);
      expect(options).toEqual([`user=${user}`, `password=${password}`, 'host=127.0.0.1', 'port=3306']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a NUL byte is refused, never cut short', () => {
    expect(() => optionValue('secret\0rest')).toThrow(/NUL/);
  });
});
