/**
 * Drill reports for people: Markdown for tickets and a self-contained HTML page (inline SVG
 * charts, inline CSS, no scripts) for auditors. The worker publishes a drill's report next to
 * the service's backups (<service>/reports/drill/<id>.{json,md,html}) and reads the earlier
 * ones back for the trend; drctl renders any finished runbook's result the same way.
 */
import path from 'node:path';
import { Context } from '@temporalio/activity';
import type { Inventory, DrillFinding, DrillReport, DrillTrendPoint, StepRecord, Approval } from '../../contract';
import { FileStore, type BackupStore, type BackupStores } from '../storage/destinations';
import { approvalMessagesOf, withIdentities, type ApprovalMessage } from './approvals';
import { renderSvg, timelineSpec, trendSpec, type TimelineStep, type TrendPoint } from './charts';

/** What a report page shows, whichever runbook produced it. */
export interface ReportView {
  title: string;
  service: string;
  runbook: string;
  outcome: string;
  startedAt: string | null;
  endedAt: string | null;
  summary: [string, string][];
  steps: TimelineStep[];
  /** With the client identity Temporal recorded for each (from the event history), where known. */
  approvals: (Approval & { runbook: string; identity?: string | null; via?: string | null })[];
  /** Approval messages in the history that no accepted approval used (refused, duplicate, too late). */
  unacceptedApprovals?: ApprovalMessage[];
  measured: { rtoSeconds: number | null; rpoSeconds: number | null };
  targets: { rtoSeconds: number; rpoSeconds: number };
  findings: DrillFinding[];
  trend: TrendPoint[];
}

/** The view with each approval's Temporal identity, read from these runs' histories (the run and its children). */
export function identifyApprovals(view: ReportView, messages: ApprovalMessage[]): ReportView {
  const { approvals, unaccepted } = withIdentities(view.approvals, messages);
  return { ...view, approvals, unacceptedApprovals: unaccepted };
}

const met = (ok: boolean | null) => (ok === null ? 'not measured' : ok ? 'met' : 'MISSED');
const secs = (n: number | null) => (n === null ? '—' : `${n} s`);

export function drillView(r: DrillReport): ReportView {
  return {
    title: `DR drill (${r.scope}) of ${r.service}: ${r.outcome.toUpperCase()}`,
    service: r.service,
    runbook: `drill/${r.scope}`,
    outcome: r.outcome,
    startedAt: r.startedAt,
    endedAt: r.endedAt,
    summary: [
      ['drill', r.id],
      ['service', `${r.service} (${r.tier}, ${r.strategy})`],
      ['scope', r.scope],
      ['reason', r.reason],
      ['RTO', `${secs(r.measured.rtoSeconds)} against ${r.targets.rtoSeconds} s: ${met(r.rtoMet)}`],
      ['RPO', `${secs(r.measured.rpoSeconds)} against ${r.targets.rpoSeconds} s: ${met(r.rpoMet)}`],
      ['runs', r.children.map((c) => `${c.runbook} ${c.workflowId}: ${c.outcome}`).join('; ') || '—'],
    ],
    steps: r.steps,
    approvals: r.approvals,
    measured: r.measured,
    targets: r.targets,
    findings: r.findings,
    trend: r.trend.map(trendPoint),
  };
}

export const trendPoint = (p: DrillTrendPoint): TrendPoint => ({
  at: p.at,
  label: `${p.id} (${p.scope}, ${p.outcome})`,
  rtoSeconds: p.rtoSeconds,
  rpoSeconds: p.rpoSeconds,
  rtoTargetSeconds: p.rtoTargetSeconds,
  rpoTargetSeconds: p.rpoTargetSeconds,
});

