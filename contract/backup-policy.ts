/**
 * What a backup is kept as, decided from its id alone (pure: no I/O, no clock), so the workflow deciding retention
 * and the destination setting an Object Lock at upload agree: backup ids as times, UTC calendar periods, the
 * grandfather-father-son class and how long that class is locked for. The retention plan itself is the workflow's
 * (workflows/backup-policy.ts).
 */

/** "20250101T030000Z" → epoch ms. Backup ids are their run's start time (UTC). */
export function backupTime(id: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(id);
  if (!m) throw new Error(`not a backup id: ${id}`);
  const [, y, mo, d, h, mi, s] = m.map(Number);
  return Date.UTC(y, mo - 1, d, h, mi, s);
}

export interface RetentionPolicy {
  daily: number;
  weekly: number;
  monthly: number;
}

/** The UTC day ("2025-01-01") of an instant. */
export const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
/** The UTC month ("2025-01") of an instant. */
export const utcMonth = (ms: number) => new Date(ms).toISOString().slice(0, 7);
/** ISO 8601 week ("2025-W01"): weeks start on Monday; the week's year is its Thursday's. */
export function isoWeek(ms: number): string {
  const d = new Date(ms);
  const thursday = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 3 - ((d.getUTCDay() + 6) % 7));
  const year = new Date(thursday).getUTCFullYear();
  const week = 1 + Math.floor((thursday - Date.UTC(year, 0, 1)) / (7 * 86400000));
  return `${year}-W${String(week).padStart(2, '0')}`;
}

/** A backup's grandfather-father-son class: what it is kept (and, under Object Lock, locked) as. */
export type GfsClass = 'daily' | 'weekly' | 'monthly';

/**
 * The class a backup has from the moment it is written, in one destination: the monthly if it is the first verified
 * backup of its UTC month there, else the weekly if the first of its ISO week, else a daily. Decidable at upload
 * (only EARLIER verified backups count), so an Object Lock can be set for the class's period on the first write
 * (a lock can be extended but never shortened) and retention's `first` anchor keeps exactly these as weeklies and
 * monthlies. A class the policy keeps none of (weekly: 0) is not given.
 */
export function gfsClass(id: string, earlierVerified: string[], policy: RetentionPolicy): GfsClass {
  const t = backupTime(id);
  const earlier = earlierVerified.filter((e) => e < id).map(backupTime);
  if (policy.monthly > 0 && !earlier.some((e) => utcMonth(e) === utcMonth(t))) return 'monthly';
  if (policy.weekly > 0 && !earlier.some((e) => isoWeek(e) === isoWeek(t))) return 'weekly';
  return 'daily';
}

/**
 * How many days a backup of `cls` is locked for: the span retention keeps that class over (a month counted as 31
 * days, its longest), and never less than the daily period. Retention may keep it longer (slots are only used up
 * by weeks and months that have a backup); it never wants it gone before the lock ends in steady state.
 */
export function gfsLockDays(cls: GfsClass, policy: RetentionPolicy): number {
  const days = { daily: policy.daily, weekly: policy.weekly * 7, monthly: policy.monthly * 31 }[cls];
  return Math.max(policy.daily, days);
}

export type FileTreeLevel = 'full' | 'differential' | 'incremental';

/** A verified backup of one tree: its id, level and chain (the id of the full it builds on). */
export interface FileTreeBackupRef {
  id: string;
  level: FileTreeLevel;
  chain: string;
}
