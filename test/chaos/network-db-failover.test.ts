/**
 * Network faults between the worker and BOTH MariaDB servers while shop's runbooks change them.
 * The worker reaches db-primary and db-replica only through fault proxies (their inventory
 * host/port are the proxies'); their replication address (mysqlServers.<name>.replication) stays
 * the real one, so every CHANGE MASTER must write the real address, never the proxy's.
 *
 * - a switchover of shop (drill failover) with 150 ms latency on both links and connection resets
 *   at the start of fence, catch-up and promote: the run completes, every side effect once;
 * - the failback, with resets at the start of re-protect, fence, catch-up, promote and re-point:
 *   it completes, and each new replica's SHOW SLAVE STATUS names the REAL address of its source;
 * - db-primary goes silent from the approval on, past the fence's budget: the run stops for an
 *   operator naming db-primary and the cause, nothing is promoted, and the abort leaves every step
 *   reported (what was done: the VIP removed; what was not: MySQL fenced, catch-up, promote).
 *
 * Faults are injected when a step's activity starts its first attempt (a wrapper around the real
 * activity sets the proxy), so each step meets its fault whatever the machine's speed.
 * The sandbox is put back in its normal topology afterwards, whatever happened.
 */
import { Context } from '@temporalio/activity';
import type { WorkflowFailedError, WorkflowHandle } from '@temporalio/client';
import type { RowDataPacket } from 'mysql2';
import { failback } from '../../workflows';
import { abortSignal, statusQuery } from '../../contract';
import type { Activities } from '../../activities';
import { recordChaos, type ChaosRow } from '../helpers/chaos';
import { activityRetries, approvedFailover, approveFully, startRunbook } from '../helpers/drive';
import { netns, readEstate } from '../helpers/estate';
import { blackhole, delay, pass, proxyEstate, resetNext, type ProxiedEstate } from '../helpers/fault-proxy';
import { countSideEffects, duplicates, expectEachOnce } from '../helpers/side-effects';
import { restoreSandboxTopology } from '../helpers/topology';
import {
  atGate,
  buildAdapters,
  eventually,
  failureType,
  sandbox,
  sql,
  temporal,
  type TemporalHarness,
} from '../helpers/stack';

jest.setTimeout(150_000);

const LATENCY_MS = 150;

/** The servers a mutating MySQL step talks to: each gets a reset when the step starts. */
const MUTATING_STEPS: Partial<Record<keyof Activities, (input: Record<string, string>) => string[]>> = {
  fencePrimary: (i) => [i.server],
  waitForCatchUp: (i) => [i.replica],
  promoteReplica: (i) => [i.server],
  rebuildAsReplica: (i) => [i.server, i.source],
};