/** A failover or failback result (or any runbook result with steps and measurements) as a report view. */
export function runbookView(
  workflowId: string,
  result: {
    runbook?: string;
    service: string;
    outcome?: string;
    steps?: StepRecord[];
    approvals?: Approval[];
    measured?: { rtoSeconds: number | null; rpoSeconds: number | null };
    targets?: { rtoSeconds: number; rpoSeconds: number };
    notes?: string[];
  },
  trend: TrendPoint[] = [],
): ReportView {
  const runbook = result.runbook ?? 'runbook';
  const steps = result.steps ?? [];
  const measured = result.measured ?? { rtoSeconds: null, rpoSeconds: null };
  const targets = result.targets ?? { rtoSeconds: 0, rpoSeconds: 0 };
  const isMet = (m: number | null, t: number) => (m === null ? null : m <= t);
  return {
    title: `${runbook} of ${result.service}: ${result.outcome ?? 'finished'}`,
    service: result.service,
    runbook,
    outcome: result.outcome ?? 'finished',
    startedAt: steps.find((s) => s.startedAt)?.startedAt ?? null,
    endedAt: [...steps].reverse().find((s) => s.endedAt)?.endedAt ?? null,
    summary: [
      ['run', workflowId],
      [
        'RTO',
        `${secs(measured.rtoSeconds)} against ${targets.rtoSeconds} ` +
          `s: ${met(isMet(measured.rtoSeconds, targets.rtoSeconds))}`,
      ],
      [
        'RPO',
        `${secs(measured.rpoSeconds)} against ${targets.rpoSeconds} ` +
          `s: ${met(isMet(measured.rpoSeconds, targets.rpoSeconds))}`,
      ],
    ],
    steps: steps.map((s) => ({ ...s, runbook })),
    approvals: (result.approvals ?? []).map((a) => ({ ...a, runbook })),
    measured,
    targets,
    findings: (result.notes ?? []).map((text) => ({ severity: 'info' as const, text })),
    trend,
  };
}

const duration = (s: { startedAt?: string; endedAt?: string }) =>
  s.startedAt && s.endedAt ? `${Math.round((Date.parse(s.endedAt) - Date.parse(s.startedAt)) / 100) / 10} s` : '—';
const cell = (v: string | number | undefined | null) =>
  String(v ?? '')
    .replace(/\|/g, '\\|')
    .replace(/\n/g, ' ');

export function renderMarkdown(v: ReportView): string {
  const lines = [`# ${v.title}`, ''];
  for (const [k, val] of v.summary) lines.push(`- **${k}**: ${val}`);
  lines.push('', '## Findings', '');
  if (v.findings.length === 0) lines.push('None.');
  for (const f of v.findings) lines.push(`- **${f.severity}**: ${f.text}`);
  lines.push('', '## Steps', '', '| runbook | step | state | started | took | detail |', '|---|---|---|---|---|---|');
  for (const s of v.steps)
    lines.push(
      `| ${cell(s.runbook)} | ${cell(s.name)} | ${s.state} | ${s.startedAt ?? '—'} | ${duration(s)} ` +
        `| ${cell(s.detail)} |`,
    );
  lines.push('', '## Approvals', '');
  if (v.approvals.length === 0) lines.push('None needed.');
  else {
    lines.push(
      '| runbook | step | approver | identity (Temporal) | via | at | comment |',
      '|---|---|---|---|---|---|---|',
    );
    for (const a of v.approvals)
      lines.push(
        `| ${cell(a.runbook)} | ${cell(a.step)} | ${cell(a.approver)} | ${cell(identityOf(a))} ` +
          `| ${cell(a.via ?? '—')} | ${a.at ?? '—'} | ${cell(a.comment)} |`,
      );
  }
  if (v.unacceptedApprovals?.length) {
    lines.push('', 'Approval messages not accepted:', '', '| run | step | approver | identity (Temporal) | via | at |');
    lines.push('|---|---|---|---|---|---|');
    for (const m of v.unacceptedApprovals)
      lines.push(
        `| ${cell(m.workflowId)} | ${cell(m.step)} | ${cell(m.approver)} | ${cell(m.identity || '(none)')} ` +
          `| ${m.via} | ${m.at} |`,
      );
  }
  if (v.trend.length) {
    lines.push('', '## Trend', '', '| run | at | RTO | RTO target | RPO | RPO target |', '|---|---|---|---|---|---|');
    for (const p of v.trend)
      lines.push(
        `| ${cell(p.label)} | ${p.at} | ${secs(p.rtoSeconds)} | ${p.rtoTargetSeconds} s | ${secs(p.rpoSeconds)} ` +
          `| ${p.rpoTargetSeconds} s |`,
      );
  }
  return `${lines.join('\n')}\n`;
}

