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

/** Measured RTO and RPO per run (solid) against the targets (dashed), over time. */
export function trendSpec(points: TrendPoint[]): TopLevelSpec {
  const values = points.flatMap((p) => [
    { at: p.at, run: p.label, metric: 'RTO', kind: 'measured', seconds: p.rtoSeconds },
    { at: p.at, run: p.label, metric: 'RTO', kind: 'target', seconds: p.rtoTargetSeconds },
    { at: p.at, run: p.label, metric: 'RPO', kind: 'measured', seconds: p.rpoSeconds },
    { at: p.at, run: p.label, metric: 'RPO', kind: 'target', seconds: p.rpoTargetSeconds },
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'Measured RTO / RPO against targets',
    width: 720,
    height: 240,
    data: { values: values.filter((v) => v.seconds !== null) },
    encoding: {
      x: { field: 'at', type: 'temporal', title: 'run' },
      y: { field: 'seconds', type: 'quantitative', title: 'seconds' },
      color: { field: 'metric', type: 'nominal', scale: { domain: ['RTO', 'RPO'], range: ['#1565c0', '#ef6c00'] } },
      strokeDash: {
        field: 'kind',
        type: 'nominal',
        scale: {
          domain: ['measured', 'target'],
          range: [
            [1, 0],
            [6, 4],
          ],
        },
        title: null,
      },
      detail: { field: 'kind' },
    },
    layer: [
      { mark: { type: 'line' } },
      {
        mark: { type: 'point', filled: true },
        transform: [{ filter: "datum.kind === 'measured'" }],
        encoding: { tooltip: [{ field: 'run' }, { field: 'metric' }, { field: 'seconds', type: 'quantitative' }] },
      },
    ],
  };
}
