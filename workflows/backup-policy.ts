/**
 * Backup decisions as pure functions (no I/O, no clock: `now` is an argument), so the
 * workflow can make them deterministically and unit tests can prove them on a synthetic
 * history: grandfather-father-son retention and 3-2-1 / RPO compliance.
 */
import {
  backupTime,
  isoWeek,
  utcDay,
  utcMonth,
  type BackupCompliance,
  type BackupCopy,
  type FileTreeBackupRef,
  type FileTreeLevel,
  type RetentionPolicy,
} from '../contract';

/** epoch ms → backup id. */
export function backupIdAt(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
}

export interface RetentionPlan {
  keep: { id: string; reasons: string[] }[];
  remove: string[];
}

/**
 * Grandfather-father-son over one destination's backups: the newest verified backup of each of
 * the last `daily` days, and of each of the last `weekly` ISO weeks and `monthly` months that have
 * one (days without a backup do not use up a slot), the verified backup `anchor` names in that week
 * or month: the `first` (the one `gfsClass` classed, and locked, as weekly or monthly when it was
 * written) or the `newest` (runs recorded before Object Lock followed the class). The newest
 * verified backup is kept whatever the policy says.
 * Unverified backups (no manifest: a failed or interrupted run) are kept while they are newer
 * than the newest verified one or younger than `graceSeconds` (a run may still be writing them).
 */
export function planRetention(
  backups: { id: string; verified: boolean }[],
  policy: RetentionPolicy,
  nowMs: number,
  graceSeconds = 86400,
  anchor: 'newest' | 'first' = 'newest',
): RetentionPlan {
  const reasons = new Map<string, string[]>();
  const keep = (id: string, why: string) => reasons.set(id, [...(reasons.get(id) ?? []), why]);
  const verified = backups
    .filter((b) => b.verified)
    .map((b) => b.id)
    .sort()
    .reverse();
  if (verified.length) keep(verified[0], 'newest verified');
  for (const [name, count, bucket] of [
    ['daily', policy.daily, utcDay],
    ['weekly', policy.weekly, isoWeek],
    ['monthly', policy.monthly, utcMonth],
  ] as const) {
    // Newest period first; within a period, the backup that stands for it (daily: always the day's newest).
    const chosen = new Map<string, string>();
    for (const id of verified) {
      const b = bucket(backupTime(id));
      if (!chosen.has(b) || (anchor === 'first' && name !== 'daily')) chosen.set(b, id);
    }
    for (const [b, id] of [...chosen].slice(0, count)) keep(id, `${name} ${b}`);
  }
  const newestVerifiedAt = verified.length ? backupTime(verified[0]) : -Infinity;
  for (const b of backups) {
    if (b.verified) continue;
    const t = backupTime(b.id);
    if (t > newestVerifiedAt) keep(b.id, 'unverified, newer than the newest verified');
    else if (nowMs - t < graceSeconds * 1000) keep(b.id, 'unverified, may still be running');
  }
  const ids = [...new Set(backups.map((b) => b.id))].sort().reverse();
  return {
    keep: ids.filter((id) => reasons.has(id)).map((id) => ({ id, reasons: reasons.get(id)! })),
    remove: ids.filter((id) => !reasons.has(id)),
  };
}

const human = (s: number) =>
  s >= 86400 && s % 3600 === 0
    ? `${+(s / 86400).toFixed(1)} d`
    : s >= 3600
      ? `${+(s / 3600).toFixed(1)} h`
      : s >= 60
        ? `${Math.round(s / 60)} min`
        : `${s} s`;

/**
 * Offline destinations that count for 3-2-1-1: those flagged `offline` whose newest verified backup (its id is its
 * start time) is within the destination's `verifiedWithin` seconds of now. A destination that was not reachable in
 * its window, or whose copy failed verification, holds nothing recent and does not count.
 */
export function offlineCopiesVerified(
  listed: { destination: string; backups: { id: string; verified: boolean }[] }[],
  offline: Record<string, { verifiedWithinSeconds: number } | undefined>,
  nowMs: number,
): number {
  return listed.filter(({ destination, backups }) => {
    const within = offline[destination]?.verifiedWithinSeconds;
    const newest = backups
      .filter((b) => b.verified)
      .map((b) => backupTime(b.id))
      .sort((a, b) => b - a)[0];
    return within !== undefined && newest !== undefined && nowMs - newest <= within * 1000;
  }).length;
}

export interface ComplianceFacts {
  service: string;
  copies: Pick<BackupCopy, 'kind' | 'offsite' | 'objectLock'>[];
  /** The service's tier: a critical service needs an immutable or offline copy (3-2-1-1). */
  tier?: 'critical' | 'important' | 'normal';
  /** Offline destinations with a copy verified within their period (offlineCopiesVerified). */
  offlineCopies?: number;
  backupId: string | null;
  endedAtMs: number | null;
  previousVerifiedId: string | null;
  nowMs: number;
  rpoSeconds: number;
  intervalSeconds: number;
  /** With a binlog archive: when its newest log was closed. The data-loss window is then that log's age. */
  newestBinlogClosedAtMs?: number | null;
}

/**
 * 3-2-1-1 (three verified copies, two media kinds, one off-site, one immutable) and the data-loss window
 * against the tier's RPO. Immutable: under S3 Object Lock, so the worker's own credentials (all a
 * compromised worker has) cannot delete it; a critical service without such a copy is a finding.
 */
