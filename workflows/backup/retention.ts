/**
 * Retention (GFS), per destination: each keeps its own newest verified backup whatever happened elsewhere. What it
 * lists also tells compliance the offline copies and the newest verified backup before this one.
 */
import { patched } from '@temporalio/workflow';
import type { ServiceBackupResult } from '../../contract';
import { offlineCopiesVerified, planRetention } from '../backup-policy';
import { bookkeeping, failed, type ServiceBackup } from './context';

export interface Retention {
  retention: ServiceBackupResult['retention'];
  /** The newest verified backup before this run's, in any destination. */
  previousVerifiedId: string | null;
  /** Offline destinations holding a copy verified within their period (3-2-1-1). */
  offlineCopies: number;
  /** Which backup of a week or month is its keeper (see planRetention). */
  anchor: 'first' | 'newest';
}

type Listed = Awaited<ReturnType<typeof bookkeeping.listBackups>>;

export async function applyRetention(b: ServiceBackup): Promise<Retention> {
  const { service, backupId, backup, steps } = b;
  b.status.phase = 'retention';
  // A week's and a month's keeper is its FIRST verified backup, the one its Object Lock was set for when written
  // (gfsClass); runs recorded before that kept the newest, and replay them so.
  const anchor = patched('gfs-first-of-period') ? 'first' : 'newest';
  const kept: Retention = { retention: [], previousVerifiedId: null, offlineCopies: 0, anchor };
  try {
    const listed = await steps.run(
      'listBackups',
      () => bookkeeping.listBackups({ service }),
      (l) => l.map((d) => `${d.destination}: ${d.backups.length}`).join(', '),
    );
    // Offline destinations count for 3-2-1-1 only with a copy verified within their period (this run's included).
    const offline = Object.fromEntries(
      Object.entries(backup.destinations).map(([name, d]) => [
        name,
        d?.offline ? { verifiedWithinSeconds: d.offline.verifiedWithin } : undefined,
      ]),
    );
    kept.offlineCopies = offlineCopiesVerified(listed, offline, Date.now());
    kept.previousVerifiedId =
      listed
        .flatMap((d) => d.backups)
        .filter((v) => v.verified && v.id < backupId)
        .map((v) => v.id)
        .sort()
        .pop() ?? null;
    for (const { destination, backups } of listed)
      kept.retention.push(await retainLogical(b, destination, backups, anchor));
    // Physical backups: the same policy, over their own history (each kind keeps its own newest verified one).
    if (backup.physical) await retainPhysical(b, anchor);
  } catch (err) {
    failed(b, 'retention', err);
  }
  return kept;
}

async function retainLogical(
  b: ServiceBackup,
  destination: Listed[number]['destination'],
  backups: Listed[number]['backups'],
  anchor: Retention['anchor'],
): Promise<ServiceBackupResult['retention'][number]> {
  const { service } = b;
  const decided = planRetention(backups, b.backup.retention, Date.now(), undefined, anchor);
  const applied = decided.remove.length
    ? await b.steps.run(
        `applyRetention ${destination}`,
        () => bookkeeping.deleteBackups({ service, destination, ids: decided.remove }),
        retentionDetail,
      )
    : null;
  // A backup under Object Lock is not deleted (S3 would refuse): it is kept, saying until when.
  const locked = applied?.locked ?? [];
  return {
    destination,
    kept: [...decided.keep.map((k) => k.id), ...locked.map((l) => l.id)],
    deleted: applied ? applied.deleted : [],
    ...(locked.length ? { locked } : {}),
  };
}

async function retainPhysical(b: ServiceBackup, anchor: Retention['anchor']): Promise<void> {
  const { service, steps } = b;
  const listed = await steps.run(
    'listBackups physical',
    () => bookkeeping.listBackups({ service, kind: 'physical' }),
    (l) => l.map((d) => `${d.destination}: ${d.backups.length}`).join(', '),
  );
  for (const { destination, backups } of listed) {
    const decided = planRetention(backups, b.backup.retention, Date.now(), undefined, anchor);
    if (!decided.remove.length) continue;
    await steps.run(
      `applyRetention physical ${destination}`,
      () => bookkeeping.deleteBackups({ service, destination, ids: decided.remove, kind: 'physical' }),
      retentionDetail,
    );
  }
}

/** What retention did in one destination: "deleted …; kept: locked until …" for backups under Object Lock. */
function retentionDetail(r: { deleted: string[]; locked?: { id: string; until: string }[] }): string {
  const parts = [`deleted ${r.deleted.join(', ') || 'none'}`];
  for (const l of r.locked ?? []) parts.push(`kept: locked until ${l.until} (${l.id})`);
  return parts.join('; ');
}
