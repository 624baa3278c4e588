/**
 * The recordings of scripts/record-histories.ts, in the order it runs them: each drives one runbook (or a few) on
 * the local stack with the real activities and returns the runs to keep as replay fixtures.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WorkflowHandle } from '@temporalio/client';
import type { LoadedInventory } from '../../config/load';
import {
  binlogArchive,
  drDrill,
  failback,
  failover,
  launchRunbook,
  monitor,
  nightlyBackup,
  readiness,
  resolveSplit,
  restoreTest,
  serviceRoles,
} from '../../workflows';
import { abortSignal, monitorStateQuery } from '../../contract';
import type { IsolatedBackups } from '../../test/helpers/backups';
import { readEstate } from '../../test/helpers/estate';
import { approveGates, startRunbook } from '../../test/helpers/drive';
import { atGate, buildAdapters, eventually, sql, type TemporalHarness } from '../../test/helpers/stack';

/** A run to keep: its id (and run id, where the id was reused), the fixture it becomes, and what it shows. */
export interface Kept {
  fixture: string;
  workflowId: string;
  runId?: string;
  description: string;
}

export interface Context {
  t: TemporalHarness;
  /** Backups under this invocation's own prefix, and the backup ids whose snapshots to delete at the end. */
  backups: IsolatedBackups & { snapshotsOf: string[] };
  activities: ReturnType<typeof buildAdapters>['activities'];
  base: LoadedInventory;
}

