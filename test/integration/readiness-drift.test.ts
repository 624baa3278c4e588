/**
 * Continuous readiness on the real stack: a readiness schedule of the test's own (paused, run by
 * trigger) with alertOnDrift. Break something → the next run sends exactly one alert naming the
 * check; the run after that, still broken, sends nothing; repaired → one recovery notice. Broken
 * for real: the replica's SQL thread stopped; the DNS record deleted from Route 53 (moto) and the
 * SSH host key pinned by the worker swapped (a copy of known_hosts holding another key).
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ChangeResourceRecordSetsCommand } from '@aws-sdk/client-route-53';
import type { ScheduleHandle } from '@temporalio/client';
import { awsConnectionFromInventory, AwsClients } from '../../activities/aws/clients';
import { resolvePath, type LoadedInventory } from '../../config/load';
import { scheduleOptions, drbookSchedules } from '../../cli/schedules';
import type { ReadinessReport } from '../../contract';
import { ensureRecentBackup } from '../helpers/backups';
import { buildAdapters, eventually, sandbox, sql, temporal, type TemporalHarness } from '../helpers/stack';

jest.setTimeout(240_000);

interface Notification {
  body: { subject: string; message: string; idempotencyKey: string };
}

describe('scheduled readiness: one alert when a check starts failing, one when it recovers', () => {
  const loaded = sandbox();
  const adapters = buildAdapters(loaded);
  const shop = loaded.inventory.services.find((s) => s.name === 'shop')!;
  const inbox = `${new URL(shop.health.httpUrl!).origin}/notifications`;
  const aws = new AwsClients(awsConnectionFromInventory(loaded.inventory, loaded.baseDir));
  let t: TemporalHarness;
  const created: ScheduleHandle[] = [];
  const tempDirs: string[] = [];

  beforeAll(async () => {
    t = await temporal(loaded);
    await ensureRecentBackup(t, adapters.activities, 'shop');
  });
  afterAll(async () => {
    for (const h of created) await h.delete().catch(() => undefined);
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
    await t.close();
    await adapters.close();
    aws.destroy();
  });

  /** shop's readiness schedule as reconcile declares it, under a test id and queue, paused (runs on trigger only). */
  async function readinessSchedule() {
    const decl = drbookSchedules(loaded.inventory, t.taskQueue).find((s) => s.id === 'drbook-readiness-shop')!;
    expect(decl.args).toEqual([{ service: 'shop', alertOnDrift: true }]);
    const tag = randomUUID().slice(0, 8);
    const id = `drbook-test-${tag}-readiness-shop`;
    const workflowId = `readiness-shop-test-${tag}`;
    const handle = await t.client.schedule.create({
      ...scheduleOptions({ ...decl, id, workflowId, paused: true }),
      scheduleId: id,
    });
    created.push(handle);
    let runs = 0;
    return {
      workflowId,
      /** Trigger one run with these activities on the workers; its report once it completes. */
      async run(activities = adapters.activities): Promise<ReadinessReport> {
        runs += 1;
        return t.withWorkers(activities, async () => {
          await handle.trigger();
          const action = await eventually(
            async () => (await handle.describe()).info.recentActions[runs - 1],
            60_000,
            `run ${runs} of ${id}`,
          );
          const wf = action.action.workflow;
          return (await t.client.workflow.getHandle(wf.workflowId, wf.firstExecutionRunId).result()) as ReadinessReport;
        });
      },
      /** What the on-call inbox received from this schedule's runs. */
      async alerts(): Promise<Notification['body'][]> {
        const all = (await (await fetch(inbox)).json()) as Notification[];
        return all.map((n) => n.body).filter((b) => b.idempotencyKey?.startsWith(`${workflowId}-`));
      },
    };
  }

  test(
    'replica SQL thread stopped: ' + 'one alert naming replica-replicating, silence while broken, one recovery',
    async () => {
      const s = await readinessSchedule();
      const first = await s.run();
      expect(first.checks.filter((c) => !c.ok)).toEqual([]);
      expect(first.drift).toEqual({ previous: null, newlyFailing: [], recovered: [], notified: false });

      const replica = await sql(loaded, 'db-replica');
      try {
        await replica.query('STOP SLAVE SQL_THREAD');
        const broken = await s.run();
        expect(broken.ready).toBe(false);
        expect(broken.checks.find((c) => c.name === 'replica-replicating')).toMatchObject({
          ok: false,
          detail: expect.stringMatching(/SQL thread stopped/),
        });
        // The live topology reads the same stopped SQL thread: the service is degraded (db-replica not replicating).
        expect(broken.drift).toMatchObject({
          newlyFailing: ['topology', 'replica-replicating'],
          recovered: [],
          notified: true,
        });
        expect(broken.drift!.previous).toMatch(new RegExp(`^${s.workflowId}-`));

        const still = await s.run();
        expect(still.drift).toMatchObject({ newlyFailing: [], recovered: [], notified: false });
      } finally {
        await replica.query('START SLAVE SQL_THREAD');
        await replica.end();
      }
      const repaired = await s.run();
      expect(repaired.ready).toBe(true);
      expect(repaired.drift).toMatchObject({
        newlyFailing: [],
        recovered: ['topology', 'replica-replicating'],
        notified: true,
      });

      const alerts = await s.alerts();
      expect(alerts.map((a) => a.subject)).toEqual([
        '[drbook] shop readiness drift: topology, replica-replicating failing',
        '[drbook] shop readiness recovered: topology, replica-replicating',
      ]);
      expect(alerts[0].message).toMatch(
        /FAILING replica-replicating: db-replica: IO thread running, SQL thread stopped/,
      );
    },
  );

  test('DNS record deleted and the SSH host key changed: one alert naming both, then one recovery', async () => {
    const s = await readinessSchedule();
    expect((await s.run()).ready).toBe(true);

    // A worker whose pinned key for the sshd is another key: what a replaced (or spoofed) host looks like.
    const dir = mkdtempSync(path.join(tmpdir(), 'drbook-hostkey-'));
    tempDirs.push(dir);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'other')]);
    const otherKey = readFileSync(path.join(dir, 'other.pub'), 'utf8').split(' ')[1];
    const hostKey = loaded.inventory.sshHosts['primary-host'].hostKey;
    if (!('knownHostsFile' in hostKey)) throw new Error('the sandbox pins host keys with a known_hosts file');
    const knownHosts = readFileSync(resolvePath(loaded.baseDir, hostKey.knownHostsFile), 'utf8');
    const swapped = path.join(dir, 'known_hosts');
    writeFileSync(
      swapped,
      knownHosts.replace(/^(\S+ ssh-ed25519 )\S+/gm, (_m, prefix: string) => `${prefix}${otherKey}`),
    );
    expect(readFileSync(swapped, 'utf8')).not.toBe(knownHosts);
    const wrongKey: LoadedInventory = {
      ...loaded,
      inventory: {
        ...loaded.inventory,
        sshHosts: Object.fromEntries(
          Object.entries(loaded.inventory.sshHosts).map(([n, h]) => [
            n,
            { ...h, hostKey: { knownHostsFile: swapped } },
          ]),
        ),
      },
    };
    const wrongKeyAdapters = buildAdapters(wrongKey);

    const dns = shop.dns!;
    const record = (await adapters.activities.readDnsRecord({
      zone: dns.hostedZone,
      name: dns.record,
      type: dns.type,
    }))!;
    const change = (Action: 'DELETE' | 'UPSERT') =>
      aws.route53().send(
        new ChangeResourceRecordSetsCommand({
          HostedZoneId: record.zoneId,
          ChangeBatch: {
            Changes: [
              {
                Action,
                ResourceRecordSet: {
                  Name: record.name,
                  Type: dns.type,
                  TTL: record.ttl ?? dns.ttl,
                  ResourceRecords: record.values.map((Value) => ({ Value })),
                },
              },
            ],
          },
        }),
      );
    try {
      await change('DELETE');
      const broken = await s.run(wrongKeyAdapters.activities);
      const failing = Object.fromEntries(broken.checks.filter((c) => !c.ok).map((c) => [c.name, c.detail]));
      expect(failing['dns-record-present']).toMatch(
        /db\.shop\.sandbox\.internal CNAME is missing from sandbox\.internal/,
      );
      expect(failing['ssh-host-keys-match']).toMatch(
        /dr-host .*presented host key SHA256:\S+, which is not the pinned key/,
      );
      expect(failing['ssh-host-keys-match']).toMatch(/primary-host .*not the pinned key/);
      expect(broken.drift).toMatchObject({ recovered: [], notified: true });
      expect(broken.drift!.newlyFailing).toEqual(expect.arrayContaining(['dns-record-present', 'ssh-host-keys-match']));

      expect((await s.run(wrongKeyAdapters.activities)).drift).toMatchObject({ newlyFailing: [], notified: false });
    } finally {
      await change('UPSERT');
      await wrongKeyAdapters.close();
    }
    const repaired = await s.run();
    expect(repaired.ready).toBe(true);
    expect(repaired.drift!.recovered).toEqual(expect.arrayContaining(['dns-record-present', 'ssh-host-keys-match']));

    const alerts = await s.alerts();
    expect(alerts).toHaveLength(2);
    expect(alerts[0].subject).toMatch(/^\[drbook\] shop readiness drift: .*dns-record-present.* failing$/);
    expect(alerts[0].subject).toMatch(/ssh-host-keys-match/);
    expect(alerts[1].subject).toMatch(/^\[drbook\] shop readiness recovered: .*dns-record-present/);
  });
});
