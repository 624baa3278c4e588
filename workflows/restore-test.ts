/**
 * restoreTest({ service, backupId?, rds?, parallel? }): the monthly proof that a backup restores.
 *
 *   pick the newest verified backup → fetch its manifest → check the object's SHA-256 against it
 *   → restore into fresh scratch databases (streamed: storage | zstd -d | mariadb, no temp copy)
 *   → validate (schema, row counts vs the manifest, the inventory's queries) → measure restore time
 *   (RTO evidence) and backup age (RPO evidence) → with the binlog archive: replay the archived binlogs
 *   onto the restore up to a point in time and validate there → with physical backups: the newest one restored
 *   into a scratch instance of its own and checked → with file trees (backup.paths): each tree's newest chain
 *   restored into a scratch directory on its host and checked file by file → restore the newest RDS snapshot in the DR region
 *   → ALWAYS clean up (scratch databases, the RDS instance), even when failed or cancelled
 *   → report (JSON, Markdown, HTML with history, in the primary backup destination) → alert on failure.
 *
 * Data-integrity checks decide pass/fail. Timings against the tier's targets decide it only for
 * cold services, whose recovery *is* this restore; for hot and warm ones they are evidence.
 */
import { ApplicationFailure, CancellationScope, isCancellation, patched, workflowInfo } from '@temporalio/workflow';
import type { ValidationQuery } from '../activities/restore';
import {
  fileTreeId,
  ErrorType,
  parseInput,
  restoreTestInput,
  type BackupManifest,
  type RestoreCheck,
  type RestoreTestInput,
  type RestoreTestReport,
  type RestoreTestResult,
  DrOutcome,
  DrRunbook,
  DrService,
} from '../contract';
import { backupIdAt } from './backup-policy';
import { recordRestoreTest } from './metrics';
import { planFor, reasonOf } from './plan';
import { RunbookRun } from './runbook';
import {
  activities,
  backupReads,
  binlogReplays,
  drActivities,
  notifications,
  rdsCleanup,
  rdsRestores,
  restoreChecks,
  restoreLoads,
  scratchCleanup,
} from './activity-options';

const quick = activities(restoreChecks);
const reading = activities(backupReads);
const loading = activities(restoreLoads);
const replaying = activities(binlogReplays);
const cleanup = activities(scratchCleanup);
const notify = activities(notifications);

/**
 * A short, stable tag of a long name (FNV-1a, 32 bits, hex): tells apart names that share a cut prefix. Written
 * here because workflow code cannot use node:crypto; it identifies, it does not protect.
 */
export function nameTag(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0').slice(0, 6);
}

/** `name` if it fits in `max` characters, else its head, `sep`, and a tag of the whole: distinct names stay distinct. */
function fit(name: string, max: number, sep: string, tagOf = name): string {
  if (name.length <= max && tagOf === name) return name;
  const head = name.slice(0, Math.max(0, max - 7)).replace(/[-_]+$/, '');
  return head ? `${head}${sep}${nameTag(tagOf)}` : nameTag(tagOf);
}

const SCRATCH_BASE = 40; // restore_<service>_<runTag>
const SCRATCH_NAME = 57; // + _<database>; SCRATCH_DATABASE in activities/restore allows 64
const RDS_INSTANCE = 60; // RESTORED_RDS_INSTANCE in activities/restore/rds.ts

/**
 * `restore_<service>_<runTag>` (+ `_<database>` when the backup holds several). The run tag is what keeps two
 * restore tests from dropping each other's scratch databases, so it is never cut: a long service name (or
 * database name) is shortened to its head plus a tag of the whole name instead.
 */
export function scratchNames(service: string, runTag: string, databases: string[]) {
  const svc = service.replace(/-/g, '_');
  const base = `restore_${fit(svc, SCRATCH_BASE - 'restore__'.length - runTag.length, '_')}_${runTag}`;
  return databases.map((source) => {
    const db = source.toLowerCase().replace(/[^a-z0-9_]/g, '_');
    // The tag covers the source name as written: Shop and shop, or a-b and a_b, are different databases.
    return {
      source,
      scratch: databases.length === 1 ? base : `${base}_${fit(db, SCRATCH_NAME - base.length - 1, '_', source)}`,
    };
  });
}

