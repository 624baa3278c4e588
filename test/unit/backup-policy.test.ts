/** Retention (grandfather-father-son), 3-2-1 / RPO compliance and file-tree levels on synthetic histories. */
import { compareFileTrees } from '../../activities/filetree/listing';
import { backupTime, fileTreeId, gfsClass, gfsLockDays, type FileTreeBackupRef } from '../../contract';
import {
  assessCompliance,
  backupIdAt,
  offlineCopiesVerified,
  planFileTreeLevel,
  planRetention,
} from '../../workflows/backup-policy';

const DAY = 86400000;
const NOW = Date.UTC(2025, 5, 15, 3, 30); // Sunday 2025-06-15 03:30 UTC
const nightly = (daysAgo: number) => backupIdAt(Date.UTC(2025, 5, 15, 3, 0) - daysAgo * DAY);

describe('backup ids', () => {
  test('are the start time, round-trip, and sort by age', () => {
    expect(backupIdAt(Date.UTC(2025, 0, 2, 3, 4, 5))).toBe('20250102T030405Z');
    expect(backupTime('20250102T030405Z')).toBe(Date.UTC(2025, 0, 2, 3, 4, 5));
    expect([nightly(1), nightly(10), nightly(0)].sort()).toEqual([nightly(10), nightly(1), nightly(0)]);
    expect(() => backupTime('latest')).toThrow(/not a backup id/);
  });
});

describe('planRetention (GFS)', () => {
  // 400 nights of verified backups, newest first.
  const history = Array.from({ length: 400 }, (_, i) => ({ id: nightly(i), verified: true }));

  test('keeps exactly 7 daily, 4 weekly and 12 monthly, and deletes the rest', () => {
    const plan = planRetention(history, { daily: 7, weekly: 4, monthly: 12 }, NOW);
    const kept = plan.keep.map((k) => k.id);
    const daily = [0, 1, 2, 3, 4, 5, 6].map(nightly);
    // Newest of each ISO week: Sunday 06-15 (this week, already daily), then the Sundays before.
    const weekly = [0, 7, 14, 21].map(nightly);
    // Newest of each month: 06-15, then the last night of May, April, ... July 2024.
    const monthly = [
      Date.UTC(2025, 5, 15),
      ...Array.from({ length: 11 }, (_, m) => Date.UTC(2025, 5 - m, 0)), // day 0 = last day of the previous month
    ].map((d) => backupIdAt(d + 3 * 3600000));
    const expected = [...new Set([...daily, ...weekly, ...monthly])].sort().reverse();
    expect(kept).toEqual(expected);
    expect(kept).toHaveLength(7 + 3 + 11); // the newest counts as daily, weekly and monthly at once
    expect(plan.remove).toHaveLength(400 - kept.length);
    expect(plan.keep[0]).toEqual({
      id: nightly(0),
      reasons: ['newest verified', 'daily 2025-06-15', 'weekly 2025-W24', 'monthly 2025-06'],
    });
    expect(plan.keep.find((k) => k.id === nightly(14))!.reasons).toEqual(['weekly 2025-W22']);
  });

  test('never deletes the newest verified backup, whatever the policy and however old it is', () => {
    const old = [
      { id: nightly(30), verified: true },
      { id: nightly(31), verified: true },
      { id: nightly(2), verified: false }, // a failed run since, older than the grace period
    ];
    const plan = planRetention(old, { daily: 1, weekly: 0, monthly: 0 }, NOW);
    expect(plan.keep.map((k) => k.id)).toEqual([nightly(2), nightly(30)]);
    expect(plan.remove).toEqual([nightly(31)]);
    // With nothing but unverified backups, nothing verified exists to protect: unverified newer ones stay.
    expect(
      planRetention([{ id: nightly(3), verified: false }], { daily: 7, weekly: 0, monthly: 0 }, NOW).remove,
    ).toEqual([]);
  });

  test('unverified leftovers older than the newest verified go after the grace period; fresh ones stay', () => {
    const backups = [
      { id: nightly(0), verified: true },
      { id: backupIdAt(NOW - 3600000), verified: false }, // an hour old: may still be running
      { id: nightly(1), verified: false }, // yesterday's failed run: older than the newest verified, past grace
      { id: nightly(2), verified: true },
    ];
    const plan = planRetention(backups, { daily: 7, weekly: 4, monthly: 12 }, NOW);
    expect(plan.remove).toEqual([nightly(1)]);
    expect(plan.keep.map((k) => k.id)).toEqual([backupIdAt(NOW - 3600000), nightly(0), nightly(2)].sort().reverse());
  });

  test('days without a backup do not use up daily slots', () => {
    const sparse = [0, 3, 9, 20, 40, 41, 42, 43, 44, 45, 46, 47].map((d) => ({ id: nightly(d), verified: true }));
    const plan = planRetention(sparse, { daily: 7, weekly: 0, monthly: 0 }, NOW);
    expect(plan.keep.map((k) => k.id)).toEqual([0, 3, 9, 20, 40, 41, 42].map(nightly));
  });
});

