/**
 * Network faults between the worker and everything readiness touches — both MariaDB servers,
 * sshd (both hosts), the AWS API — injected by fault proxies (test/helpers/fault-proxy.ts) on
 * the worker's connections only. Latency and transient resets are ridden out by retries; a
 * silent or refusing link that outlasts the step's budget is reported, naming the resource and
 * the cause, in bounded time.
 */
import { randomUUID } from 'node:crypto';
import { readiness } from '../../workflows';
import type { ReadinessReport } from '../../contract';
import { ensureRecentBackup } from '../helpers/backups';
import { recordChaos } from '../helpers/chaos';
import { activityRetries } from '../helpers/drive';
import { blackhole, delay, pass, proxyEstate, reset, resetNext, type ProxiedEstate } from '../helpers/fault-proxy';
import { buildAdapters, sandbox, temporal, type TemporalHarness } from '../helpers/stack';
import { restoreSandboxTopology } from '../helpers/topology';

jest.setTimeout(90_000);

describe('network faults under readiness (MariaDB, sshd, AWS)', () => {
  const loaded = sandbox();
  let estate: ProxiedEstate;
  let adapters: ReturnType<typeof buildAdapters>;
  let t: TemporalHarness;

  beforeAll(async () => {
    estate = await proxyEstate(loaded, {
      mysql: ['db-primary', 'db-replica'],
      ssh: ['primary-host', 'dr-host'],
      aws: true,
      awsTimeouts: { connectSeconds: 2, idleSeconds: 2 },
    });
    // One set of adapters for every case, as a long-lived worker has: pooled connections meet the faults too.
    adapters = buildAdapters(estate.loaded);
    t = await temporal(estate.loaded);
    await restoreSandboxTopology(t);
    // Readiness wants a recent verified backup of shop (taken without the proxies if there is none).
    const direct = buildAdapters(loaded);
    await ensureRecentBackup(t, direct.activities, 'shop').finally(() => direct.close());
  });
  afterEach(() => estate.setAll(pass));
  afterAll(async () => {
    await t?.close();
    await adapters?.close();
    await estate?.close();
  });

  async function runReadiness(): Promise<{ report: ReadinessReport; retries: number; seconds: number }> {
    const started = Date.now();
    return t.withWorkers(adapters.activities, async () => {
      const handle = await t.client.workflow.start(readiness, {
        taskQueue: t.taskQueue,
        workflowId: `chaos-readiness-shop-${randomUUID()}`,
        args: [{ service: 'shop' }],
      });
      const report = await handle.result();
      return { report, retries: await activityRetries(handle), seconds: (Date.now() - started) / 1000 };
    });
  }

  const failedChecks = (r: ReadinessReport) => r.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);

  test('250 ms of latency on every link: every check passes', async () => {
    estate.setAll(delay(250));
    const { report } = await runReadiness();
    recordChaos({
      fault: 'latency 250 ms to MariaDB, sshd, AWS API (readiness)',
      runs: 1,
      survived: report.ready ? 1 : 0,
      duplicated: 0,
    });
    expect(failedChecks(report)).toEqual([]);
    // The latency was on the path: the ping took at least one round trip through the delay.
    const ping = report.checks.find((c) => c.name === 'primary-database-reachable')!;
    expect(Number(/, (\d+) ms$/.exec(ping.detail)![1])).toBeGreaterThanOrEqual(250);
    for (const p of Object.values(estate.proxies)) expect(p.stats.bytesUp).toBeGreaterThan(0);
  });

  test('connection resets on every link (open connections and the next new one): ridden out by retries', async () => {
    const resetsBefore = Object.fromEntries(Object.entries(estate.proxies).map(([k, p]) => [k, p.stats.resets]));
    // The AWS SDK retries once by itself; two refused connections make the activity's own retry do the work.
    for (const [key, p] of Object.entries(estate.proxies)) p.set(resetNext(key === 'aws' ? 2 : 1));
    const { report, retries } = await runReadiness();
    recordChaos({
      fault: 'connection resets to MariaDB, sshd, AWS API (readiness)',
      runs: 1,
      survived: report.ready ? 1 : 0,
      duplicated: 0,
    });
    expect(failedChecks(report)).toEqual([]);
    // Every link really was reset, and activity retries (not luck) carried the run.
    for (const [key, p] of Object.entries(estate.proxies)) expect(p.stats.resets).toBeGreaterThan(resetsBefore[key]);
    expect(retries).toBeGreaterThanOrEqual(3);
  });

  test(
    'replica behind a black hole, sshd refusing: ' +
      'not ready, each failure names its resource and cause, in bounded time',
    async () => {
      estate.proxies['mysql:db-replica'].set(blackhole);
      estate.proxies['ssh:dr-host'].set(reset);
      const { report, seconds } = await runReadiness();
      const byName = Object.fromEntries(report.checks.map((c) => [c.name, c]));
      const named =
        !report.ready &&
        /MySQL server db-replica: (ETIMEDOUT|PROTOCOL_SEQUENCE_TIMEOUT)/.test(byName['replica-replicating'].detail) &&
        /dr-host \(127\.0\.0\.1:\d+\): .*ECONNRESET/.test(byName['dr-host-reachable'].detail);
      recordChaos({
        fault: 'db-replica black-holed, dr-host sshd resetting, beyond the budget (readiness)',
        runs: 1,
        survived: named ? 1 : 0,
        duplicated: 0,
      });
      expect(failedChecks(report)).toEqual([
        // The live topology read from the servers: the black-holed replica is evidence, not a guess.
        expect.stringMatching(
          /^topology: degraded: db-primary writable, but db-replica not replicating .*unreachable: db-replica/,
        ),
        expect.stringMatching(/^replica-replicating: MySQL server db-replica: (ETIMEDOUT|PROTOCOL_SEQUENCE_TIMEOUT): /),
        expect.stringMatching(
          /^replica-lag-within-rpo: MySQL server db-replica: (ETIMEDOUT|PROTOCOL_SEQUENCE_TIMEOUT): /,
        ),
        expect.stringMatching(/^dr-host-reachable: dr-host \(127\.0\.0\.1:\d+\): .*ECONNRESET/),
        expect.stringMatching(/^ssh-host-keys-match: dr-host \(127\.0\.0\.1:\d+\): .*ECONNRESET/),
      ]);
      // What the faults did not touch still reports healthy.
      expect(byName['primary-database-reachable'].ok).toBe(true);
      expect(byName['vip-on-primary-host'].ok).toBe(true);
      expect(byName['dns-record-present'].ok).toBe(true);
      // Bounded by the read and connect timeouts, not by the activities' start-to-close timeouts.
      expect(seconds).toBeLessThan(60);
    },
  );
});
