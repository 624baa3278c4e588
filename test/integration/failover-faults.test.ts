/**
 * Failover when things are wrong, on the real local stack: the primary's mariadbd killed,
 * a replica lagging past the RPO, a replica whose SQL thread is stopped; and the hot
 * strategy. Each test puts the original topology back.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowFailedError } from '@temporalio/client';
import type { RowDataPacket } from 'mysql2';
import type { LoadedInventory } from '../../config/load';
import { failback, failover, serviceBackup } from '../../workflows';
import { abortSignal, approveUpdate, statusQuery } from '../../contract';
import { recordChaos } from '../helpers/chaos';
import { approvedFailback, approvedFailover, approveFully, approveGates, startRunbook } from '../helpers/drive';
import { readEstate, writeLoad } from '../helpers/estate';
import {
  atGate,
  buildAdapters,
  eventually,
  failureType,
  ROOT,
  sandbox,
  sql,
  temporal,
  type TemporalHarness,
} from '../helpers/stack';

jest.setTimeout(300_000);

const dataDir = process.env.DRBOOK_DATA ?? path.join(ROOT, '.data');

describe('failover faults and strategies', () => {
  const loaded = sandbox();
  // shop held to a 2 s RPO, so a deliberately delayed replica is "too far behind" within seconds.
  const strict: LoadedInventory = {
    ...loaded,
    inventory: {
      ...loaded.inventory,
      services: loaded.inventory.services.map((s) => (s.name === 'shop' ? { ...s, targets: { rto: 900, rpo: 2 } } : s)),
    },
  };
  const adapters = buildAdapters(loaded);
  const strictAdapters = buildAdapters(strict);
  let t: TemporalHarness;

  beforeAll(async () => {
    t = await temporal(loaded);
  });
  afterEach(() =>
    t.terminate(['failover-shop', 'failback-shop', 'failover-catalog', 'failback-catalog', 'failover-wiki']),
  );
  afterAll(async () => {
    await t.close();
    await adapters.close();
    await strictAdapters.close();
  });

  async function onReplica(statements: string[]) {
    const c = await sql(loaded, 'db-replica');
    try {
      for (const s of statements) await c.query(s);
    } finally {
      await c.end();
    }
  }

  async function failBackShop({ discardDivergent = false } = {}) {
    return t.withWorkers(adapters.activities, async () => {
      const handle = await startRunbook(t, failback, { service: 'shop', mode: 'drill' });
      if (discardDivergent) {
        const gate = await atGate(handle, 'discard-divergent');
        expect(gate.pendingApproval!.question).toMatch(
          /db-primary holds \d+ transaction\(s\) that never reached db-replica/,
        );
        await approveGates(handle, [{ step: 'discard-divergent', approver: 'carol', comment: 'DR data wins' }]);
      }
      await approveGates(handle, [{ step: 'switch-back', approver: 'bob' }]);
      return handle.result();
    });
  }

  test('hot strategy: DNS moves to the DR side and back; no database is touched', async () => {
    const before = await readEstate(loaded, adapters);
    const catalog = loaded.inventory.services.find((s) => s.name === 'catalog')!;
    const dnsValue = async () =>
      (await adapters.activities.readDnsRecord({
        zone: catalog.dns!.hostedZone,
        name: catalog.dns!.record,
        type: 'CNAME',
      }))!.values;
    const report = await t.withWorkers(adapters.activities, async () => {
      const handle = await approvedFailover(t, { service: 'catalog', mode: 'drill', reason: 'hot strategy test' });
      return handle.result();
    });
    expect(report.outcome).toBe('completed');
    expect(report.measured.rpoSeconds).toBe(0);
    expect(await dnsValue()).toEqual([catalog.dns!.drValue]);
    expect(report.steps.filter((s) => s.state === 'succeeded').map((s) => s.name)).toEqual([
      'lock',
      'assess',
      'approve-promote',
      'switch-dns',
      'notify-people',
      'verify-health',
    ]);

    const back = await t.withWorkers(adapters.activities, () => approvedFailback(t, 'catalog'));
    expect(back.outcome).toBe('completed');
    expect(await dnsValue()).toEqual([catalog.dns!.primaryValue]);
    expect(await readEstate(loaded, adapters)).toEqual(before);
  });

  test.each(['SQL', 'IO'])(
    'a replica whose %s thread is stopped is refused before anything changes',
    async (thread) => {
      const before = await readEstate(loaded, adapters);
      await onReplica([`STOP SLAVE ${thread}_THREAD`]);
      try {
        const err = await t.withWorkers(adapters.activities, () =>
          t.client.workflow
            .execute(failover, {
              taskQueue: t.taskQueue,
              workflowId: 'failover-shop',
              args: [{ service: 'shop', mode: 'drill', reason: 'broken replica test' }],
            })
            .catch((e: unknown) => e),
        );
        const cause = (err as WorkflowFailedError).cause;
        const promoted = (await readEstate(loaded, adapters)).replica.readOnly === false;
        // A row of the chaos table (test/helpers/chaos.ts): refused, and the replica left a replica.
        recordChaos({
          fault: `replica ${thread} thread stopped (shop failover)`,
          runs: 1,
          survived: failureType(cause) === 'ReplicationBroken' && !promoted ? 1 : 0,
          duplicated: 0,
        });
        expect(failureType(cause)).toBe('ReplicationBroken');
        expect(cause?.message).toMatch(
          new RegExp(`step assess failed: db-replica is not replicating .*${thread} thread stopped`),
        );
      } finally {
        await onReplica([`START SLAVE ${thread}_THREAD`]);
      }
      expect(await readEstate(loaded, adapters)).toEqual({ ...before, replica: { ...before.replica } });
    },
  );

  test('a replica lagging past the RPO is not promoted without an explicit override', async () => {
    const before = await readEstate(loaded, adapters);
    // A delayed replica: both threads run, it is simply behind (MASTER_DELAY).
    await onReplica(['STOP SLAVE', 'CHANGE MASTER TO MASTER_DELAY = 8', 'START SLAVE']);
    try {
      await eventually(
        async () => {
          const l = await adapters.activities.measureReplicaLag({
            primary: 'db-primary',
            replica: 'db-replica',
            heartbeatTable: 'drbook.heartbeat',
          });
          return (l.heartbeatLagSeconds ?? 0) > 4;
        },
        30_000,
        'the replica to fall 4 s behind',
      );
      const err = await t.withWorkers(strictAdapters.activities, async () => {
        const handle = await t.client.workflow.start(failover, {
          taskQueue: t.taskQueue,
          workflowId: 'failover-shop',
          args: [{ service: 'shop', mode: 'drill', reason: 'lagging replica test' }],
        });
        const gate = await atGate(handle, 'promote');
        expect(gate.pendingApproval).toMatchObject({ requireOverrideRpo: true });
        expect(gate.pendingApproval!.question).toMatch(/over the 2 s RPO: needs overrideRpo/);
        await handle.executeUpdate(approveUpdate, {
          args: [{ step: 'promote', approver: 'alice', comment: 'no override' }],
        });
        await handle.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'bob' }] });
        // The approvers shop needs (two), but no override: the gate stays shut.
        expect((await handle.query(statusQuery)).pendingApproval).toMatchObject({ step: 'promote', needed: 0 });
        await handle.signal(abortSignal, { by: 'alice', reason: 'replica too far behind' });
        return handle.result().catch((e: unknown) => e);
      });
      const promoted = (await readEstate(loaded, adapters)).replica.readOnly === false;
      recordChaos({
        fault: 'replica lagging past the RPO, approved without override (shop failover)',
        runs: 1,
        survived: failureType((err as WorkflowFailedError).cause) === 'Aborted' && !promoted ? 1 : 0,
        duplicated: 0,
      });
      expect(failureType((err as WorkflowFailedError).cause)).toBe('Aborted');
    } finally {
      await onReplica(['STOP SLAVE', 'CHANGE MASTER TO MASTER_DELAY = 0', 'START SLAVE']);
    }
    const after = await readEstate(loaded, adapters);
    expect(after.primary).toEqual(before.primary);
    expect(after.vip).toEqual(before.vip);
    expect(after.dns).toEqual(before.dns);
    expect(after.replica.readOnly).toBe(true);
  });

  test('cold strategy: the newest verified backup is restored into the DR server, which takes over', async () => {
    const wiki = loaded.inventory.services.find((s) => s.name === 'wiki')!;
    const dnsValue = async () =>
      (await adapters.activities.readDnsRecord({ zone: wiki.dns!.hostedZone, name: wiki.dns!.record, type: 'CNAME' }))!
        .values;
    const count = async (server: string) => {
      const c = await sql(loaded, server);
      try {
        const [rows] = await c.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM wiki.pages');
        return Number(rows[0].n);
      } finally {
        await c.end();
      }
    };
    const pages = await count('db-scratch');
    try {
      const report = await t.withWorkers(adapters.activities, async () => {
        // A verified backup first, made by the backup runbook itself.
        const backup = await t.client.workflow.execute(serviceBackup, {
          taskQueue: t.taskQueue,
          workflowId: `backup-wiki-${t.taskQueue}`,
          args: [{ service: 'wiki', snapshots: false }],
        });
        expect(backup.copies.length).toBeGreaterThanOrEqual(2);
        const handle = await t.client.workflow.start(failover, {
          taskQueue: t.taskQueue,
          workflowId: 'failover-wiki',
          args: [{ service: 'wiki', mode: 'drill', reason: 'cold strategy test' }],
        });
        const gate = await atGate(handle, 'promote');
        expect(gate.pendingApproval!.question).toMatch(/cold: restore backup \S+ .* into db-cold-dr/);
        await handle.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'carol' }] });
        return handle.result();
      });
      expect(report.outcome).toBe('completed');
      expect(report.newPrimary).toBe('db-cold-dr');
      expect(report.steps.map((s) => s.name)).toEqual(
        expect.arrayContaining(['fence', 'restore-backup', 'promote', 'switch-dns', 'verify-writes']),
      );
      expect(report.measured.rpoSeconds).toBeGreaterThanOrEqual(0); // the backup's age at the incident
      expect(report.measured.rpoSeconds).toBeLessThan(600);
      expect(await count('db-cold-dr')).toBe(pages);
      expect((await adapters.activities.pingDatabase({ server: 'db-cold-dr' })).readOnly).toBe(false);
      expect((await adapters.activities.pingDatabase({ server: 'db-scratch' })).readOnly).toBe(true); // fenced
      expect(await dnsValue()).toEqual([wiki.dns!.drValue]);
    } finally {
      // Cold failover has no failback runbook: put the sandbox back by hand.
      await adapters.activities
        .unfencePrimary({ server: 'db-scratch', heartbeatEvent: 'drbook.heartbeat_tick' })
        .catch(() => undefined);
      const dr = await sql(loaded, 'db-cold-dr');
      try {
        await dr.query('SET SESSION sql_log_bin = 0');
        await dr.query('DROP DATABASE IF EXISTS wiki');
        await dr.query('SET GLOBAL read_only = ON');
      } finally {
        await dr.end();
      }
      await adapters.activities.switchDnsRecord({
        zone: wiki.dns!.hostedZone,
        name: wiki.dns!.record,
        type: 'CNAME',
        ttl: wiki.dns!.ttl,
        value: wiki.dns!.primaryValue,
      });
    }
  });

  test(
    "unplanned: the primary's mariadbd is killed; " +
      'the reported RPO matches the real loss window; failback restores',
    async () => {
      const load = writeLoad(loaded, 'db-primary', 'unplanned-load');
      await eventually(async () => load.acked.length > 100, 10_000, 'write load');
      await load.stop();
      const pid = Number(readFileSync(path.join(dataDir, 'mariadb', 'primary.mariadbd.pid'), 'utf8').trim());
      const killedAt = Date.now();
      process.kill(pid, 'SIGKILL');

      const report = await t.withWorkers(adapters.activities, async () => {
        const handle = await t.client.workflow.start(failover, {
          taskQueue: t.taskQueue,
          workflowId: 'failover-shop',
          // An operator (or the monitor) says when the incident began: the RTO and RPO clocks start there.
          args: [
            {
              service: 'shop',
              mode: 'drill',
              reason: 'primary crashed',
              incidentStartedAt: new Date(killedAt).toISOString(),
            },
          ],
        });
        const gate = await atGate(handle, 'promote');
        expect(gate.pendingApproval).toMatchObject({ requireUnfencedAck: true });
        await approveFully(handle, {
          step: 'promote',
          approver: 'alice',
          acknowledgeUnfenced: true,
          comment: 'primary is dead',
        });
        return handle.result();
      });
      expect(report.outcome).toBe('completed');
      expect(report.steps.find((s) => s.name === 'fence')!.detail).toMatch(
        /unreachable .*not fenced; VIP removed from primary-host/,
      );

      // The real loss window: from the newest change the promoted replica holds to the newest change the
      // primary had committed. Replication is asynchronous: the last acknowledged writes may be lost.
      const c = await sql(loaded, 'db-replica');
      let newestHeld: number;
      let lost: number[];
      try {
        const [rows] = await c.query<RowDataPacket[]>(
          `SELECT GREATEST(
           (SELECT UNIX_TIMESTAMP(MAX(ts)) FROM drbook.heartbeat WHERE server_id = 1),
           (SELECT UNIX_TIMESTAMP(MAX(created_at)) FROM shop.orders)) AS t`,
        );
        newestHeld = Number(rows[0].t) * 1000;
        const [held] = await c.query<RowDataPacket[]>('SELECT id FROM shop.orders WHERE id IN (?)', [load.acked]);
        const heldIds = new Set(held.map((r) => Number(r.id)));
        lost = load.acked.filter((id) => !heldIds.has(id));
      } finally {
        await c.end();
      }
      // Whatever was lost is the newest writes (a window in time), never a hole in the middle.
      expect(lost).toEqual(load.acked.slice(load.acked.length - lost.length));
      // The primary committed until it died (heartbeat 4x a second, and the load): its newest change is the kill.
      const realLossSeconds = Math.max(0, (killedAt - newestHeld) / 1000);
      expect(Math.abs(report.measured.rpoSeconds! - realLossSeconds)).toBeLessThanOrEqual(1);
      expect(report.measured.rtoSeconds).toBeGreaterThan(0);

      // The old primary comes back read-only (every server starts so): no split brain by itself.
      execFileSync('bash', [path.join(ROOT, 'scripts', 'stack.sh'), 'start'], {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: process.env,
      });
      expect((await adapters.activities.pingDatabase({ server: 'db-primary' })).readOnly).toBe(true);
      // ... but someone with SUPER writes on it anyway: a divergence failback must notice and repair.
      const old = await sql(loaded, 'db-primary');
      try {
        await old.query("INSERT INTO shop.orders (customer, amount_cents, source) VALUES ('split-brain', 1, 'errant')");
      } finally {
        await old.end();
      }
      const back = await failBackShop({ discardDivergent: true });
      expect(back.outcome).toBe('completed');
      expect(back.steps.map((s) => s.name)).toEqual(
        expect.arrayContaining(['check-divergence', 'approve-discard-divergent', 'reclone-original']),
      );
      const restored = await readEstate(loaded, adapters);
      expect(restored.primary).toMatchObject({ readOnly: false });
      expect(restored.replica).toMatchObject({ readOnly: true, replicating: true });
      await eventually(
        async () => {
          const e = await readEstate(loaded, adapters);
          return e.primary.ordersChecksum === e.replica.ordersChecksum;
        },
        20_000,
        'both servers to hold the same orders',
      );
      const p = await sql(loaded, 'db-primary');
      try {
        const [rows] = await p.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM shop.orders WHERE source = 'errant'");
        expect(Number(rows[0].n)).toBe(0); // the DR side's data won
      } finally {
        await p.end();
      }
      expect(restored.vip).toEqual({ primary: true, dr: false });
    },
  );
});