describe('network faults between the worker and both MariaDB servers during shop failover and failback', () => {
  const loaded = sandbox();
  const shop = loaded.inventory.services.find((s) => s.name === 'shop')!;
  const db = shop.database!;
  const real = (name: string) => loaded.inventory.mysqlServers[name];
  /** Direct (unproxied) adapters: how the test reads and restores the estate. */
  const direct = buildAdapters(loaded);
  let estate: ProxiedEstate;
  let adapters: ReturnType<typeof buildAdapters>;
  let t: TemporalHarness;
  /** Steps that met an injected reset ("promoteReplica db-replica"). */
  let injected: string[] = [];
  let injecting = false;

  /** The proxied worker's activities, with a connection reset at the start of each mutating step's first attempt. */
  function withStepFaults(activities: Activities): Activities {
    const wrapped: Record<string, unknown> = { ...activities };
    for (const [name, serversOf] of Object.entries(MUTATING_STEPS)) {
      const act = activities[name as keyof Activities] as (input: Record<string, string>) => Promise<unknown>;
      wrapped[name] = (input: Record<string, string>) => {
        if (injecting && Context.current().info.attempt === 1) {
          for (const server of serversOf(input)) {
            estate.proxies[`mysql:${server}`].set(resetNext(1, delay(LATENCY_MS)));
            injected.push(`${name} ${server}`);
          }
        }
        return act(input);
      };
    }
    return wrapped as unknown as Activities;
  }

  /** SHOW SLAVE STATUS on a server, read directly (not through a proxy). */
  async function replicationOf(server: string) {
    const c = await sql(loaded, server);
    try {
      const [rows] = await c.query<RowDataPacket[]>('SHOW SLAVE STATUS');
      const r = rows[0];
      return r
        ? { host: String(r.Master_Host), port: Number(r.Master_Port), io: r.Slave_IO_Running, sql: r.Slave_SQL_Running }
        : null;
    } finally {
      await c.end();
    }
  }
  /** RESET statements a server executed (MariaDB's Com_reset: RESET SLAVE ALL, once per promotion). */
  async function resetsOn(server: string): Promise<number> {
    const c = await sql(loaded, server);
    try {
      const [rows] = await c.query<RowDataPacket[]>("SHOW GLOBAL STATUS LIKE 'Com_reset'");
      return Number(rows[0].Value);
    } finally {
      await c.end();
    }
  }

  /** Put the sandbox back in its normal topology, whatever a failed case left (through the real addresses). */
  async function restoreTopology(): Promise<void> {
    estate.setAll(pass);
    await restoreSandboxTopology(t, loaded);
  }

  beforeAll(async () => {
    estate = await proxyEstate(loaded, { mysql: [db.primary, db.replica!] });
    adapters = buildAdapters(estate.loaded);
    t = await temporal(estate.loaded);
    await restoreTopology();
    const before = await readEstate(loaded, direct);
    expect(before.primary).toMatchObject({ readOnly: false });
    expect(before.replica).toMatchObject({ readOnly: true, replicating: true, sourcePort: real(db.primary).port });
  });
  afterEach(() => {
    injecting = false;
    estate.setAll(pass);
  });
  afterAll(async () => {
    try {
      if (t) await restoreTopology();
    } finally {
      await t?.close();
      await adapters?.close();
      await estate?.close();
      await direct.close();
    }
  });

  test(
    'switchover of shop with 150 ms latency and resets at fence, catch-up and promote: ' +
      'completes, every side effect once',
    async () => {
      const row: ChaosRow = {
        fault: 'MariaDB resets at fence/catch-up/promote + 150 ms latency, both servers (shop switchover)',
        runs: 1,
        survived: 0,
        duplicated: 0,
      };
      try {
        const effects = await countSideEffects(loaded);
        const resetsBefore = estate.proxies[`mysql:${db.replica}`].stats.resets;
        injected = [];
        const started = Date.now();
        const { report, retries } = await t.withWorkers(withStepFaults(adapters.activities), async () => {
          const handle = await approvedFailover(
            t,
            { service: 'shop', mode: 'drill', reason: 'chaos: MariaDB resets and latency' },
            {
              atPromoteGate: () => {
                estate.setAll(delay(LATENCY_MS));
                injecting = true;
              },
            },
          );
          const r = await handle.result();
          return {
            report: r,
            retries: {
              waitForCatchUp: await activityRetries(handle, 'waitForCatchUp'),
              promoteReplica: await activityRetries(handle, 'promoteReplica'),
            },
          };
        });
        const seconds = (Date.now() - started) / 1000;
        const seen = await effects.read();
        row.duplicated = duplicates(seen);
        row.survived = report.outcome === 'completed' && seen.vipHolders.length === 1 && row.duplicated === 0 ? 1 : 0;

        expect(report).toMatchObject({ outcome: 'completed', newPrimary: db.replica });
        expect(injected).toEqual(['fencePrimary db-primary', 'waitForCatchUp db-replica', 'promoteReplica db-replica']);
        // The fence rode its reset out itself (no unfenced gate); catch-up and promote were retried by Temporal.
        expect(report.steps.find((s) => s.name === 'fence')!.detail).toMatch(
          /^db-primary: read_only=ON, heartbeat stopped \(after \d+ connection fault\(s\): [A-Z_]+/,
        );
        expect(report.steps.map((s) => s.name)).not.toContain('approve-unfenced');
        expect(retries.waitForCatchUp).toBeGreaterThanOrEqual(1);
        expect(retries.promoteReplica).toBeGreaterThanOrEqual(1);
        expect(estate.proxies[`mysql:${db.replica}`].stats.resets).toBeGreaterThan(resetsBefore);
        expect(report.measured.rpoSeconds).toBe(0);
        expectEachOnce(seen); // one promotion, one DNS change, VIP on the DR host only, each notification once
        // The application was told the new primary's real address, not the worker's proxy.
        const health = (await (await fetch(shop.health.httpUrl!)).json()) as {
          primary: { port: number };
        };
        expect(health.primary.port).toBe(real(db.replica!).port);
        expect(seconds).toBeLessThan(120);
      } finally {
        recordChaos(row);
      }
    },
  );

  test(
    'failback with resets at re-protect, fence, catch-up, promote and re-point: ' +
      'each new replica replicates from the REAL address',
    async () => {
      const row: ChaosRow = {
        fault: 'MariaDB resets at re-protect/fence/catch-up/promote/re-point + 150 ms latency (shop failback)',
        runs: 1,
        survived: 0,
        duplicated: 0,
      };
      try {
        // The previous case left shop failed over to db-replica.
        expect((await readEstate(loaded, direct)).replica).toMatchObject({ readOnly: false, replicating: false });
        const effects = await countSideEffects(loaded);
        const promotionsBefore = await resetsOn(db.primary);
        injected = [];
        estate.setAll(delay(LATENCY_MS));
        injecting = true;
        const started = Date.now();
        let reprotected: Awaited<ReturnType<typeof replicationOf>> = null;
        const { report, handle } = await t.withWorkers(withStepFaults(adapters.activities), async () => {
          const h: WorkflowHandle<typeof failback> = await startRunbook(t, failback, {
            service: 'shop',
            mode: 'drill',
          });
          await atGate(h, 'switch-back');
          // Re-protected through the proxies: the old primary replicates from db-replica's real address.
          reprotected = await eventually(
            async () => {
              const r = await replicationOf(db.primary);
              return r?.io === 'Yes' && r.sql === 'Yes' ? r : null;
            },
            30_000,
            'db-primary to replicate from db-replica',
          );
          await approveFully(h, { step: 'switch-back', approver: 'carol' });
          return { report: await h.result(), handle: h };
        });
        const seconds = (Date.now() - started) / 1000;
        const seen = await effects.read();
        const promotions = (await resetsOn(db.primary)) - promotionsBefore;
        row.duplicated = duplicates(seen) + Math.max(0, promotions - 1);
        const final = await eventually(
          async () => {
            const r = await replicationOf(db.replica!);
            return r?.io === 'Yes' && r.sql === 'Yes' ? r : null;
          },
          30_000,
          'db-replica to replicate from db-primary',
        );
        const realAddresses =
          reprotected!.port === real(db.replica!).port &&
          final.port === real(db.primary).port &&
          final.host === '127.0.0.1';
        row.survived =
          report.outcome === 'completed' && realAddresses && seen.vipHolders.length === 1 && row.duplicated === 0
            ? 1
            : 0;

        expect(report.outcome).toBe('completed');
        expect(injected).toEqual([
          'rebuildAsReplica db-primary',
          'rebuildAsReplica db-replica',
          'waitForCatchUp db-primary',
          'fencePrimary db-replica',
          'waitForCatchUp db-primary',
          'promoteReplica db-primary',
          'rebuildAsReplica db-replica',
          'rebuildAsReplica db-primary',
        ]);
        expect(await activityRetries(handle, 'rebuildAsReplica')).toBeGreaterThanOrEqual(2);
        expect(await activityRetries(handle, 'promoteReplica')).toBeGreaterThanOrEqual(1);
        // CHANGE MASTER wrote the real addresses (127.0.0.1 and the servers' own ports), never a proxy's.
        expect(reprotected).toMatchObject({ host: '127.0.0.1', port: real(db.replica!).port });
        expect(final).toMatchObject({ host: '127.0.0.1', port: real(db.primary).port });
        expect([estate.proxies[`mysql:${db.primary}`].port, estate.proxies[`mysql:${db.replica}`].port]).not.toContain(
          final.port,
        );
        // One promotion of db-primary, one DNS change back, the VIP on the primary host only, notifications once.
        expect(promotions).toBe(1);
        expect(seen).toMatchObject({ promotions: 0, dnsChanges: 1, vipHolders: [netns.primary] });
        expect(duplicates(seen)).toBe(0);
        const restored = await readEstate(loaded, direct);
        expect(restored.primary).toMatchObject({ readOnly: false, replicating: false });
        expect(restored.replica).toMatchObject({
          readOnly: true,
          replicating: true,
          sourcePort: real(db.primary).port,
        });
        expect(seconds).toBeLessThan(120);
      } finally {
        recordChaos(row);
      }
    },
  );

  test(
    'db-primary silent past the fence budget: the run stops for an operator naming db-primary and the cause; ' +
      'nothing promoted; abort leaves every step reported',
    async () => {
      const row: ChaosRow = {
        fault: 'db-primary black-holed from the approval, past the fence budget (shop switchover)',
        runs: 1,
        survived: 0,
        duplicated: 0,
      };
      try {
        const before = await readEstate(loaded, direct);
        const effects = await countSideEffects(loaded);
        const started = Date.now();
        const { waiting, err, final } = await t.withWorkers(adapters.activities, async () => {
          const handle = await approvedFailover(
            t,
            { service: 'shop', mode: 'drill', reason: 'chaos: primary silent' },
            { atPromoteGate: () => estate.proxies[`mysql:${db.primary}`].set(blackhole) },
          );
          const w = await atGate(handle, 'unfenced');
          await handle.signal(abortSignal, { by: 'carol', reason: 'the primary is only unreachable from the worker' });
          const e = await handle.result().catch((x: unknown) => x as WorkflowFailedError);
          return { waiting: w, err: e, final: await handle.query(statusQuery) };
        });
        const seconds = (Date.now() - started) / 1000;
        estate.proxies[`mysql:${db.primary}`].set(pass);
        const seen = await effects.read();
        const after = await readEstate(loaded, direct);
        const fence = waiting.steps.find((s) => s.name === 'fence')!;
        const cause = new RegExp(
          String.raw`^db-primary unreachable \((ETIMEDOUT|PROTOCOL_SEQUENCE_TIMEOUT)[^)]*\): ` +
            String.raw`not fenced; VIP removed from primary-host$`,
        );
        const named =
          cause.test(fence.detail ?? '') && /db-primary unreachable/.test(waiting.pendingApproval!.question);
        const notPromoted = seen.promotions === 0 && after.replica.readOnly && after.replica.replicating;
        row.survived = named && notPromoted && failureType((err as WorkflowFailedError).cause) === 'Aborted' ? 1 : 0;

        // Stopped for an operator: the gate says what could not be done and why, before any promotion.
        expect(fence.detail).toMatch(cause);
        expect(waiting.pendingApproval).toMatchObject({ step: 'unfenced', requireUnfencedAck: true });
        expect(waiting.pendingApproval!.question).toMatch(
          /db-primary unreachable \((ETIMEDOUT|PROTOCOL_SEQUENCE_TIMEOUT)/,
        );
        // No promotion without a fence: catch-up and promote never started; the replica still replicates, read-only.
        expect(final.steps.map((s) => [s.name, s.state])).toEqual([
          ['lock', 'succeeded'],
          ['topology', 'succeeded'],
          ['assess', 'succeeded'],
          ['approve-promote', 'succeeded'],
          ['fence', 'succeeded'],
          ['approve-unfenced', 'failed'],
          // Undone: the fence never reached db-primary (nothing to unfence there); the VIP it removed is put back.
          ['unfence-old-primary', 'succeeded'],
        ]);
        expect(final.steps.find((s) => s.name === 'approve-unfenced')!.detail).toMatch(/^aborted by carol/);
        expect(failureType((err as WorkflowFailedError).cause)).toBe('Aborted');
        expect(seen.promotions).toBe(0);
        expect(after.replica).toMatchObject({ readOnly: true, replicating: true });
        // What was done is undone and reported: the VIP the fence removed is back, and people heard where the run
        // stopped.
        expect(after.vip).toEqual({ primary: true, dr: false });
        expect(Object.keys(seen.inbox).some((k) => k.endsWith('/stopped/oncall-webhook'))).toBe(true);
        expect(after.primary).toEqual(before.primary); // the silent link never let the fence through
        expect(seconds).toBeLessThan(120);
      } finally {
        recordChaos(row);
      }
    },
  );
});
