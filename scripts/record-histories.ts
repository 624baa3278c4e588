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
 * drill's launcher: started, then skipped), binlog-archive, restore-test, resolve (a split of shop made by hand,
 * resolved; the live roles read), lock (lock-shop held by a failover; a failback refused meanwhile).
 * No argument records them all.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { isolatedBackups } from '../test/helpers/backups';
import { sandboxSecrets, secretsIn } from '../test/helpers/secrets';
import { buildAdapters, ROOT, sandbox, temporal } from '../test/helpers/stack';
import { recordings, topology } from './record-histories/recordings';

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
