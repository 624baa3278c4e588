/**
 * The fence and its compensation, on the real local stack: no path may leave two
 * writable servers, and none may leave an outage that drbook could have undone.
 *
 * - a fence blocked by a lock is reported as blocked, with the session holding it (never "unreachable");
 * - a fence that fails part-way (heartbeat stopped, VIP removed, read_only blocked) is undone when the run stops;
 * - compensation after the promotion began fences the promoted server again before reopening the old primary;
 * - the fence is re-read right before promotion (an old primary re-opened by hand stops the run at a gate) and
 *   the single writer after cut-over (a re-opened old primary is reported as split, and alerted);
 * - `scripts/stack.sh start` changes no running server's read_only (it re-opened a fenced primary mid-switchover);
 * - a pooled connection never goes back to the pool with sql_log_bin = 0 (re-clone; cold restore the same way).
 *
 * Faults are injected by wrapping a real activity (the real one runs, then the fault), so each lands at an exact
 * point of a real run. Every test puts the sandbox back as it found it.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkflowFailedError } from '@temporalio/client';
import type { RowDataPacket } from 'mysql2';
import { resolveSecret } from '../../config/load';
import { MysqlPools } from '../../activities/mysql';
import { createMysqlTopologyActivities } from '../../activities/mysql/topology';
import { abortSignal, statusQuery } from '../../contract';
import { approvedFailback, approvedFailover } from '../helpers/drive';
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

describe('fence and compensation', () => {
  const loaded = sandbox();
  const adapters = buildAdapters(loaded);
  const a = adapters.activities;
  const shop = loaded.inventory.services.find((s) => s.name === 'shop')!;
  const db = shop.database!;
  const app = new URL(shop.health.httpUrl!).origin;
  let t: TemporalHarness;

  beforeAll(async () => {
    t = await temporal(loaded);
  });
  afterEach(() => t.terminate(['failover-shop', 'failback-shop']));
  afterAll(async () => {
    await t.close();
    await adapters.close();
  });

  async function onServer<T = RowDataPacket[]>(server: string, statement: string): Promise<T> {
    const c = await sql(loaded, server);
    try {
      const [rows] = await c.query(statement);
      return rows as T;
    } finally {
      await c.end();
    }
  }
  const readOnly = async (server: string) =>
    Number((await onServer(server, 'SELECT @@global.read_only AS ro'))[0].ro) === 1;
  const heartbeatEnabled = async (server: string) =>
    String(
      (
        await onServer(
          server,
          "SELECT status FROM information_schema.events WHERE event_schema = 'drbook' AND event_name = " +
            "'heartbeat_tick'",
        )
      )[0].status,
    ) === 'ENABLED';
  /** The members of shop that take writes, and the hosts holding its VIP: the two things that must be single. */
  async function writersAndVip() {
    const e = await readEstate(loaded, adapters);
    return {
      writable: [db.primary, db.replica!].filter((_, i) => ![e.primary, e.replica][i].readOnly),
      vip: Object.entries(e.vip)
        .filter(([, on]) => on)
        .map(([host]) => host),
      estate: e,
    };
  }
  const inbox = async () =>
    ((await (await fetch(`${app}/notifications`)).json()) as { body?: { subject?: string } }[]).map(
      (n) => n.body?.subject ?? '',
    );

  /** A write statement on db-primary that runs for `seconds`: what read_only = ON has to wait for. */
  function longWrite(seconds: number) {
    const conn = sql(loaded, db.primary);
    const done = conn.then(async (c) => {
      const [id] = await c.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
      return {
        id: Number(id[0].id),
        finished: c
          .query(`UPDATE shop.orders SET amount_cents = amount_cents WHERE id = 1 AND SLEEP(${seconds}) = 0`)
          .catch((err: unknown) => err)
          .finally(() => c.destroy()),
      };
    });
    return done;
  }

  /** Once the blocking statement runs on the server. */
  async function running(pending: ReturnType<typeof longWrite>) {
    const blocker = await pending;
    await eventually(
      async () =>
        (await onServer(db.primary, `SELECT INFO FROM information_schema.PROCESSLIST WHERE ID = ${blocker.id}`))[0]
          ?.INFO,
      5_000,
      'the blocking UPDATE to run',
    );
    return blocker;
  }

  /** The sandbox as it started: primary writable with its heartbeat, replica read-only and replicating. */
  async function expectSandboxRestored() {
    const e = await readEstate(loaded, adapters);
    expect(e.primary).toMatchObject({ readOnly: false });
    expect(e.replica).toMatchObject({ readOnly: true, replicating: true });
    expect(e.vip).toEqual({ primary: true, dr: false });
    expect(await heartbeatEnabled(db.primary)).toBe(true);
  }

  test(
    'a fence blocked by a running write is reported as blocked, naming the session; ' + 'never as unreachable',
    async () => {
      const blocker = await running(longWrite(20));
      try {
        const fence = await a.fencePrimary({ server: db.primary, heartbeatEvent: db.heartbeatEvent });
        expect(fence).toMatchObject({ server: db.primary, reachable: true, fenced: false, finalGtids: null });
        expect(fence.detail).toMatch(/^db-primary answers, but read_only=ON is blocked/);
        expect(fence.detail).not.toMatch(/unreachable/);
        expect(fence.detail).toContain(`session ${blocker.id} drbook@127.0.0.1`);
        expect(fence.blockers!.map((b) => b.id)).toContain(blocker.id);
        expect(fence.blockers!.find((b) => b.id === blocker.id)!.statement).toMatch(/UPDATE shop\.orders/);
        // Nothing half-set by the failed SET GLOBAL: the server still takes writes.
        expect(await readOnly(db.primary)).toBe(false);
      } finally {
        await onServer(db.primary, `KILL ${blocker.id}`).catch(() => undefined);
        await blocker.finished;
        await a.unfencePrimary({ server: db.primary, heartbeatEvent: db.heartbeatEvent });
      }
      await expectSandboxRestored();
    },
  );

  test(
    'a fence that fails part-way (heartbeat stopped, ' + 'VIP removed, read_only blocked) is undone when the run stops',
    async () => {
      let blocker: Awaited<ReturnType<typeof longWrite>> | undefined;
      try {
        const { waiting, err, final } = await t.withWorkers(a, async () => {
          // The write starts at the gate, right before the fence (a worker's first start can take a while).
          const handle = await approvedFailover(
            t,
            { service: 'shop', mode: 'drill', reason: 'blocked fence test' },
            { atPromoteGate: async () => void (blocker = await running(longWrite(40))) },
          );
          const w = await atGate(handle, 'unfenced');
          // Part-way: the VIP is gone and the heartbeat stopped, but db-primary is still writable.
          expect(await heartbeatEnabled(db.primary)).toBe(false);
          expect(await readOnly(db.primary)).toBe(false);
          await handle.signal(abortSignal, { by: 'carol', reason: 'a long write holds the fence' });
          const e = await handle.result().catch((x: unknown) => x as WorkflowFailedError);
          return { waiting: w, err: e, final: await handle.query(statusQuery) };
        });
        expect(waiting.pendingApproval!.question).toMatch(/db-primary answers, but read_only=ON is blocked/);
        expect(waiting.pendingApproval!.question).toContain(`session ${blocker!.id}`);
        expect(failureType((err as WorkflowFailedError).cause)).toBe('Aborted');
        expect(final.steps.map((s) => [s.name, s.state])).toEqual([
          ['lock', 'succeeded'],
          ['topology', 'succeeded'],
          ['assess', 'succeeded'],
          ['approve-promote', 'succeeded'],
          ['fence', 'succeeded'],
          ['approve-unfenced', 'failed'],
          ['unfence-old-primary', 'succeeded'],
        ]);
        const { writable, vip } = await writersAndVip();
        expect(writable).toEqual([db.primary]);
        expect(vip).toEqual(['primary']);
      } finally {
        if (blocker) {
          await onServer(db.primary, `KILL ${blocker.id}`).catch(() => undefined);
          await blocker.finished;
        }
      }
      await expectSandboxRestored();
    },
  );

  test(
    'compensation after the promoted server took writes: ' + 'it is fenced again before the old primary reopens',
    async () => {
      const seen: string[] = [];
      const activities = {
        ...a,
        // The promotion happens and the application writes to the new primary; then the step is lost.
        promoteReplica: async (input: Parameters<typeof a.promoteReplica>[0]) => {
          await a.promoteReplica(input);
          await onServer(
            input.server,
            "INSERT INTO shop.orders (customer, amount_cents, source) VALUES ('after-promote', 1, 'fence-test')",
          );
          seen.push(`promoted ${input.server}, wrote a row`);
          throw ApplicationFailure.nonRetryable('injected: the promotion step is lost after the write', 'Injected');
        },
      };
      try {
        const { err, final } = await t.withWorkers(activities, async () => {
          const handle = await approvedFailover(t, { service: 'shop', mode: 'drill', reason: 'compensation test' });
          const e = await handle.result().catch((x: unknown) => x as WorkflowFailedError);
          return { err: e, final: await handle.query(statusQuery) };
        });
        expect(seen).toEqual(['promoted db-replica, wrote a row']);
        expect(failureType((err as WorkflowFailedError).cause)).toBe('Injected');
        const names = final.steps.map((s) => [s.name, s.state]);
        expect(names).toEqual(
          expect.arrayContaining([
            ['promote', 'failed'],
            ['refence-target', 'succeeded'],
            ['unfence-old-primary', 'succeeded'],
          ]),
        );
        expect(names.findIndex(([n]) => n === 'refence-target')).toBeLessThan(
          names.findIndex(([n]) => n === 'unfence-old-primary'),
        );
        // The promoted server's own write makes it diverge: not re-protected blindly, and said so.
        expect(final.notes.join('\n')).toMatch(/db-replica is read-only but NOT replicating from db-primary/);
        const { writable, vip } = await writersAndVip();
        expect(writable).toEqual([db.primary]);
        expect(vip).toEqual(['primary']);
      } finally {
        // Put the sandbox back: db-replica re-cloned from db-primary (its divergent row discarded).
        await a.recloneFromSource({
          service: 'shop',
          server: db.replica!,
          source: db.primary,
          heartbeatEvent: db.heartbeatEvent,
        });
        await eventually(
          async () => (await readEstate(loaded, adapters)).replica.replicating,
          30_000,
          'db-replica to replicate again',
        );
      }
      await expectSandboxRestored();
    },
  );

  test('the old primary re-opened between fence and promote: the run stops at a gate before promotion', async () => {
    const load = writeLoad(loaded, db.primary, 'fence-reopened');
    const activities = {
      ...a,
      // What `stack.sh up` did mid-switchover: the fenced primary made writable again, and the application writes.
      waitForCatchUp: async (input: Parameters<typeof a.waitForCatchUp>[0]) => {
        const r = await a.waitForCatchUp(input);
        if (input.replica === db.replica) {
          await onServer(db.primary, 'SET GLOBAL read_only = OFF');
          const acked = load.acked.length;
          await eventually(async () => load.acked.length > acked + 5, 10_000, 'writes on the re-opened primary');
        }
        return r;
      },
    };
    try {
      const { waiting, err, final } = await t.withWorkers(activities, async () => {
        const handle = await approvedFailover(t, { service: 'shop', mode: 'drill', reason: 'fence re-opened test' });
        const w = await atGate(handle, 'fence-lost');
        await handle.signal(abortSignal, { by: 'carol', reason: 'someone re-opened the old primary' });
        const e = await handle.result().catch((x: unknown) => x as WorkflowFailedError);
        return { waiting: w, err: e, final: await handle.query(statusQuery) };
      });
      expect(waiting.pendingApproval!.question).toMatch(
        new RegExp(
          String.raw`db-primary: the fence no longer holds: read_only=OFF: it takes writes again; ` +
            String.raw`\d+ transaction\(s\) committed after the fence`,
        ),
      );
      expect(failureType((err as WorkflowFailedError).cause)).toBe('Aborted');
      expect(final.steps.map((s) => s.name)).not.toContain('promote');
      expect(final.steps.find((s) => s.name === 'unfence-old-primary')?.state).toBe('succeeded');
      const { writable, vip } = await writersAndVip();
      expect(writable).toEqual([db.primary]);
      expect(vip).toEqual(['primary']);
    } finally {
      await load.stop();
    }
    await expectSandboxRestored();
  });

  test('the old primary re-opened after promotion: the run reports split and alerts', async () => {
    const activities = {
      ...a,
      switchDnsRecord: async (input: Parameters<typeof a.switchDnsRecord>[0]) => {
        if (input.name === shop.dns!.record) await onServer(db.primary, 'SET GLOBAL read_only = OFF');
        return a.switchDnsRecord(input);
      },
    };
    try {
      const { err, final } = await t.withWorkers(activities, async () => {
        const handle = await approvedFailover(t, { service: 'shop', mode: 'drill', reason: 'split after cut-over' });
        const e = await handle.result().catch((x: unknown) => x as WorkflowFailedError);
        return { err: e, final: await handle.query(statusQuery) };
      });
      const cause = (err as WorkflowFailedError).cause;
      expect(failureType(cause)).toBe('SplitBrain');
      expect(cause?.message).toMatch(/shop is SPLIT after cut-over: db-primary and db-replica all take writes/);
      expect(final.steps.find((s) => s.name === 'verify-single-writer')?.state).toBe('failed');
      expect(final.steps.map((s) => s.name)).not.toContain('unfence-old-primary');
      expect(await inbox()).toContain('SPLIT BRAIN: shop');
    } finally {
      // The operator's fix, as the alert says: fence the old primary, then fail back.
      await onServer(db.primary, 'SET GLOBAL read_only = ON');
    }
    const back = await t.withWorkers(a, () => approvedFailback(t, 'shop'));
    expect(back.outcome).toBe('completed');
    await expectSandboxRestored();
  });

  test("scripts/stack.sh start while a switchover has fenced the primary changes no server's read_only", async () => {
    const servers = Object.keys(loaded.inventory.mysqlServers);
    // Mid-switchover: db-primary fenced, db-replica still replicating from it (not promoted yet).
    const fence = await a.fencePrimary({ server: db.primary, heartbeatEvent: db.heartbeatEvent });
    expect(fence.fenced).toBe(true);
    try {
      const before = await Promise.all(servers.map(readOnly));
      execFileSync('bash', [path.join(ROOT, 'scripts', 'stack.sh'), 'start'], {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: process.env,
      });
      expect(await Promise.all(servers.map(readOnly))).toEqual(before);
      expect(await readOnly(db.primary)).toBe(true);
    } finally {
      await a.unfencePrimary({ server: db.primary, heartbeatEvent: db.heartbeatEvent });
    }
    await expectSandboxRestored();
  });

  test(
    'scripts/stack.sh start restarting a crashed primary ' + 'while a runbook holds lock-shop leaves it read-only',
    async () => {
      // A runbook changing shop (a lock started by hand stands in for it: no worker needed to hold it).
      const lock = await t.client.workflow.start('serviceLock', {
        taskQueue: t.taskQueue,
        workflowId: 'lock-shop',
        args: [{ service: 'shop', holder: 'fence test: a switchover in flight' }],
      });
      try {
        // The primary crashes mid-change; stack.sh starts it again, as the README says to bring the stack back.
        const dataDir = process.env.DRBOOK_DATA ?? path.join(ROOT, '.data');
        const pid = Number(readFileSync(path.join(dataDir, 'mariadb', 'primary.mariadbd.pid'), 'utf8').trim());
        process.kill(pid, 'SIGKILL');
        await eventually(
          async () => {
            try {
              process.kill(pid, 0);
              return false;
            } catch {
              return true;
            }
          },
          20_000,
          'the primary to die',
        );
        execFileSync('bash', [path.join(ROOT, 'scripts', 'stack.sh'), 'start'], {
          stdio: ['ignore', 'ignore', 'inherit'],
          env: process.env,
        });
        // Started by this stack.sh call, yet left read-only: the lock's holder decides who writes.
        expect(await readOnly(db.primary)).toBe(true);
        expect(await readOnly(db.replica!)).toBe(true);
      } finally {
        await lock.terminate('fence test over').catch(() => undefined);
      }
      // The change is over: the operator (here the test) opens the primary again.
      await a.unfencePrimary({ server: db.primary, heartbeatEvent: db.heartbeatEvent });
      await eventually(async () => (await readEstate(loaded, adapters)).replica.replicating, 30_000, 'replication');
      await expectSandboxRestored();
    },
  );

  test('a pooled connection never goes back to the pool with sql_log_bin = 0 (re-clone)', async () => {
    const pools = new MysqlPools(loaded.inventory.mysqlServers, (s) => resolveSecret(s.password, loaded.baseDir));
    const repl = db.replication!;
    const topology = createMysqlTopologyActivities(pools, () => ({
      user: repl.user,
      password: resolveSecret(repl.password, loaded.baseDir),
    }));
    try {
      // Re-clone db-replica from db-primary: its DROP DATABASE and RESET MASTER run with sql_log_bin = 0.
      await topology.recloneFromSource({
        service: 'shop',
        server: db.replica!,
        source: db.primary,
        heartbeatEvent: db.heartbeatEvent,
      });
      // Every connection the pool can hand out (its limit is 4) logs to the binlog.
      const conns = await Promise.all([1, 2, 3, 4].map(() => pools.pool(db.replica!).getConnection()));
      try {
        const logged = await Promise.all(
          conns.map(async (c) => Number((await c.query<RowDataPacket[]>('SELECT @@session.sql_log_bin AS b'))[0][0].b)),
        );
        expect(logged).toEqual([1, 1, 1, 1]);
      } finally {
        for (const c of conns) c.release();
      }
    } finally {
      await pools.end();
    }
    await eventually(
      async () => (await readEstate(loaded, adapters)).replica.replicating,
      30_000,
      'db-replica to replicate again',
    );
    await expectSandboxRestored();
  });
});