describe('GFS class at write time (what a backup is locked for) and retention agree', () => {
  const policy = { daily: 7, weekly: 4, monthly: 12 };
  // 120 nights, some missed (every 5th): each classed when written, from the verified backups before it.
  const ids = Array.from({ length: 120 }, (_, i) => nightly(119 - i)).filter((_, i) => i % 5 !== 3);
  const classes = new Map(ids.map((id, i) => [id, gfsClass(id, ids.slice(0, i), policy)]));

  test('the first backup of a month is its monthly, the first of a week its weekly, the rest dailies', () => {
    expect(gfsClass('20250601T030000Z', ['20250531T030000Z'], policy)).toBe('monthly');
    expect(gfsClass('20250609T030000Z', ['20250601T030000Z', '20250608T030000Z'], policy)).toBe('weekly'); // Monday
    expect(gfsClass('20250610T030000Z', ['20250609T030000Z'], policy)).toBe('daily');
    // Only earlier verified backups count; a class the policy keeps none of is never given.
    expect(gfsClass('20250610T030000Z', ['20250611T030000Z'], policy)).toBe('monthly');
    expect(gfsClass('20250601T030000Z', [], { daily: 7, weekly: 0, monthly: 0 })).toBe('daily');
    expect(gfsClass('20250601T030000Z', [], { daily: 7, weekly: 2, monthly: 0 })).toBe('weekly');
    expect([gfsLockDays('daily', policy), gfsLockDays('weekly', policy), gfsLockDays('monthly', policy)]).toEqual([
      7, 28, 372,
    ]);
    expect(gfsLockDays('weekly', { daily: 10, weekly: 1, monthly: 0 })).toBe(10); // never under the daily span
  });

  test("retention (anchor 'first') keeps as weekly and monthly exactly the backups classed so when written", () => {
    const plan = planRetention(
      ids.map((id) => ({ id, verified: true })),
      policy,
      NOW,
      undefined,
      'first',
    );
    for (const { id, reasons } of plan.keep) {
      if (reasons.some((r) => r.startsWith('monthly')))
        expect({ id, cls: classes.get(id) }).toEqual({ id, cls: 'monthly' });
      else if (reasons.some((r) => r.startsWith('weekly')))
        expect({ id, cls: classes.get(id) }).toEqual({ id, cls: 'weekly' });
    }
    const keptAs = (cls: string) => plan.keep.filter((k) => k.reasons.some((r) => r.startsWith(cls))).length;
    expect([keptAs('weekly'), keptAs('monthly')]).toEqual([4, 5]); // 120 nights: Feb 16 → Jun 15, five months
    // The default anchor (runs recorded before) keeps each week's newest: a daily, unlocked past its week.
    const before = planRetention(
      ids.map((id) => ({ id, verified: true })),
      policy,
      NOW,
    );
    expect(
      before.keep.some((k) => k.reasons.some((r) => r.startsWith('weekly')) && classes.get(k.id) === 'daily'),
    ).toBe(true);
  });
});

