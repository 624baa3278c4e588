/**
 * The RTO/RPO trend in drill and restore-test reports reads at a glance: each run's measure as a share of the
 * tier's target, by date, with the target as a line at 100% (a 3-second RTO against a 900-second target is 0.33%,
 * not a flat line on the floor of a seconds axis). Rendered to SVG with Vega, as the worker does.
 */
import { renderSvg, trendSpec, trendValues, type TrendPoint } from '../../activities/reports/charts';
import { renderRestoreReportHtml, restoreTrend } from '../../activities/reports/restore-test';
import type { RestoreTestReport } from '../../contract';

const points: TrendPoint[] = [
  {
    at: '2026-09-01T03:00:00Z',
    label: 'drill-1',
    rtoSeconds: 3,
    rpoSeconds: 0,
    rtoTargetSeconds: 900,
    rpoTargetSeconds: 300,
  },
  {
    at: '2026-10-01T03:00:00Z',
    label: 'drill-2',
    rtoSeconds: 1080,
    rpoSeconds: null,
    rtoTargetSeconds: 900,
    rpoTargetSeconds: 300,
  },
];

describe('RTO/RPO trend as a share of the target', () => {
  test('each measure is a percentage of its own target; unmeasured ones are left out', () => {
    expect(trendValues(points)).toEqual([
      { at: points[0].at, run: 'drill-1', metric: 'RTO', seconds: 3, target: 900, percent: 0.33 },
      { at: points[0].at, run: 'drill-1', metric: 'RPO', seconds: 0, target: 300, percent: 0 },
      { at: points[1].at, run: 'drill-2', metric: 'RTO', seconds: 1080, target: 900, percent: 120 },
    ]);
  });

  test('the chart has a % axis that always shows the 100% target line, drawn and labelled', async () => {
    const spec = trendSpec(points) as unknown as { layer: { layer: { mark: { type: string } }[] }[] };
    expect(JSON.stringify(spec)).toContain('"domain":[0,120]');
    expect(spec.layer[1].layer.map((l) => l.mark.type)).toEqual(['rule', 'text']);
    const svg = await renderSvg(trendSpec(points));
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain('% of target');
    expect(svg).toContain('>target<');
    expect(svg).toContain('stroke-dasharray="6,4"');
  });

  test('the restore-test page draws its restore time and backup age against the targets, oldest first', async () => {
    const report = {
      id: 'restore-test-shop-3',
      service: 'shop',
      tier: 'critical',
      strategy: 'warm',
      outcome: 'passed',
      failedCheck: null,
      startedAt: '2026-11-01T03:00:00Z',
      endedAt: '2026-11-01T03:01:00Z',
      targets: { rtoSeconds: 900, rpoSeconds: 300 },
      measured: { rtoSeconds: 45, restoreSeconds: 30, backupAgeSeconds: 150 },
      backup: { id: '20261101T020000Z' },
      checks: [],
      cleanup: [],
      steps: [],
    } as unknown as RestoreTestReport;
    const earlier = { outcome: 'passed' as const, backupId: null, failedCheck: null, restoreSeconds: 20 };
    const history = [
      { ...earlier, id: 'restore-test-shop-2', at: '2026-10-01T03:01:00Z', rtoSeconds: 90, backupAgeSeconds: 30 },
      { ...earlier, id: 'restore-test-shop-1', rtoSeconds: 90, backupAgeSeconds: 30 },
    ];
    const trend = restoreTrend(report, history);
    // The entry written before the chart (no date) is left out; the others run oldest to newest.
    expect(trend.map((p) => [p.label, p.rtoSeconds, p.rpoSeconds])).toEqual([
      ['restore-test-shop-2', 90, 30],
      ['restore-test-shop-3', 45, 150],
    ]);
    expect(trendValues(trend).map((v) => v.percent)).toEqual([10, 10, 5, 50]);
    const html = renderRestoreReportHtml(report, history, await renderSvg(trendSpec(trend)));
    expect(html).toMatch(/<figure id="trend"><svg/);
  });
});
