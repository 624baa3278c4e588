/**
 * Records the replay fixtures (test/fixtures/histories/) from real runs of every runbook on the
 * local stack: the real activities against the real estate, approvals given as operators give
 * them, the estate put back afterwards. test/unit/replay.test.ts replays each history against the
 * current workflow code, so a change that would break a running workflow fails CI.
 *
 * Re-record a fixture only for a new workflow or path, or once a patch's deprecation cycle is over
 * (docs/workflow-changes.md); never to make a workflow change pass. With the stack started:
 *
 *   export DRBOOK_PORT_OFFSET=...; eval "$(scripts/stack.sh env)"
 *   node -r ts-node/register/transpile-only scripts/record-histories.ts [--set <folder>] [recording ...]
 *
 * `--set 2026-12` writes a new generation into test/fixtures/histories/2026-12/ and leaves the older ones alone.
 *
 * Recordings, in this order: backup (nightlyBackup and its serviceBackup child: the drills need a recent
 * verified backup), readiness, failover-dry-run, hot (failover + failback of catalog), monitor,
 * drill-isolated, drill-switchover (its failover and failback children too), launch (a scheduled
 * drill's launcher: started, then skipped), binlog-archive, restore-test, resolve (a split of shop made by hand, resolved; the live roles read),
 * lock (lock-shop held by a failover; a failback refused meanwhile).
 * No argument records them all.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { LoadedInventory } from '../config/load';
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
} from '../workflows';
import { abortSignal, monitorStateQuery } from '../contract';
import { isolatedBackups, type IsolatedBackups } from '../test/helpers/backups';
import { readEstate } from '../test/helpers/estate';
import { approveGates, startRunbook } from '../test/helpers/drive';
import { sandboxSecrets, secretsIn } from '../test/helpers/secrets';
import {
  atGate,
  buildAdapters,
  eventually,
  ROOT,
  sandbox,
  sql,
  temporal,
  type TemporalHarness,
} from '../test/helpers/stack';

export const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'histories');
export const INDEX = path.join(FIXTURES, 'index.json');

/** One fixture: a history file, and the workflow id it ran under (workflows check their own id). */
export interface Fixture {
  file: string;
  workflowType: string;
  workflowId: string;
  description: string;
  recordedAt: string;
  events: number;
}

/** A run to keep: its id (and run id, where the id was reused), the fixture it becomes, and what it shows. */
interface Kept {
  fixture: string;
  workflowId: string;
  runId?: string;
  description: string;
}

interface Context {
  t: TemporalHarness;
  /** Backups under this invocation's own prefix, and the backup ids whose snapshots to delete at the end. */
  backups: IsolatedBackups & { snapshotsOf: string[] };
  activities: ReturnType<typeof buildAdapters>['activities'];
  base: LoadedInventory;
}

const recordings: Record<string, (c: Context) => Promise<Kept[]>> = {
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
async function topology(base: LoadedInventory, adapters: ReturnType<typeof buildAdapters>) {
  const e = await readEstate(base, adapters);
  return JSON.stringify({
    ...e,
    primary: { ...e.primary, ordersChecksum: '' },
    replica: { ...e.replica, ordersChecksum: '' },
  });
}

async function main(args: string[]) {
  // `--set <name>`: a new generation beside the old fixtures (test/fixtures/histories/<name>/), which stay
  // as they are, so runs recorded before a change and after it both keep replaying.
  const setAt = args.indexOf('--set');
  const set = setAt >= 0 ? args[setAt + 1] : '';
  if (setAt >= 0 && !/^[a-z0-9][a-z0-9.-]*$/.test(set ?? ''))
    throw new Error('--set needs a folder name (lowercase letters, digits, dots and dashes), e.g. --set 2026-12');
  const names = setAt >= 0 ? args.filter((_, i) => i !== setAt && i !== setAt + 1) : args;
  const unknown = names.filter((n) => !(n in recordings));
  if (unknown.length)
    throw new Error(`unknown recording(s) ${unknown.join(', ')}; known: ${Object.keys(recordings).join(', ')}`);
  const chosen = names.length ? names : Object.keys(recordings);
  // Each invocation has a backup prefix of its own: the restore test restores the backup made just before.
  if (chosen.includes('restore-test') && chosen.indexOf('backup') < 0)
    throw new Error('restore-test restores the backup this invocation makes: record "backup restore-test"');
  const base = sandbox();
  const secrets = sandboxSecrets(base);
  // Backups, reports and drill reports under a prefix and a directory of this recording's own.
  // shop archives its binlogs here (the binlog-archive recording, and the backup's archive step).
  const backups = Object.assign(
    isolatedBackups(
      base,
      (inv) => (inv.services.find((s) => s.name === 'shop')!.backup!.binlogArchive = true),
      'drbook-record',
    ),
    { snapshotsOf: [] as string[] },
  );
  const adapters = buildAdapters(backups.loaded);
  const t = await temporal(backups.loaded);
  const index = existsSync(INDEX) ? (JSON.parse(readFileSync(INDEX, 'utf8')) as Fixture[]) : [];
  mkdirSync(path.join(FIXTURES, set), { recursive: true });
  const before = await topology(base, adapters);
  try {
    for (const name of chosen) {
      const started = Date.now();
      const runs = await recordings[name]({ t, backups, activities: adapters.activities, base });
      for (const run of runs) {
        const history = await t.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
        const leaks = secretsIn(history, secrets);
        if (leaks.length) throw new Error(`${run.fixture}: the history holds ${leaks.join(', ')}: not written`);
        const file = set ? `${set}/${run.fixture}.json` : `${run.fixture}.json`;
        const json = historyToJSON(history);
        writeFileSync(path.join(FIXTURES, file), `${json}\n`);
        const started0 = history.events![0].workflowExecutionStartedEventAttributes!;
        const entry: Fixture = {
          file,
          workflowType: started0.workflowType!.name!,
          workflowId: run.workflowId,
          description: run.description,
          recordedAt: new Date().toISOString(),
          events: history.events!.length,
        };
        const at = index.findIndex((f) => f.file === file);
        if (at >= 0) index[at] = entry;
        else index.push(entry);
        console.log(`${file}: ${entry.events} events, ${Math.round(json.length / 1024)} KiB, no secret`);
      }
      console.log(`recorded ${name} in ${Math.round((Date.now() - started) / 1000)} s`);
    }
  } finally {
    index.sort((a, b) => a.file.localeCompare(b.file));
    writeFileSync(INDEX, `${JSON.stringify(index, null, 2)}\n`);
    const runbooks = ['failover-shop', 'failback-shop', 'failover-catalog', 'failback-catalog', 'drill-shop'];
    await t.terminate([...runbooks, 'resolve-shop', 'lock-shop', 'lock-catalog']);
    for (const id of backups.snapshotsOf) await backups.removeSnapshots('shop', id);
    await backups.cleanUp();
    const after = await topology(base, adapters);
    await t.close();
    await adapters.close();
    if (after !== before) {
      console.error(`the estate was not put back:\n before ${before}\n after  ${after}`);
      process.exitCode = 1;
    }
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