export function assessCompliance(args: ComplianceFacts): BackupCompliance {
  const { service, copies, rpoSeconds } = args;
  const mediaKinds = [...new Set(copies.map((c) => c.kind))].sort();
  const offsite = copies.some((c) => c.offsite);
  const immutableCopies = copies.filter((c) => c.objectLock).length;
  const offlineCopies = args.offlineCopies ?? 0;
  const problems = copyProblems(args, mediaKinds, offsite, immutableCopies + offlineCopies);
  const ageSeconds = args.endedAtMs === null ? null : Math.max(0, Math.round((args.nowMs - args.endedAtMs) / 1000));
  const exposureSeconds = dataLossWindow(args);
  const rpoMet = exposureSeconds !== null && exposureSeconds <= rpoSeconds;
  if (args.endedAtMs === null) problems.push('no verified backup');
  else if (!rpoMet)
    problems.push(rpoProblem(exposureSeconds!, rpoSeconds, (args.newestBinlogClosedAtMs ?? null) !== null));
  return {
    service,
    copies: copies.length,
    mediaKinds,
    offsite,
    rule321: copies.length >= 3 && mediaKinds.length >= 2 && offsite,
    immutableCopies,
    offlineCopies,
    rule3211: copies.length >= 3 && mediaKinds.length >= 2 && offsite && immutableCopies + offlineCopies > 0,
    ageSeconds,
    exposureSeconds,
    rpoSeconds,
    rpoMet,
    problems,
  };
}

/** What the copies lack for 3-2-1, and for 3-2-1-1 where the tier is critical. */
function copyProblems(args: ComplianceFacts, mediaKinds: string[], offsite: boolean, immutable: number): string[] {
  const { copies } = args;
  const problems: string[] = [];
  if (copies.length < 3)
    problems.push(`${copies.length} verified cop${copies.length === 1 ? 'y' : 'ies'}, 3-2-1 needs 3`);
  if (mediaKinds.length < 2) problems.push(`one media kind (${mediaKinds.join('') || 'none'}), 3-2-1 needs 2`);
  if (!offsite) problems.push('no off-site copy (DR region)');
  if (args.tier === 'critical' && immutable === 0)
    problems.push(
      'no immutable or offline copy: 3-2-1-1 needs one for a critical service (a destination with objectLock, or ' +
        'an offline one with a copy verified within its period), or every copy can be deleted with the ' +
        "worker's credentials",
    );
  return problems;
}

/**
 * The window a disaster just before this backup finished would have lost: everything since the previous verified
 * backup's snapshot (its id is its start time); with no previous backup, the schedule's interval. With a binlog
 * archive, the newest archived log's age instead. Null without a verified backup (and no archive).
 */
function dataLossWindow(args: ComplianceFacts): number | null {
  let exposureSeconds: number | null = null;
  if (args.endedAtMs !== null) {
    exposureSeconds = args.previousVerifiedId
      ? Math.round((args.endedAtMs - backupTime(args.previousVerifiedId)) / 1000)
      : args.intervalSeconds + Math.round((args.endedAtMs - backupTime(args.backupId!)) / 1000);
  }
  const binlogAt = args.newestBinlogClosedAtMs ?? null;
  if (binlogAt !== null) exposureSeconds = Math.max(0, Math.round((args.nowMs - binlogAt) / 1000));
  return exposureSeconds;
}

function rpoProblem(exposureSeconds: number, rpoSeconds: number, binlogArchive: boolean): string {
  return binlogArchive
    ? `the newest archived binlog is ${human(exposureSeconds)} old; the tier's RPO is ${human(rpoSeconds)} ` +
        '(archive binlogs more often)'
    : `backups leave up to ${human(exposureSeconds)} of data loss; the tier's RPO is ${human(rpoSeconds)} ` +
        '(a binlog archive or the replica must cover the gap)';
}

// ------------------------------------------------------------------ file trees (backup.paths)

export interface FileTreePolicy {
  /** A full when the newest full is not of this day / ISO week / month. */
  full: 'daily' | 'weekly' | 'monthly';
  between: 'differential' | 'incremental';
}

export interface FileTreeLevelPlan {
  level: FileTreeLevel;
  /** The backup whose tar snapshot this one starts from (null for a full). */
  parent: string | null;
  /** The chain's full (this backup's own id for a full). */
  chain: string;
  why: string;
}

/**
 * Which level the backup `backupId` of a tree takes, from the tree's verified backups before it: a full when there
 * is none, or the newest full is of an earlier day / week / month than this backup (the policy's `full`); otherwise
 * a differential (parent: the chain's full) or an incremental (parent: the newest backup of the chain).
 */
export function planFileTreeLevel(
  previous: FileTreeBackupRef[],
  policy: FileTreePolicy,
  backupId: string,
): FileTreeLevelPlan {
  const earlier = previous.filter((b) => b.id < backupId).sort((a, b) => a.id.localeCompare(b.id));
  const full = earlier.filter((b) => b.level === 'full').pop();
  if (!full) return { level: 'full', parent: null, chain: backupId, why: 'no verified full backup of this tree' };
  const bucket = { daily: utcDay, weekly: isoWeek, monthly: utcMonth }[policy.full];
  const then = bucket(backupTime(full.id));
  const now = bucket(backupTime(backupId));
  if (then !== now)
    return { level: 'full', parent: null, chain: backupId, why: `${policy.full} full: the newest full is of ${then}` };
  if (policy.between === 'differential')
    return { level: 'differential', parent: full.id, chain: full.id, why: `since the full of ${then} (${full.id})` };
  const newest = earlier.filter((b) => b.chain === full.id).pop()!;
  return { level: 'incremental', parent: newest.id, chain: full.id, why: `since ${newest.id} (${newest.level})` };
}