export const recordings: Record<string, (c: Context) => Promise<Kept[]>> = {
  // First: readiness, the dry run and the drills check that a recent verified backup exists.
  async backup({ t, activities, backups }) {
    const restoreLifecycles = await backups.keepLifecycles();
    try {
      const workflowId = `nightly-${t.taskQueue}`;
      const summary = await t.withWorkers(activities, () =>
        t.client.workflow.execute(nightlyBackup, {
          taskQueue: t.taskQueue,
          workflowId,
          args: [{ services: ['shop'] }],
        }),
      );
      if (summary.failed.length) throw new Error(`nightlyBackup failed: ${JSON.stringify(summary.failed)}`);
      backups.snapshotsOf.push(summary.backupId);
      return [
        { fixture: 'nightly-backup', workflowId, description: 'nightlyBackup of shop: lifecycles, one child' },
        {
          fixture: 'service-backup',
          workflowId: `backup-shop-${summary.backupId}`,
          description: 'serviceBackup of shop: dump, verify, manifest, EBS/RDS snapshots, retention, 3-2-1',
        },
      ];
    } finally {
      await restoreLifecycles();
    }
  },

  async readiness({ t, activities }) {
    const workflowId = `readiness-shop-${t.taskQueue}`;
    await t.withWorkers(activities, () =>
      t.client.workflow.execute(readiness, { taskQueue: t.taskQueue, workflowId, args: [{ service: 'shop' }] }),
    );
    return [{ fixture: 'readiness', workflowId, description: 'readiness of shop (warm, critical): every check' }];
  },

  async 'failover-dry-run'({ t, activities }) {
    const handle = await t.withWorkers(activities, async () => {
      const h = await startRunbook(t, failover, { service: 'shop', mode: 'drill', reason: 'recording', dryRun: true });
      await h.result();
      return h;
    });
    return [kept('failover-dry-run', handle, 'failover dry run of shop: the readiness child, nothing changed')];
  },

  async hot({ t, activities }) {
    return t.withWorkers(activities, async () => {
      const fo = await startRunbook(t, failover, { service: 'catalog', mode: 'real', reason: 'recording' });
      await approveGates(fo, [{ step: 'promote', approver: 'alice', comment: 'recording' }]);
      await fo.result();
      const fb = await startRunbook(t, failback, { service: 'catalog', mode: 'real' });
      await approveGates(fb, [{ step: 'switch-back', approver: 'bob' }], 'signal');
      await fb.result();
      return [
        kept('failover-hot', fo, 'real failover of catalog (hot): approved by update, DNS moved, health verified'),
        kept('failback-hot', fb, 'failback of catalog (hot): approved by signal, DNS moved back'),
      ];
    });
  },

  async monitor({ t, base }) {
    // catalog's health endpoint, played by a server of our own: healthy twice, then failing.
    let checks = 0;
    const server = createServer((_req, res) => {
      checks++;
      res.writeHead(checks <= 2 ? 200 : 503).end(checks <= 2 ? 'ok' : 'database read-only');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const inventory = structuredClone(base.inventory);
    const catalog = inventory.services.find((s) => s.name === 'catalog')!;
    catalog.health = {
      ...catalog.health,
      httpUrl: `http://127.0.0.1:${port}/health`,
      interval: 1,
      failuresBeforeIncident: 2,
    };
    const adapters = buildAdapters({ ...base, inventory });
    try {
      return await t.withWorkers(adapters.activities, async () => {
        const handle = await startRunbook(t, monitor, { service: 'catalog' });
        // Healthy, then two failures: the incident, the failover started; then one check more in cooldown.
        await eventually(
          async () => {
            const s = await handle.query(monitorStateQuery).catch(() => null);
            return s && s.incidents.length === 1 && s.consecutiveFailures === 1;
          },
          60_000,
          'an incident and one check in cooldown',
        );
        await handle.terminate('recorded: a monitor continues as new only after 300 checks');
        // The failover it started waits at its gate: nothing changed; end it.
        const started = t.client.workflow.getHandle('failover-catalog');
        const run = (await started.describe()).runId;
        await started.terminate('recorded');
        return [
          kept('monitor', handle, 'monitor of catalog: healthy, 2 failures → failover started, cooldown; terminated'),
          {
            fixture: 'failover-from-monitor',
            workflowId: 'failover-catalog',
            runId: run,
            description:
              'failover of catalog started by the monitor (incident start passed on); terminated at the gate',
          },
        ];
      });
    } finally {
      server.close();
      await adapters.close();
    }
  },

  async 'drill-isolated'({ t, activities }) {
    const handle = await t.withWorkers(activities, async () => {
      const h = await startRunbook(
        t,
        drDrill,
        { service: 'shop', scope: 'isolated', reason: 'recording' },
        'drill-shop',
      );
      await h.result();
      return h;
    });
    return [kept('drill-isolated', handle, 'isolated DR drill of shop: DR copy up, checked, torn down')];
  },

  async 'drill-switchover'({ t, activities }) {
    return t.withWorkers(activities, async () => {
      const drill = await startRunbook(
        t,
        drDrill,
        { service: 'shop', scope: 'switchover', reason: 'recording' },
        'drill-shop',
      );
      // Approvals sent to the drill, which relays them to the child waiting (as the Web UI would).
      const fo = t.client.workflow.getHandle('failover-shop');
      await approveGates(fo, [{ step: 'promote', approver: 'alice' }], 'signal', drill);
      const fb = t.client.workflow.getHandle('failback-shop');
      await approveGates(fb, [{ step: 'switch-back', approver: 'bob' }], 'signal', drill);
      await drill.result();
      return [
        kept(
          'drill-switchover',
          drill,
          'switchover DR drill of shop: failover and failback children, approvals relayed',
        ),
        kept(
          'failover-warm',
          fo,
          'planned failover of shop (warm) as a drill child: fence, catch up, promote, VIP, DNS',
        ),
        kept('failback-warm', fb, 'failback of shop (warm) as a drill child: re-protect, switch back'),
      ];
    });
  },

  async launch({ t, activities }) {
    // As a schedule starts a drill: the launcher starts drill-shop; a second launch while it runs is skipped.
    const input = { runbook: 'drill' as const, service: 'shop', input: { service: 'shop', scope: 'isolated' } };
    return t.withWorkers(activities, async () => {
      const first = `launch-${t.taskQueue}`;
      const second = `launch-again-${t.taskQueue}`;
      const started = await t.client.workflow.execute(launchRunbook, {
        taskQueue: t.taskQueue,
        workflowId: first,
        args: [input],
      });
      const skipped = await t.client.workflow.execute(launchRunbook, {
        taskQueue: t.taskQueue,
        workflowId: second,
        args: [input],
      });
      if (started.outcome !== 'started' || skipped.outcome !== 'skipped')
        throw new Error(`launches: ${started.outcome}, ${skipped.outcome} (expected started, skipped)`);
      await t.client.workflow.getHandle('drill-shop').result();
      return [
        {
          fixture: 'launch-started',
          workflowId: first,
          description: 'launchRunbook of an isolated drill of shop: started',
        },
        { fixture: 'launch-skipped', workflowId: second, description: 'launchRunbook while that drill runs: skipped' },
      ];
    });
  },

  async 'binlog-archive'({ t, activities }) {
    const workflowId = `binlogs-${t.taskQueue}`;
    const result = await t.withWorkers(activities, () =>
      t.client.workflow.execute(binlogArchive, { taskQueue: t.taskQueue, workflowId, args: [{ services: ['shop'] }] }),
    );
    if (result.failed.length) throw new Error(`binlogArchive failed: ${JSON.stringify(result.failed)}`);
    return [{ fixture: 'binlog-archive', workflowId, description: 'binlogArchive of shop: flush, closed logs copied' }];
  },

  async lock({ t, activities }) {
    return t.withWorkers(activities, async () => {
      // A failover holds lock-shop at its gate; a failback meanwhile is refused; the abort releases it.
      const fo = await startRunbook(t, failover, { service: 'shop', mode: 'drill', reason: 'recording' });
      await atGate(fo, 'promote');
      const lock = await t.client.workflow.getHandle('lock-shop').describe();
      const fb = await startRunbook(t, failback, { service: 'shop', mode: 'drill' });
      await fb.result().catch(() => undefined);
      await fo.signal(abortSignal, { by: 'recording', reason: 'recording the lock' });
      await fo.result().catch(() => undefined);
      return [
        {
          fixture: 'service-lock',
          workflowId: 'lock-shop',
          runId: lock.runId,
          description: 'lock-shop held by a failover, released by it',
        },
        kept('failover-locked', fo, 'failover of shop holding lock-shop, aborted at its gate (lock released)'),
        kept('failback-locked', fb, 'failback of shop refused: lock-shop held by failover-shop'),
      ];
    });
  },

  async resolve({ t, activities, base }) {
    // A split made by hand: db-replica writable beside db-primary. The resolve fences it again.
    const c = await sql(base, 'db-replica');
    try {
      return await t.withWorkers(activities, async () => {
        const rolesId = `roles-shop-${t.taskQueue}`;
        await t.client.workflow.execute(serviceRoles, {
          taskQueue: t.taskQueue,
          workflowId: rolesId,
          args: [{ service: 'shop' }],
        });
        await c.query('SET GLOBAL read_only = OFF');
        const handle = await startRunbook(
          t,
          resolveSplit,
          { service: 'shop', keep: 'db-primary', reason: 'recording' },
          'resolve-shop',
        );
        await approveGates(handle, [
          { step: 'fence-writers', approver: 'alice' },
          { step: 'fence-writers', approver: 'bob' },
        ]);
        await handle.result();
        return [
          { fixture: 'service-roles', workflowId: rolesId, description: 'serviceRoles of shop: the live roles' },
          kept('resolve-split', handle, 'resolveSplit of shop: split by hand, two approvals, db-replica fenced'),
        ];
      });
    } finally {
      await c.query('SET GLOBAL read_only = ON').catch(() => undefined);
      await c.end();
    }
  },

  async 'restore-test'({ t, activities }) {
    const workflowId = `restore-${t.taskQueue}`;
    const result = await t.withWorkers(activities, () =>
      t.client.workflow.execute(restoreTest, { taskQueue: t.taskQueue, workflowId, args: [{ service: 'shop' }] }),
    );
    if (result.outcome !== 'passed') throw new Error(`restoreTest ${result.outcome}: ${result.failedCheck}`);
    return [
      { fixture: 'restore-test', workflowId, description: 'restoreTest of shop: newest backup restored, checked' },
    ];
  },
};

/** A run by its handle: the run it started, or (a handle by id only) the newest run of that id. */
function kept(fixture: string, handle: WorkflowHandle, description: string): Kept {
  const runId = 'firstExecutionRunId' in handle ? (handle.firstExecutionRunId as string) : undefined;
  return { fixture, workflowId: handle.workflowId, runId, description };
}

/** What a runbook must leave as it found it (the orders checksum moves with other writes). */
export async function topology(base: LoadedInventory, adapters: ReturnType<typeof buildAdapters>) {
  const e = await readEstate(base, adapters);
  return JSON.stringify({
    ...e,
    primary: { ...e.primary, ordersChecksum: '' },
    replica: { ...e.replica, ordersChecksum: '' },
  });
}