/** Not read from history (unknown), recorded empty, or the recorded identity. */
const identityOf = (a: { identity?: string | null }) =>
  a.identity === undefined || a.identity === null ? 'not in history' : a.identity || '(none sent)';

const esc = (v: string | number | undefined | null) =>
  String(v ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');

const HTML_STYLE = [
  'body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}',
  'h1{font-size:1.5em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}',
  'table{border-collapse:collapse;width:100%} ' +
    'td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}',
  'th{background:#f5f5f5} .critical{color:#b71c1c;font-weight:600} .warning{color:#e65100} .info{color:#555}',
  '.outcome-passed,.outcome-completed{color:#2e7d32} .outcome-failed{color:#b71c1c} figure{margin:1em 0}',
].join('\n');

/** A table's header row. */
const header = (names: string[]) => `<tr>${names.map((n) => `<th>${n}</th>`).join('')}</tr>`;

/** One HTML file, nothing external: styles inline, charts as inline SVG. */
export async function renderHtml(v: ReportView): Promise<string> {
  const timeline = v.steps.some((s) => s.startedAt) ? await renderSvg(timelineSpec(v.steps)) : '';
  const trend = v.trend.length ? await renderSvg(trendSpec(v.trend)) : '';
  const rows = (cells: string[]) => `<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
  const findings = v.findings.length
    ? `<ul>${v.findings.map((f) => `<li class="${f.severity}">${esc(f.severity)}: ${esc(f.text)}</li>`).join('')}</ul>`
    : '<p>None.</p>';
  const steps = v.steps
    .map((s) =>
      rows([esc(s.runbook), esc(s.name), esc(s.state), esc(s.startedAt ?? '—'), esc(duration(s)), esc(s.detail)]),
    )
    .join('\n');
  const approvals = v.approvals.length
    ? `<table>${header(['runbook', 'step', 'approver', 'identity (Temporal)', 'via', 'at', 'comment'])}${v.approvals
        .map((a) =>
          rows([
            esc(a.runbook),
            esc(a.step),
            esc(a.approver),
            esc(identityOf(a)),
            esc(a.via ?? '—'),
            esc(a.at ?? '—'),
            esc(a.comment),
          ]),
        )
        .join('')}</table>`
    : '<p>None needed.</p>';
  const unaccepted = v.unacceptedApprovals?.length
    ? `<p>Approval messages not accepted:</p>` +
      `<table>${header(['run', 'step', 'approver', 'identity (Temporal)', 'via', 'at'])}${v.unacceptedApprovals
        .map((m) =>
          rows([esc(m.workflowId), esc(m.step), esc(m.approver), esc(m.identity || '(none)'), esc(m.via), esc(m.at)]),
        )
        .join('')}</table>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(v.title)}</title>
<style>
${HTML_STYLE}
</style></head><body>
<h1 class="outcome-${esc(v.outcome)}">${esc(v.title)}</h1>
<table>${v.summary.map(([k, val]) => rows([`<b>${esc(k)}</b>`, esc(val)])).join('')}</table>
<h2>Findings</h2>
${findings}
<h2>Timeline</h2>
<figure id="timeline">${timeline || '<p>No timed steps.</p>'}</figure>
<h2>RTO / RPO against targets</h2>
<figure id="trend">${trend || '<p>No measurements yet.</p>'}</figure>
<h2>Steps</h2>
<table><tr><th>runbook</th><th>step</th><th>state</th><th>started</th><th>took</th><th>detail</th></tr>
${steps}
</table>
<h2>Approvals</h2>
${approvals}${unaccepted}
<p class="info">Generated by drbook ${esc(new Date().toISOString())}.</p>
</body></html>
`;
}

const REPORTS = 'reports/drill/';
/** How many earlier drills the trend shows. */
const TREND_LENGTH = 20;

export function createDrillReportActivities(stores: BackupStores, inventory: Inventory, reportsDir: string) {
  /** The service's primary backup destination, else its first, else a local reports directory. */
  function storeFor(service: string): BackupStore {
    const svc = inventory.services.find((s) => s.name === service);
    if (svc?.backup) {
      const all = stores.forService(service);
      return all.find((s) => s.name === 'primary') ?? all[0];
    }
    return new FileStore('local', path.resolve(reportsDir));
  }

  return {
    /**
     * Store the drill's report (JSON, Markdown, HTML) with the trend of the earlier drills.
     * Repeatable: the same drill id overwrites the same three objects.
     */
    async publishDrillReport({ report }: { report: DrillReport }): Promise<DrillReport> {
      const store = storeFor(report.service);
      const prefix = `${report.service}/${REPORTS}`;
      const earlier: DrillTrendPoint[] = [];
      const listed = (await store.list(prefix))
        .map((o) => o.key)
        .filter((k) => k.endsWith('.json') && !k.endsWith(`/${report.id}.json`))
        .sort()
        .slice(-TREND_LENGTH);
      for (const key of listed) {
        const body = await store.get(key);
        if (!body) continue;
        try {
          const old = JSON.parse(body) as DrillReport;
          if (old.format !== 'drbook-drill/1') continue;
          earlier.push(...old.trend.filter((p) => p.id === old.id));
        } catch {
          // an unreadable old report only thins the trend
        }
      }
      earlier.sort((a, b) => a.at.localeCompare(b.at));
      const self = report.trend.filter((p) => p.id === report.id);
      const key = (ext: string) => `${prefix}${report.id}.${ext}`;
      const full: DrillReport = {
        ...report,
        trend: [...earlier, ...self],
        links: {
          json: store.location(key('json')),
          markdown: store.location(key('md')),
          html: store.location(key('html')),
        },
      };
      let view = drillView(full);
      const messages = await approvalMessagesFromActivity(report);
      if (messages) {
        view = identifyApprovals(view, messages);
        full.approvals = view.approvals;
      }
      await store.put(key('md'), renderMarkdown(view));
      await store.put(key('html'), await renderHtml(view));
      await store.put(key('json'), JSON.stringify(full, null, 2));
      return full;
    },

    /** The service's stored drill reports, newest last (for drctl and the trend). */
    async listDrillReports({ service }: { service: string }): Promise<DrillTrendPoint[]> {
      const store = storeFor(service);
      const points: DrillTrendPoint[] = [];
      for (const o of await store.list(`${service}/${REPORTS}`)) {
        if (!o.key.endsWith('.json')) continue;
        const body = await store.get(o.key);
        if (!body) continue;
        const r = JSON.parse(body) as DrillReport;
        points.push(...r.trend.filter((p) => p.id === r.id));
      }
      return points.sort((a, b) => a.at.localeCompare(b.at));
    },
  };
}

export type DrillReportActivities = ReturnType<typeof createDrillReportActivities>;

/**
 * Run as an activity, the drill's and its children's approval messages from their histories (the worker's
 * client); null outside an activity (tests calling the function directly).
 */
async function approvalMessagesFromActivity(report: DrillReport): Promise<ApprovalMessage[] | null> {
  let context: Context;
  try {
    context = Context.current();
  } catch {
    return null;
  }
  const drillId = context.info.workflowExecution?.workflowId;
  if (!drillId) return null;
  return approvalMessagesOf(context.client, [drillId, ...report.children.map((c) => c.workflowId)]);
}
