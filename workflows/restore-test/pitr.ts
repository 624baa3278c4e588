/**
 * Point-in-time recovery (services with the binlog archive): the archived binlogs replayed onto the restore, up to
 * the point asked for, and the queries that must hold there.
 */
import { patched } from '@temporalio/workflow';
import { round1 } from '../steps';
import type { PickedBackup } from './backup';
import { acts, check, checked, type RestoreTest } from './context';
import type { ScratchDatabases } from './scratch';

export async function replayToPointInTime(t: RestoreTest, b: PickedBackup, databases: ScratchDatabases): Promise<void> {
  if (!(t.backup.binlogArchive && patched('pitr-restore'))) return;
  const { svc, input, report, scratchServer, queries, pointQueries } = t;
  const { manifest } = b;
  const point = input.pointInTime;
  const to = { time: point?.time, gtid: point?.gtid };
  const replayed = await checked(
    t,
    'pitr-replay',
    'replayBinlogsToPoint',
    () =>
      acts.replaying.replayBinlogsToPoint({
        service: svc.name,
        destination: b.destination,
        sourceServer: manifest.source.server,
        server: scratchServer,
        databases,
        from: manifest.position,
        to,
      }),
    (r) => `${r.logs.length} logs, ${r.transactions} transactions, ${r.detail}`,
  );
  report.pitr = {
    target: replayed.target,
    logs: replayed.logs,
    transactions: replayed.transactions,
    lastGtid: replayed.lastGtid,
    lastEventAt: replayed.lastEventAt,
    archiveEndsAt: replayed.archiveEndsAt,
    reached: replayed.reached,
    seconds: round1(replayed.seconds),
  };
  check(
    t,
    'pitr-replay',
    true,
    `${replayed.logs.join(', ')} from ${manifest.position.gtid ?? manifest.position.binlogFile}`,
  );
  check(t, 'pitr-reached', replayed.reached, replayed.detail);
  const pitrQueries = [...queries, ...pointQueries.filter((q) => !queries.includes(q))];
  if (pitrQueries.length) {
    const v = await checked(
      t,
      'pitr-validate',
      'validatePointInTime',
      () => acts.quick.validatePointInTime({ server: scratchServer, databases, queries: pitrQueries }),
      (x) => `${x.checks.filter((c) => c.ok).length}/${x.checks.length} checks passed`,
    );
    for (const c of v.checks) check(t, c.name, c.ok, c.detail, c.gate);
  }
  if (replayed.archiveEndsAt) measureArchiveAge(t, b, replayed.archiveEndsAt);
}

/** With the archive, a recovery reaches the newest archived log, not just the dump. */
function measureArchiveAge(t: RestoreTest, b: PickedBackup, archiveEndsAt: string): void {
  const { run, plan, svc } = t;
  const age = Math.max(0, Math.round((t.startedAt - Date.parse(archiveEndsAt)) / 1000));
  run.measured.rpoSeconds = Math.min(b.ageSeconds, age);
  check(
    t,
    'rpo-archive-age',
    age <= plan.targets.rpoSeconds,
    `the binlog archive ended ${age} s before the test began; the ${svc.tier} target is ${plan.targets.rpoSeconds} s`,
    t.gateTargets,
  );
}
