/**
 * Charts for reports, rendered to SVG on the worker (or in drctl) with Vega-Lite: a timeline of
 * the steps (a Gantt-like view, one lane per runbook) and measured RTO/RPO against the targets
 * over time. Vega renders SVG in Node without a browser or a native canvas ("renderer: none").
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export interface TimelineStep {
  runbook: string;
  name: string;
  state: string;
  startedAt?: string;
  endedAt?: string;
  detail?: string;
}

export interface TrendPoint {
  at: string;
  label: string;
  rtoSeconds: number | null;
  rpoSeconds: number | null;
  rtoTargetSeconds: number;
  rpoTargetSeconds: number;
}

const STATE_COLOURS = {
  domain: ['succeeded', 'failed', 'skipped', 'waiting', 'running', 'pending'],
  range: ['#2e7d32', '#c62828', '#9e9e9e', '#f9a825', '#1565c0', '#bdbdbd'],
};

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Steps as bars from start to end, one row per step, grouped by runbook (lanes in order of first step). */
export function timelineSpec(steps: TimelineStep[]): TopLevelSpec {
  const values = steps
    .filter((s) => s.startedAt)
    .map((s, i) => {
      const start = Date.parse(s.startedAt!);
      // A step that took no time (skipped, instant) still gets a visible sliver.
      const end = Math.max(s.endedAt ? Date.parse(s.endedAt) : start, start + 250);
      return {
        order: i,
        row: `${s.runbook} · ${s.name}`,
        runbook: s.runbook,
        step: s.name,
        state: s.state,
        start,
        end,
        seconds: Math.round((end - start) / 100) / 10,
        detail: s.detail ?? '',
      };
    });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'Timeline of the steps',
    width: 720,
    height: { step: 18 },
    data: { values },
    mark: { type: 'bar', cornerRadius: 2 },
    encoding: {
      y: { field: 'row', type: 'nominal', sort: { field: 'order', op: 'min' }, title: null },
      x: { field: 'start', type: 'temporal', title: 'time (UTC)', timeUnit: 'utcyearmonthdatehoursminutesseconds' },
      x2: { field: 'end' },
      color: { field: 'state', type: 'nominal', scale: STATE_COLOURS, title: 'state' },
      tooltip: [
        { field: 'step', type: 'nominal' },
        { field: 'seconds', type: 'quantitative' },
        { field: 'detail', type: 'nominal' },
      ],
    },
  };
}

/** Measured RTO and RPO of each run as a share of the tier's target (100% = the target), one point per run. */
export function trendValues(points: TrendPoint[]) {
  const share = (v: number | null, target: number) =>
    v === null || target <= 0 ? null : Math.round((v / target) * 10000) / 100;
  return points.flatMap((p) =>
    (
      [
        ['RTO', p.rtoSeconds, p.rtoTargetSeconds],
        ['RPO', p.rpoSeconds, p.rpoTargetSeconds],
      ] as const
    )
      .map(([metric, seconds, target]) => ({
        at: p.at,
        run: p.label,
        metric,
        seconds,
        target,
        percent: share(seconds, target),
      }))
      .filter((v) => v.percent !== null),
  );
}

/**
 * The RTO/RPO trend drawn as a share of the tier's target over the service's runs (by date), the target a line
 * at 100%: a 3-second RTO against a 900-second target reads as 0.3%, not as a flat line on the floor of a
 * seconds axis whose scale the target sets.
 */
export function trendSpec(points: TrendPoint[]): TopLevelSpec {
  const values = trendValues(points);
  const top = Math.max(120, ...values.map((v) => v.percent ?? 0));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'Measured RTO / RPO as a share of the target (100% = target)',
    width: 720,
    height: 240,
    layer: [
      {
        data: { values },
        encoding: {
          x: { field: 'at', type: 'temporal', title: 'run (date)' },
          y: { field: 'percent', type: 'quantitative', title: '% of target', scale: { domain: [0, top] } },
          color: {
            field: 'metric',
            type: 'nominal',
            scale: { domain: ['RTO', 'RPO'], range: ['#1565c0', '#ef6c00'] },
          },
        },
        layer: [
          { mark: { type: 'line' } },
          {
            mark: { type: 'point', filled: true },
            encoding: {
              tooltip: [
                { field: 'run' },
                { field: 'metric' },
                { field: 'seconds', type: 'quantitative', title: 'measured (s)' },
                { field: 'target', type: 'quantitative', title: 'target (s)' },
                { field: 'percent', type: 'quantitative', title: '% of target' },
              ],
            },
          },
        ],
      },
      {
        data: { values: [{ y: 100, label: 'target' }] },
        layer: [
          {
            mark: { type: 'rule', color: '#c62828', strokeDash: [6, 4] },
            encoding: { y: { field: 'y', type: 'quantitative' } },
          },
          {
            mark: { type: 'text', align: 'left', dx: 4, dy: -6, color: '#c62828' },
            encoding: { y: { field: 'y', type: 'quantitative' }, x: { value: 0 }, text: { field: 'label' } },
          },
        ],
      },
    ],
  };
}