describe('assessCompliance', () => {
  const copies = [
    { kind: 'file' as const, offsite: false },
    { kind: 's3' as const, offsite: false },
    { kind: 's3' as const, offsite: true },
  ];
  const base = {
    service: 'shop',
    copies,
    backupId: nightly(0),
    endedAtMs: Date.UTC(2025, 5, 15, 3, 10),
    previousVerifiedId: nightly(1),
    nowMs: NOW,
    intervalSeconds: 86400,
  };

  test(
    '3 copies on 2 media with one off-site is 3-2-1; ' +
      'a daily backup meets an 8 h RPO only if nightly gaps are short',
    () => {
      const c = assessCompliance({ ...base, rpoSeconds: 8 * 3600 });
      expect(c).toMatchObject({
        copies: 3,
        mediaKinds: ['file', 's3'],
        offsite: true,
        rule321: true,
        ageSeconds: 1200,
      });
      expect(c.exposureSeconds).toBe(86400 + 600);
      expect(c.rpoMet).toBe(false);
      expect(c.problems).toEqual([expect.stringMatching(/up to 24\.2 h of data loss; the tier's RPO is 8 h/)]);
      expect(assessCompliance({ ...base, rpoSeconds: 2 * 86400 }).rpoMet).toBe(true);
    },
  );

  test('a missing off-site copy or a single medium breaks 3-2-1, each named', () => {
    const c = assessCompliance({ ...base, copies: [copies[1], copies[1]], rpoSeconds: 2 * 86400 });
    expect(c.rule321).toBe(false);
    expect(c.problems).toEqual([
      '2 verified copies, 3-2-1 needs 3',
      'one media kind (s3), 3-2-1 needs 2',
      'no off-site copy (DR region)',
    ]);
  });

  test('no verified backup: nothing is met', () => {
    const c = assessCompliance({ ...base, copies: [], backupId: null, endedAtMs: null, rpoSeconds: 86400 });
    expect(c).toMatchObject({ rule321: false, rpoMet: false, ageSeconds: null, exposureSeconds: null });
    expect(c.problems).toContain('no verified backup');
  });

  test('3-2-1-1: a critical service with no copy under Object Lock is a finding; one locked copy meets it', () => {
    const open = assessCompliance({ ...base, tier: 'critical', rpoSeconds: 2 * 86400 });
    expect(open).toMatchObject({ rule321: true, rule3211: false, immutableCopies: 0 });
    expect(open.problems).toEqual([
      expect.stringMatching(/^no immutable or offline copy: 3-2-1-1 needs one for a critical service/),
    ]);
    const lock = { mode: 'COMPLIANCE' as const, retainUntil: '2025-06-23T00:00:00.000Z' };
    const locked = assessCompliance({
      ...base,
      tier: 'critical',
      copies: [copies[0], copies[1], { ...copies[2], objectLock: lock }],
      rpoSeconds: 2 * 86400,
    });
    expect(locked).toMatchObject({ rule321: true, rule3211: true, immutableCopies: 1, problems: [] });
    // Other tiers are told how many copies are immutable, without a finding.
    expect(assessCompliance({ ...base, tier: 'normal', rpoSeconds: 2 * 86400 }).problems).toEqual([]);
  });

  test('3-2-1-1: an offline destination with a copy verified within its period meets it; a stale one does not', () => {
    const week = { verifiedWithinSeconds: 7 * 86400 };
    const listed = (offsiteIds: [number, boolean][]) => [
      { destination: 'local', backups: [{ id: nightly(0), verified: true }] },
      { destination: 'offsite', backups: offsiteIds.map(([d, verified]) => ({ id: nightly(d), verified })) },
    ];
    const count = (ids: [number, boolean][], offline: Record<string, typeof week | undefined> = { offsite: week }) =>
      offlineCopiesVerified(listed(ids), offline, NOW);
    expect(count([[2, true]])).toBe(1); // verified two days ago: within the week
    expect(
      count([
        [0, false],
        [9, true],
      ]),
    ).toBe(0); // the window did not open this week; its last copy is stale
    expect(count([])).toBe(0);
    expect(count([[0, true]], { offsite: undefined })).toBe(0); // not flagged offline: never counted as offline
    expect(count([[0, true]], { local: week })).toBe(1); // local's copy of tonight, if local is the offline one

    const withOffline = assessCompliance({ ...base, tier: 'critical', rpoSeconds: 2 * 86400, offlineCopies: 1 });
    expect(withOffline).toMatchObject({ rule3211: true, immutableCopies: 0, offlineCopies: 1, problems: [] });
    const without = assessCompliance({ ...base, tier: 'critical', rpoSeconds: 2 * 86400, offlineCopies: 0 });
    expect(without).toMatchObject({ rule3211: false, offlineCopies: 0 });
    expect(without.problems).toEqual([expect.stringMatching(/^no immutable or offline copy: 3-2-1-1/)]);
  });

  test('the first backup of a service is judged by the schedule interval', () => {
    const c = assessCompliance({ ...base, previousVerifiedId: null, rpoSeconds: 300 });
    expect(c.exposureSeconds).toBe(86400 + 600);
    expect(c.rpoMet).toBe(false);
  });
});

describe('planFileTreeLevel (full, differential, incremental)', () => {
  // Nightly at 03:00 UTC from Monday 2025-06-09 (ISO week 24) to Tuesday 2025-07-01.
  const night = (d: number) => backupIdAt(Date.UTC(2025, 5, 9 + d, 3, 0));
  /** Runs the policy night after night, as nightlyBackup would, and returns each night's level and parent. */
  const nights = (policy: Parameters<typeof planFileTreeLevel>[1], count: number) => {
    const done: FileTreeBackupRef[] = [];
    return Array.from({ length: count }, (_, d) => {
      const plan = planFileTreeLevel(done, policy, night(d));
      done.push({ id: night(d), level: plan.level, chain: plan.chain });
      return plan;
    });
  };

  test('weekly full, differential between: a full each ISO week, every other night since that full', () => {
    const plans = nights({ full: 'weekly', between: 'differential' }, 15);
    expect(plans.map((p) => p.level)).toEqual([
      'full',
      ...Array<string>(6).fill('differential'), // Tue..Sun of week 24
      'full', // Monday 06-16: a new ISO week
      ...Array<string>(6).fill('differential'),
      'full',
    ]);
    expect(plans[3]).toMatchObject({ parent: night(0), chain: night(0) });
    expect(plans[9]).toMatchObject({ parent: night(7), chain: night(7) });
    expect(plans[7]).toMatchObject({ parent: null, chain: night(7) });
  });

  test('incremental between: each night since the previous backup of any level, in the same chain', () => {
    const plans = nights({ full: 'weekly', between: 'incremental' }, 9);
    expect(plans.map((p) => p.level)).toEqual(['full', ...Array<string>(6).fill('incremental'), 'full', 'incremental']);
    expect(plans[1]).toMatchObject({ parent: night(0), chain: night(0) });
    expect(plans[5]).toMatchObject({ parent: night(4), chain: night(0) });
    expect(plans[8]).toMatchObject({ parent: night(7), chain: night(7) });
  });

  test('daily and monthly fulls', () => {
    expect(nights({ full: 'daily', between: 'incremental' }, 3).map((p) => p.level)).toEqual(['full', 'full', 'full']);
    const monthly = nights({ full: 'monthly', between: 'differential' }, 23).map((p) => p.level);
    expect(monthly.filter((l) => l === 'full')).toHaveLength(2); // 06-09 (first backup) and 07-01
    expect(monthly[22]).toBe('full');
  });

  test('a second run the same day follows the policy; backups after the run do not count', () => {
    const full = { id: night(0), level: 'full' as const, chain: night(0) };
    const later = backupIdAt(Date.UTC(2025, 5, 9, 15, 0));
    expect(planFileTreeLevel([full], { full: 'daily', between: 'incremental' }, later)).toMatchObject({
      level: 'incremental',
      parent: night(0),
    });
    // Only a newer full exists (a restored clock, another run): this backup is a full of its own.
    expect(
      planFileTreeLevel(
        [{ ...full, id: night(3), chain: night(3) }],
        { full: 'weekly', between: 'differential' },
        night(1),
      ),
    ).toMatchObject({ level: 'full', parent: null, chain: night(1) });
  });

  test('tree ids name host and path; a restored tree is compared entry by entry', () => {
    expect(fileTreeId({ host: 'web-host', path: '/srv/wiki/uploads' })).toBe('web-host_srv_wiki_uploads');
    const want = [
      { path: 'a', type: 'file' as const, mode: '644', size: 1, sha256: 'x' },
      { path: 'gone', type: 'file' as const, mode: '644', size: 1, sha256: 'y' },
      { path: 'l', type: 'symlink' as const, mode: '777', size: 1, target: 'a' },
    ];
    expect(compareFileTrees(want, want)).toEqual([]);
    expect(
      compareFileTrees(want, [
        { ...want[0], mode: '600' },
        { ...want[2], target: 'b' },
        { path: 'deleted', type: 'file', mode: '644', size: 1, sha256: 'z' },
      ]),
    ).toEqual([
      'a: mode 600, the backup has 644',
      'gone: missing (a file in the backup)',
      'l: target b, the backup has a',
      'deleted: present, not in the backup (deleted before it was taken)',
    ]);
  });
});
