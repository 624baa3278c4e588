/**
 * restoreTest({ service, backupId?, rds?, parallel?, pointInTime? }): the monthly proof that a backup restores.
 *
 *   pick the newest verified backup → fetch its manifest → check the object's SHA-256 against it
 *   → restore into fresh scratch databases (streamed: storage | zstd -d | mariadb, no temp copy)
 *   → validate (schema, row counts vs the manifest, the inventory's queries) → measure restore time
 *   (RTO evidence) and backup age (RPO evidence) → with the binlog archive: replay the archived binlogs
 *   onto the restore up to a point in time and validate there → with physical backups: the newest one restored
 *   into a scratch instance of its own and checked → with file trees (backup.paths): each tree's newest chain
 *   restored into a scratch directory on its host and checked file by file → restore the newest RDS snapshot in
 *   the DR region → ALWAYS clean up (scratch databases, the RDS instance), even when failed or cancelled
 *   → report (JSON, Markdown, HTML with history, in the primary backup destination) → alert on failure.
 *
 * Data-integrity checks decide pass/fail. Timings against the tier's targets decide it only for
 * cold services, whose recovery *is* this restore; for hot and warm ones they are evidence.
 */
import { CancellationScope } from '@temporalio/workflow';
import { parseInput, restoreTestInput, type RestoreTestInput, type RestoreTestResult } from '../../contract';
import { pickBackup, verifyChecksum } from './backup';
import { begin } from './begin';
import { restoreFileTrees } from './file-trees';
import { alertOnFailure, cleanUp, judge, publishReport, resultOf } from './finish';
import { restorePhysicalBackup } from './physical';
import { replayToPointInTime } from './pitr';
import { restoreRdsSnapshot } from './rds';
import { measureAgainstTargets, restoreIntoScratch, validate } from './scratch';

export async function restoreTest(rawInput: RestoreTestInput): Promise<RestoreTestResult> {
  const t = await begin(parseInput(restoreTestInput, rawInput));
  let thrown: unknown = null;
  try {
    const backup = await pickBackup(t);
    const checksumSeconds = await verifyChecksum(t, backup);
    const restored = await restoreIntoScratch(t, backup);
    const validateSeconds = await validate(t, backup, restored.databases);
    measureAgainstTargets(t, backup, [checksumSeconds, restored.seconds, validateSeconds]);
    await replayToPointInTime(t, backup, restored.databases);
    await restorePhysicalBackup(t);
    await restoreFileTrees(t);
    await restoreRdsSnapshot(t);
  } catch (err) {
    thrown = err;
  } finally {
    // Clean-up and the report happen whatever came before: success, failure, abort or cancellation.
    t.run.startChanging(); // from here an abort request is noted, not obeyed: scratch must not be left behind
    await CancellationScope.nonCancellable(async () => {
      await cleanUp(t);
      judge(t, thrown);
      await publishReport(t);
      await alertOnFailure(t, thrown);
      t.run.phase = t.report.outcome;
    });
  }
  return resultOf(t, thrown);
}