/** The names before the run tag was kept (runs started before, replayed: they must drop what they created). */
export function scratchNamesBeforeRunTagKept(service: string, runTag: string, databases: string[]) {
  const base = `restore_${service.replace(/-/g, '_')}_${runTag}`.slice(0, 40);
  return databases.map((source) => ({
    source,
    scratch: databases.length === 1 ? base : `${base}_${source.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 57),
  }));
}

/** `drbook-restore-test-<service>-<runTag>`: a valid RDS identifier (no `--`), recognisable as disposable. */
export function restoredRdsInstanceName(service: string, runTag: string): string {
  const svc = service.replace(/-+/g, '-').replace(/-$/, '');
  const room = RDS_INSTANCE - 'drbook-restore-test--'.length - runTag.length;
  return `drbook-restore-test-${fit(svc, room, '-', service)}-${runTag}`;
}

export const restoredRdsInstanceNameBeforeRunTagKept = (service: string, runTag: string) =>
  `drbook-restore-test-${service}-${runTag}`.slice(0, 60).replace(/-+$/, '');

/**
 * Names that keep the run tag. Where they differ from the old ones (long or unusual names), a run that began
 * before this change keeps its old names on replay, so its clean-up drops what it created.
 */
function keepingRunTag<T>(current: T, before: T): T {
  if (JSON.stringify(current) === JSON.stringify(before)) return current;
  return patched('restore-names-keep-run-tag') ? current : before;
}

const round1 = (n: number) => Math.round(n * 10) / 10;

export async function restoreTest(rawInput: RestoreTestInput): Promise<RestoreTestResult> {
  const input = parseInput(restoreTestInput, rawInput);
  const plan = await planFor(input.service);
  const svc = plan.service;
  const startedAt = Date.now();
  // The run id's random tail (its head is a timestamp): distinct scratch names for runs a second apart.
  const runTag = workflowInfo()
    .runId.replace(/[^a-z0-9]/gi, '')
    .slice(-8)
    .toLowerCase();
  const testId = `${backupIdAt(startedAt)}-${runTag}`;
  const pointQueries = pointInTimeQueries(input.pointInTime?.queries ?? [], svc.restoreTest);
  const run = new RunbookRun('restoreTest', svc.name, plan.targets, plan.approvers, startedAt);
  run.tag([
    { key: DrService, value: svc.name },
    { key: DrRunbook, value: 'restoreTest' },
  ]);
  if (!svc.backup || !svc.restoreTest || !svc.database) {
    throw ApplicationFailure.create({
      type: ErrorType.NotConfigured,
      message: `service ${svc.name} needs backup, database and restoreTest sections in the inventory for a restore test`,
      nonRetryable: true,
    });
  }
  const { scratchServer, queries } = svc.restoreTest;
  const gateTargets = svc.strategy === 'cold';

  const checks: RestoreCheck[] = [];
  const check = (name: string, ok: boolean, detail: string, gate = true) => {
    checks.push({ name, ok, gate, detail });
    run.notes.push(`${ok ? 'PASS' : gate ? 'FAIL' : 'MISS'} ${name}: ${detail}`);
  };
  const report: RestoreTestReport = {
    format: 'drbook-restore-test/1',
    id: testId,
    service: svc.name,
    tier: svc.tier,
    strategy: svc.strategy,
    outcome: 'passed',
    failedCheck: null,
    startedAt: new Date(startedAt).toISOString(),
    endedAt: '',
    backup: { id: null, source: null, startedAt: null, size: null, sha256: null, position: null },
    scratch: null,
    measured: {
      restoreSeconds: null,
      rtoSeconds: null,
      backupAgeSeconds: null,
      checksumSeconds: null,
      bytesRestored: null,
    },
    targets: plan.targets,
    checks,
    rds: null,
    cleanup: [],
    steps: run.steps,
    links: null,
  };

  let scratchCreated = false;
  let rdsInstance: { region: string; instance: string } | null = null;
  let thrown: unknown = null;
  /** Run a step; a failure becomes the named check's failure (and ends the run). */
  const checked = async <T>(checkName: string, step: string, work: () => Promise<T>, describe: (r: T) => string) => {
    try {
      return await run.step(step, work, describe);
    } catch (err) {
      if (!isCancellation(err)) {
        const typed = err instanceof ApplicationFailure ? err.type : null;
        // A refused scratch server is its own finding: the restore never began (nothing was written there).
        const named =
          typed === ErrorType.BackupCorrupt
            ? 'checksum'
            : typed === ErrorType.ScratchIsProduction
              ? 'scratch-isolated'
              : checkName;
        check(named, false, reasonOf(err));
      }
      throw err;
    }
  };

  try {
    // 1. Pick the backup and read its manifest.
    const picked = await checked(
      'backup-available',
      'pickNewestVerifiedBackup',
      () => quick.pickNewestVerifiedBackup({ service: svc.name, backupId: input.backupId }),
      (p) => `${p.backupId} from ${p.destination} (${p.verifiedCount} verified there)`,
    );
    report.backup.id = picked.backupId;
    report.backup.source = picked.location;
    const manifest: BackupManifest = await checked(
      'manifest',
      'fetchManifest',
      () => quick.fetchManifest({ service: svc.name, backupId: picked.backupId, destination: picked.destination }),
      (m) => `${m.tables.length} tables in ${m.databases.join(', ')}, ${m.object.size} bytes`,
    );
    Object.assign(report.backup, {
      startedAt: manifest.startedAt,
      size: manifest.object.size,
      sha256: manifest.object.sha256,
      position: manifest.position,
    });
    check('backup-available', true, `${picked.backupId}, taken ${manifest.startedAt}, read from ${picked.location}`);
    // The data is as old as the dump's snapshot (its start), measured when the test begins using it.
    const backupAgeSeconds = Math.max(0, Math.round((Date.now() - Date.parse(manifest.startedAt)) / 1000));
    report.measured.backupAgeSeconds = backupAgeSeconds;
    run.measured.rpoSeconds = backupAgeSeconds;

    // 2. Prove the object is the one the manifest describes, before restoring anything.
    const sum = await checked(
      'checksum',
      'verifyBackupChecksum',
      () =>
        reading.verifyBackupChecksum({
          service: svc.name,
          backupId: picked.backupId,
          destination: picked.destination,
          size: manifest.object.size,
          sha256: manifest.object.sha256,
        }),
      (c) => `${c.bytes} bytes, SHA-256 ${c.sha256.slice(0, 12)}… matches the manifest`,
    );
    report.measured.checksumSeconds = round1(sum.seconds);
    check('checksum', true, `${sum.bytes} bytes, SHA-256 ${sum.sha256} equals the manifest's`);

    // 3. Restore into fresh scratch databases.
    const databases = keepingRunTag(
      scratchNames(svc.name, runTag, manifest.databases),
      scratchNamesBeforeRunTagKept(svc.name, runTag, manifest.databases),
    );
    report.scratch = { server: scratchServer, databases };
    scratchCreated = true;
    const restored = await checked(
      'restore',
      'restoreIntoScratch',
      () =>
        loading.restoreIntoScratch({
          service: svc.name,
          backupId: picked.backupId,
          destination: picked.destination,
          server: scratchServer,
          databases,
          size: manifest.object.size,
          sha256: manifest.object.sha256,
          parallel: input.parallel,
        }),
      (r) =>
        `${r.bytesLoaded} bytes of SQL, ${r.tables} tables over ${r.parallel} sessions into ${databases.map((d) => d.scratch).join(', ')} in ${round1(r.seconds)} s`,
    );
    report.measured.restoreSeconds = round1(restored.seconds);
    report.measured.bytesRestored = restored.bytesLoaded;
    check(
      'restore',
      true,
      `${restored.tables} tables, ${restored.statements} statements in ${round1(restored.seconds)} s`,
    );

    // 4. Validate what was loaded.
    const validated = await checked(
      'validate',
      'validateRestore',
      () =>
        quick.validateRestore({
          server: scratchServer,
          databases,
          tables: manifest.tables,
          rowCountsExact: manifest.rowCounts.exact,
          queries,
        }),
      (v) => `${v.checks.filter((c) => c.ok).length}/${v.checks.length} checks passed`,
    );
    for (const c of validated.checks) check(c.name, c.ok, c.detail, c.gate);

    // 5. Measure against the tier's targets.
    const rto = round1(sum.seconds + restored.seconds + validated.seconds);
    report.measured.rtoSeconds = rto;
    run.measured.rtoSeconds = rto;
    check(
      'rto-restore-time',
      rto <= plan.targets.rtoSeconds,
      `checksum + restore + validation took ${rto} s; the ${svc.tier} target is ${plan.targets.rtoSeconds} s`,
      gateTargets,
    );
    check(
      'rpo-backup-age',
      backupAgeSeconds <= plan.targets.rpoSeconds,
      `the backup was ${backupAgeSeconds} s old when tested; the ${svc.tier} target is ${plan.targets.rpoSeconds} s`,
      gateTargets,
    );

    // 5b. Point-in-time recovery: the archived binlogs replayed onto the restore, up to the point asked for.
    if (svc.backup.binlogArchive && patched('pitr-restore')) {
      const point = input.pointInTime;
      const to = { time: point?.time, gtid: point?.gtid };
      const replayed = await checked(
        'pitr-replay',
        'replayBinlogsToPoint',
        () =>
          replaying.replayBinlogsToPoint({
            service: svc.name,
            destination: picked.destination,
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
        'pitr-replay',
        true,
        `${replayed.logs.join(', ')} from ${manifest.position.gtid ?? manifest.position.binlogFile}`,
      );
      check('pitr-reached', replayed.reached, replayed.detail);
      const pitrQueries = [...queries, ...pointQueries.filter((q) => !queries.includes(q))];
      if (pitrQueries.length) {
        const v = await checked(
          'pitr-validate',
          'validatePointInTime',
          () => quick.validatePointInTime({ server: scratchServer, databases, queries: pitrQueries }),
          (x) => `${x.checks.filter((c) => c.ok).length}/${x.checks.length} checks passed`,
        );
        for (const c of v.checks) check(c.name, c.ok, c.detail, c.gate);
      }
      if (replayed.archiveEndsAt) {
        // With the archive, a recovery reaches the newest archived log, not just the dump.
        const age = Math.max(0, Math.round((startedAt - Date.parse(replayed.archiveEndsAt)) / 1000));
        run.measured.rpoSeconds = Math.min(backupAgeSeconds, age);
        check(
          'rpo-archive-age',
          age <= plan.targets.rpoSeconds,
          `the binlog archive ended ${age} s before the test began; the ${svc.tier} target is ${plan.targets.rpoSeconds} s`,
          gateTargets,
        );
      }
    }

    // 5c. Physical backup: the newest one restored into a scratch instance of its own (started,
    //     checked, stopped and deleted inside the one activity, whatever happens).
    if (svc.backup.physical && patched('physical-restore')) {
      const pp = await checked(
        'physical-backup-available',
        'pickNewestVerifiedBackup physical',
        () => quick.pickNewestVerifiedBackup({ service: svc.name, kind: 'physical' }),
        (p) => `${p.backupId} from ${p.destination}`,
      );
      const pm = await checked(
        'physical-manifest',
        'fetchManifest physical',
        () =>
          quick.fetchManifest({
            service: svc.name,
            backupId: pp.backupId,
            destination: pp.destination,
            kind: 'physical',
          }),
        (m) => `${m.object.size} bytes, taken ${m.startedAt}, GTID ${m.position.gtid ?? '-'}`,
      );
      const pr = await checked(
        'physical-restore',
        'restorePhysicalIntoScratch',
        () =>
          loading.restorePhysicalIntoScratch({
            service: svc.name,
            backupId: pp.backupId,
            destination: pp.destination,
            size: pm.object.size,
            sha256: pm.object.sha256,
            databases: svc.backup!.databases,
            gtid: pm.position.gtid,
            queries,
          }),
        (r) =>
          `extract ${round1(r.seconds.extract)} s, prepare ${round1(r.seconds.prepare)} s, start ${round1(r.seconds.start)} s, ${r.tables.length} tables checked; instance ${r.cleanedUp ? 'removed' : 'NOT removed'}`,
      );
      report.physical = {
        backupId: pp.backupId,
        startedAt: pm.startedAt,
        seconds: pr.seconds,
        rows: pr.tables.reduce((n, t) => n + t.rows, 0),
        cleanedUp: pr.cleanedUp,
      };
      check(
        'physical-restore',
        true,
        `${pp.backupId} (${pm.object.size} bytes) restored in ${round1(pr.seconds.total)} s`,
      );
      for (const c of pr.checks) check(c.name, c.ok, c.detail, c.gate);
      check(
        'physical-cleanup',
        pr.cleanedUp,
        pr.cleanedUp
          ? 'scratch instance stopped, its directory deleted'
          : 'the scratch instance or its directory was left behind',
      );
    }

    // 5d. File trees (backup.paths): each tree's newest chain restored into a scratch directory on its host and
    //     checked file by file against the backup's per-file list; the directory is removed whatever the check said.
    if (svc.backup.paths?.length && patched('file-tree-restore')) {
      const trees: NonNullable<RestoreTestReport['fileTrees']> = [];
      report.fileTrees = trees;
      for (const p of svc.backup.paths) {
        const tree = fileTreeId(p);
        const r = await checked(
          'file-tree-restore',
          `restoreFileTree ${tree}`,
          () => loading.restoreFileTree({ service: svc.name, tree }),
          (x) =>
            `${x.backupId} (chain ${x.chain.join(' → ')}) from ${x.destination} into ${x.host}:${x.into} in ` +
            `${x.seconds} s: ${x.files} entries, ${x.problems.length} differences`,
        );
        let cleanedUp = false;
        try {
          await CancellationScope.nonCancellable(() =>
            run.step(
              `removeFileTreeScratch ${tree}`,
              () => cleanup.removeFileTreeScratch({ service: svc.name, tree, into: r.into }),
              (x) => `${x.host}:${x.removed} removed`,
            ),
          );
          cleanedUp = true;
        } catch (err) {
          check('cleanup', false, `could not remove ${r.host}:${r.into}: ${reasonOf(err)}`);
        }
        trees.push({
          tree,
          host: r.host,
          path: p.path,
          backupId: r.backupId,
          chain: r.chain,
          files: r.files,
          bytes: r.bytes,
          seconds: r.seconds,
          problems: r.problems,
          cleanedUp,
        });
        check(
          `file-tree ${tree}`,
          r.problems.length === 0,
          r.problems.length
            ? `${r.problems.length} differences from the backup's file list: ${r.problems.slice(0, 5).join('; ')}`
            : `${p.host}:${p.path} as of ${r.backupId} (${r.chain.length} archives): ${r.files} entries exactly as ` +
                'backed up (type, mode, size, SHA-256, symlink target; deleted files absent)',
        );
      }
    }

    // 6. RDS: the newest snapshot in the DR region, restored there.
    const rds = svc.rds;
    if (input.rds && rds) {
      const drSide = drActivities(plan, rdsRestores);
      rdsInstance = {
        region: plan.regions.dr,
        instance: keepingRunTag(
          restoredRdsInstanceName(svc.name, runTag),
          restoredRdsInstanceNameBeforeRunTagKept(svc.name, runTag),
        ),
      };
      const target = rdsInstance;
      const r = await checked(
        'rds-restore',
        'restoreRdsSnapshotInDr',
        () =>
          drSide.restoreRdsSnapshotInDr({
            service: svc.name,
            region: target.region,
            sourceInstance: rds.instance,
            instance: target.instance,
          }),
        (x) => `${x.snapshot} → ${x.instance} (${x.region}) ${x.status} in ${round1(x.seconds)} s`,
      );
      report.rds = {
        snapshot: r.snapshot,
        region: r.region,
        instance: r.instance,
        status: r.status,
        seconds: round1(r.seconds),
        deleted: false,
      };
      check(
        'rds-restore',
        r.status === 'available' && r.endpoint !== null,
        `${r.snapshot} (taken ${r.snapshotCreatedAt ?? '?'}) restored as ${r.instance} in ${r.region}: ${r.status}, endpoint ${r.endpoint ?? 'none'}, ${r.engine ?? ''}`.trim(),
      );
    } else if (rds) {
      run.skip('restoreRdsSnapshotInDr', 'rds: false in the input');
    }
  } catch (err) {
    thrown = err;
  } finally {
    // Clean-up and the report happen whatever came before: success, failure, abort or cancellation.
    run.startChanging(); // from here an abort request is noted, not obeyed: scratch must not be left behind
    await CancellationScope.nonCancellable(async () => {
      if (scratchCreated && report.scratch) {
        const names = report.scratch.databases.map((d) => d.scratch);
        try {
          const dropped = await run.step(
            'dropScratchDatabase',
            () => cleanup.dropScratchDatabase({ server: scratchServer, databases: names }),
            (d) =>
              `dropped ${d.dropped.join(', ') || 'nothing'}${d.absent.length ? `; never created: ${d.absent.join(', ')}` : ''}`,
          );
          report.cleanup.push({
            done: true,
            detail: `scratch databases on ${scratchServer}: dropped ${dropped.dropped.join(', ') || 'none'}${dropped.absent.length ? `, absent ${dropped.absent.join(', ')}` : ''}`,
          });
        } catch (err) {
          report.cleanup.push({
            done: false,
            detail: `scratch databases ${names.join(', ')} on ${scratchServer}: ${reasonOf(err)}`,
          });
          check('cleanup', false, `could not drop ${names.join(', ')}: ${reasonOf(err)}`);
        }
      }
      if (rdsInstance) {
        const target = rdsInstance;
        const drCleanup = drActivities(plan, rdsCleanup);
        try {
          const d = await run.step(
            'deleteRestoredRdsInstance',
            () => drCleanup.deleteRestoredRdsInstance(target),
            (x) => (x.deleted ? `${x.instance} deleted` : `${x.instance} was never created`),
          );
          if (report.rds) report.rds.deleted = d.deleted;
          report.cleanup.push({
            done: true,
            detail: `RDS instance ${target.instance} (${target.region}): ${d.deleted ? 'deleted' : 'never created'}`,
          });
        } catch (err) {
          report.cleanup.push({
            done: false,
            detail: `RDS instance ${target.instance} (${target.region}): ${reasonOf(err)}`,
          });
          check('cleanup', false, `could not delete RDS instance ${target.instance}: ${reasonOf(err)}`);
        }
      }

      const failedCheck = checks.find((c) => c.gate && !c.ok)?.name ?? null;
      report.outcome = isCancellation(thrown) ? 'cancelled' : failedCheck || thrown ? 'failed' : 'passed';
      report.failedCheck = failedCheck ?? (thrown && !isCancellation(thrown) ? 'runbook' : null);
      report.endedAt = new Date(Date.now()).toISOString();
      run.phase = report.outcome;
      run.tag([{ key: DrOutcome, value: report.outcome }]);
      if (report.outcome !== 'cancelled') recordRestoreTest(svc.name, report.outcome === 'passed');

      try {
        const links = await run.step(
          'publishRestoreReport',
          () => quick.publishRestoreReport({ report }),
          (l) => `${l.html} (${l.history} earlier tests)`,
        );
        report.links = { json: links.json, markdown: links.markdown, html: links.html };
      } catch (err) {
        run.notes.push(`report not stored: ${reasonOf(err)}`);
      }

      if (report.outcome === 'failed') {
        const failed = checks.find((c) => c.name === report.failedCheck);
        const subject = `drbook: restore test of ${svc.name} FAILED at check ${report.failedCheck}`;
        const message = [
          `Restore test ${testId} of ${svc.name} (backup ${report.backup.id ?? 'none'}) failed.`,
          `Failed check: ${report.failedCheck}: ${failed?.detail ?? reasonOf(thrown)}`,
          `Clean-up: ${report.cleanup.map((c) => `${c.done ? 'done' : 'NOT DONE'}: ${c.detail}`).join('; ') || 'nothing to clean up'}`,
          `Report: ${report.links?.html ?? '(not stored)'}`,
        ].join('\n');
        const key = `${workflowInfo().workflowId}/${workflowInfo().runId}/restore-test-failed`;
        await Promise.all(
          plan.notificationTargets.map((target) =>
            run
              .step(`notify ${target}`, () =>
                notify.notifyTarget({ target, subject, message, idempotencyKey: `${key}/${target}` }),
              )
              .catch((err: unknown) => run.notes.push(`alert to ${target} failed: ${reasonOf(err)}`)),
          ),
        );
      }
      run.phase = report.outcome;
    });
  }

  const result: RestoreTestResult = {
    service: svc.name,
    testId,
    outcome: report.outcome,
    backupId: report.backup.id,
    failedCheck: report.failedCheck,
    measured: report.measured,
    targets: report.targets,
    report: report.links,
  };
  if (isCancellation(thrown)) throw thrown;
  if (report.outcome === 'failed') {
    const failed = checks.find((c) => c.name === report.failedCheck);
    throw ApplicationFailure.create({
      type: ErrorType.RestoreTestFailed,
      message: `restore test of ${svc.name} failed at check ${report.failedCheck}: ${failed?.detail ?? reasonOf(thrown)} (report: ${report.links?.html ?? 'not stored'})`,
      nonRetryable: true,
      details: [result],
    });
  }
  return result;
}

/**
 * The queries a restoreTest input asks for at its point in time, by name, from the service's inventory: they run
 * as drbook's admin user and their first cell goes into history, so the input may not bring its own SQL. Checked
 * before anything is restored; an unknown name fails naming its position and the names there are.
 */
function pointInTimeQueries(
  asked: (string | ValidationQuery)[],
  restore: { queries: ValidationQuery[]; pointInTimeQueries?: ValidationQuery[] } | undefined,
): ValidationQuery[] {
  const adHoc = asked.findIndex((q) => typeof q !== 'string');
  // Runs started before names were required keep their ad-hoc queries on replay.
  if (adHoc >= 0 && !patched('pitr-named-queries')) return asked as ValidationQuery[];
  const known = [...(restore?.queries ?? []), ...(restore?.pointInTimeQueries ?? [])];
  const problems = asked.flatMap((q, i) => {
    if (typeof q !== 'string')
      return [`pointInTime.queries.${i}: ad-hoc SQL is not accepted; name one of the service's inventory queries`];
    return known.some((k) => k.name === q)
      ? []
      : [
          `pointInTime.queries.${i}: no inventory query named ${JSON.stringify(q.slice(0, 80))} (known: ${known.map((k) => k.name).join(', ') || 'none'})`,
        ];
  });
  if (problems.length)
    throw ApplicationFailure.create({
      type: ErrorType.InvalidInput,
      message: `invalid input: ${problems.join('; ')}`,
      nonRetryable: true,
      details: [problems],
    });
  return [...new Set(asked as string[])].map((n) => known.find((k) => k.name === n)!);
}
