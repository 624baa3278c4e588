/**
 * Restore-test reports, where operators find them: the service's primary backup destination
 * (or its first one), `<prefix><service>/reports/restore-test/<id>.{json,md,html}`. JSON for
 * machines; Markdown and a self-contained HTML page (no scripts, no external assets) for people,
 * each with pass/fail per check, the timings against the tier's targets, and the earlier tests.
 */
import type { RestoreTestReport } from '../../contract';
import type { BackupStore, BackupStores } from '../storage/destinations';
import { renderSvg, trendSpec, type TrendPoint } from './charts';

export const reportRoot = (service: string) => `${service}/reports/restore-test/`;

export interface RestoreHistoryEntry {
  id: string;
  /** When the test ended (the trend's x axis); absent in entries written before the trend chart. */
  at?: string;
  outcome: RestoreTestReport['outcome'];
  backupId: string | null;
  failedCheck: string | null;
  restoreSeconds: number | null;
  rtoSeconds: number | null;
  backupAgeSeconds: number | null;
}

const HISTORY = 24;

/** "42 s", "3 min 5 s", "2 h 4 min", "3 d 2 h". */
/** One sentence on a file tree's restore: which chain, how many entries, differences, clean-up. */
function fileTreeLine(f: NonNullable<RestoreTestReport['fileTrees']>[number]): string {
  const diff = f.problems.length ? `${f.problems.length} differences (${f.problems.slice(0, 3).join('; ')})` : 'exact';
  return (
    `${f.backupId} (chain ${f.chain.join(' → ')}) restored in ${f.seconds} s: ${f.files} entries, ${f.bytes} bytes, ` +
    `${diff}; scratch directory ${f.cleanedUp ? 'removed' : 'NOT removed'}.`
  );
}

/** One sentence on the physical restore: which copy, how long each phase took, clean-up. */
function physicalLine(p: NonNullable<RestoreTestReport['physical']>): string {
  const t = p.seconds;
  return (
    `Physical backup ${p.backupId} (taken ${p.startedAt}) restored into a scratch instance ` +
    `in ${humanSeconds(t.total)} (extract ${humanSeconds(t.extract)}, prepare ${humanSeconds(t.prepare)}, ` +
    `start ${humanSeconds(t.start)}, checks ${humanSeconds(t.validate)}), ${p.rows} rows read; ` +
    `instance ${p.cleanedUp ? 'removed' : 'NOT removed'}.`
  );
}

/** One sentence on the binlog replay: which point, how far it got, from which logs. */
function pitrLine(p: NonNullable<RestoreTestReport['pitr']>): string {
  const point = p.target.kind === 'end' ? 'the end of the archive' : `${p.target.kind} ${p.target.value}`;
  return (
    `Archived binlogs ${p.logs[0] ?? ''}…${p.logs[p.logs.length - 1] ?? ''} (${p.logs.length}) replayed ` +
    `to ${point}: ${p.reached ? 'reached' : 'NOT reached'}, ${p.transactions} transactions, ` +
    `last ${p.lastGtid ?? 'none'} at ${p.lastEventAt ?? '-'}; the archive ends ` +
    `at ${p.archiveEndsAt ?? '?'}; ${humanSeconds(p.seconds)}.`
  );
}

export function humanSeconds(s: number | null): string {
  if (s === null) return 'n/a';
  if (s < 60) return `${Math.round(s * 10) / 10} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
}

const mark = (ok: boolean, gate: boolean) => (ok ? 'PASS' : gate ? 'FAIL' : 'MISS');
const md = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function renderRestoreReportMarkdown(r: RestoreTestReport, history: RestoreHistoryEntry[]): string {
  const met = (v: number | null, t: number) => (v === null ? 'n/a' : v <= t ? 'yes' : 'no');
  const lines = [
    `# Restore test ${r.service} ${r.id}: ${r.outcome.toUpperCase()}`,
    '',
    r.failedCheck ? `**Failed check: \`${r.failedCheck}\`**\n` : '',
    `- Service: ${r.service} (tier ${r.tier}, strategy ${r.strategy})`,
    `- Backup: ${r.backup.id ?? 'none'}${r.backup.source ? ` from ${r.backup.source}` : ''}` +
      (r.backup.size !== null ? `, ${r.backup.size} bytes` : ''),
    `- Ran: ${r.startedAt} → ${r.endedAt}`,
    r.scratch
      ? `- Scratch: ${r.scratch.databases.map((d) => `${d.source} → ${d.scratch}`).join(', ')} on ${r.scratch.server}`
      : '- Scratch: none created',
    '',
    '## Timings against targets',
    '',
    '| measure | value | target | met |',
    '|---|---|---|---|',
    `| restore time (RTO evidence: checksum + restore + validation) | ${humanSeconds(r.measured.rtoSeconds)} ` +
      `| ${humanSeconds(r.targets.rtoSeconds)} | ${met(r.measured.rtoSeconds, r.targets.rtoSeconds)} |`,
    `| of which restore (fetch, zstd -d, load) | ${humanSeconds(r.measured.restoreSeconds)} | | |`,
    `| backup age at test time (RPO evidence) | ${humanSeconds(r.measured.backupAgeSeconds)} ` +
      `| ${humanSeconds(r.targets.rpoSeconds)} | ${met(r.measured.backupAgeSeconds, r.targets.rpoSeconds)} |`,
    '',
    '## Checks',
    '',
    '| check | result | detail |',
    '|---|---|---|',
    ...r.checks.map((c) => `| ${md(c.name)} | ${mark(c.ok, c.gate)}${c.gate ? '' : ' (evidence)'} | ${md(c.detail)} |`),
    '',
  ];
  if (r.pitr) lines.push('## Point-in-time recovery', '', pitrLine(r.pitr), '');
  if (r.physical) lines.push('## Physical backup', '', physicalLine(r.physical), '');
  for (const f of r.fileTrees ?? []) lines.push(`## File tree ${f.host}:${f.path}`, '', fileTreeLine(f), '');
  if (r.rds) {
    lines.push(
      '## RDS',
      '',
      `Snapshot ${r.rds.snapshot} restored as ${r.rds.instance} (${r.rds.region}): ${r.rds.status} ` +
        `in ${humanSeconds(r.rds.seconds)}; ${r.rds.deleted ? 'deleted' : 'NOT deleted'}.`,
      '',
    );
  }
  lines.push(
    '## Clean-up',
    '',
    ...r.cleanup.map((c) => `- ${c.done ? 'done' : 'NOT DONE'}: ${c.detail}`),
    r.cleanup.length ? '' : '- nothing was created',
    '## Earlier tests',
    '',
    '| test | outcome | backup | restore time | backup age | failed check |',
    '|---|---|---|---|---|---|',
    ...history.map(
      (h) =>
        `| ${h.id} | ${h.outcome} | ${h.backupId ?? ''} | ${humanSeconds(h.rtoSeconds)} ` +
        `| ${humanSeconds(h.backupAgeSeconds)} | ${h.failedCheck ?? ''} |`,
    ),
    history.length ? '' : '(none)',
    '## Steps',
    '',
    ...r.steps.map((s) => `- ${s.name}: ${s.state}${s.detail ? ` (${md(s.detail)})` : ''}`),
    '',
  );
  return lines.filter((l, i, all) => !(l === '' && all[i - 1] === '')).join('\n');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * Restore time (RTO evidence) and backup age (RPO evidence) of this test and the earlier ones, each as a share of
 * the tier's target, oldest first.
 */
export function restoreTrend(r: RestoreTestReport, history: RestoreHistoryEntry[]): TrendPoint[] {
  return [...history.slice().reverse(), historyEntry(r)]
    .filter((h): h is RestoreHistoryEntry & { at: string } => Boolean(h.at))
    .map((h) => ({
      at: h.at,
      label: h.id,
      rtoSeconds: h.rtoSeconds,
      rpoSeconds: h.backupAgeSeconds,
      rtoTargetSeconds: r.targets.rtoSeconds,
      rpoTargetSeconds: r.targets.rpoSeconds,
    }));
}

const HTML_STYLE = [
  'body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:70em;color:#222}',
  'table{border-collapse:collapse;margin:.5em 0 1.5em}' +
    'td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}',
  'th{background:#f4f4f4}.pass{color:#176c2c;font-weight:600}.fail{color:#b00020;font-weight:600}' +
    '.miss{color:#a15c00;font-weight:600}',
  '.banner{padding:.6em 1em;border-radius:4px;color:#fff;display:inline-block}.banner.passed{background:#176c2c}' +
    '.banner.failed{background:#b00020}.banner.cancelled{background:#666}',
  'code{background:#f4f4f4;padding:0 .2em}',
].join('\n');

export function renderRestoreReportHtml(r: RestoreTestReport, history: RestoreHistoryEntry[], trendSvg = ''): string {
  const cls = (ok: boolean, gate: boolean) => (ok ? 'pass' : gate ? 'fail' : 'miss');
  const row = (cells: string[]) => `<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
  const met = (v: number | null, t: number) =>
    v === null ? 'n/a' : v <= t ? '<span class="pass">met</span>' : '<span class="miss">missed</span>';
  const failedCheck = r.failedCheck ? ` — failed check <code>${esc(r.failedCheck)}</code>` : '';
  const source = r.backup.source ? ` from ${esc(r.backup.source)}` : '';
  const timings = [
    row([
      'restore time (RTO evidence: checksum + restore + validation)',
      humanSeconds(r.measured.rtoSeconds),
      humanSeconds(r.targets.rtoSeconds),
      met(r.measured.rtoSeconds, r.targets.rtoSeconds),
    ]),
    row(['of which restore (fetch, zstd -d, load)', humanSeconds(r.measured.restoreSeconds), '', '']),
    row([
      'backup age at test time (RPO evidence)',
      humanSeconds(r.measured.backupAgeSeconds),
      humanSeconds(r.targets.rpoSeconds),
      met(r.measured.backupAgeSeconds, r.targets.rpoSeconds),
    ]),
  ].join('\n');
  const checks = r.checks
    .map((c) =>
      row([
        esc(c.name),
        `<span class="${cls(c.ok, c.gate)}">${mark(c.ok, c.gate)}</span>${c.gate ? '' : ' (evidence)'}`,
        esc(c.detail),
      ]),
    )
    .join('\n');
  const fileTrees = (r.fileTrees ?? [])
    .map((f) => `<h2>File tree ${esc(`${f.host}:${f.path}`)}</h2><p>${esc(fileTreeLine(f))}</p>`)
    .join('\n');
  const rds = r.rds
    ? `<h2>RDS</h2><p>Snapshot <code>${esc(r.rds.snapshot)}</code> restored as <code>${esc(r.rds.instance)}</code> ` +
      `(${esc(r.rds.region)}): ${esc(r.rds.status)} in ${humanSeconds(r.rds.seconds)}; ` +
      `${r.rds.deleted ? 'deleted' : '<span class="fail">NOT deleted</span>'}.</p>`
    : '';
  const cleanup =
    r.cleanup
      .map(
        (c) =>
          `<li><span class="${c.done ? 'pass' : 'fail'}">${c.done ? 'done' : 'NOT DONE'}</span>: ${esc(c.detail)}</li>`,
      )
      .join('') || '<li>nothing was created</li>';
  const earlier =
    history
      .map((h) =>
        row([
          esc(h.id),
          `<span class="${h.outcome === 'passed' ? 'pass' : 'fail'}">${h.outcome}</span>`,
          esc(h.backupId ?? ''),
          humanSeconds(h.rtoSeconds),
          humanSeconds(h.backupAgeSeconds),
          esc(h.failedCheck ?? ''),
        ]),
      )
      .join('\n') || row(['(none)', '', '', '', '', '']);
  const steps = r.steps
    .map((s) => row([esc(s.name), esc(s.state), esc(s.startedAt ?? ''), esc(s.endedAt ?? ''), esc(s.detail ?? '')]))
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Restore test ${esc(r.service)} ${esc(r.id)}: ${r.outcome}</title>
<style>
${HTML_STYLE}
</style></head><body>
<h1>Restore test: ${esc(r.service)} <small>${esc(r.id)}</small></h1>
<p class="banner ${r.outcome}">${r.outcome.toUpperCase()}${failedCheck}</p>
<p>Tier ${esc(r.tier)}, strategy ${esc(r.strategy)}. Backup <code>${esc(r.backup.id ?? 'none')}</code>${source}. \
Ran ${esc(r.startedAt)} → ${esc(r.endedAt)}.</p>
<h2>Timings against targets</h2>
<table><tr><th>measure</th><th>value</th><th>target</th><th></th></tr>
${timings}
</table>
${trendSvg ? `<h2>Trend</h2>\n<figure id="trend">${trendSvg}</figure>` : ''}
<h2>Checks</h2>
<table><tr><th>check</th><th>result</th><th>detail</th></tr>
${checks}
</table>
${r.pitr ? `<h2>Point-in-time recovery</h2><p>${esc(pitrLine(r.pitr))}</p>` : ''}
${r.physical ? `<h2>Physical backup</h2><p>${esc(physicalLine(r.physical))}</p>` : ''}
${fileTrees}
${rds}
<h2>Clean-up</h2>
<ul>${cleanup}</ul>
<h2>Earlier tests</h2>
<table><tr><th>test</th><th>outcome</th><th>backup</th><th>restore time</th><th>backup age</th>\
<th>failed check</th></tr>
${earlier}
</table>
<h2>Steps</h2>
<table><tr><th>step</th><th>state</th><th>started</th><th>ended</th><th>detail</th></tr>
${steps}
</table>
</body></html>
`;
}

function historyEntry(r: RestoreTestReport): RestoreHistoryEntry {
  return {
    id: r.id,
    at: r.endedAt,
    outcome: r.outcome,
    backupId: r.backup?.id ?? null,
    failedCheck: r.failedCheck,
    restoreSeconds: r.measured?.restoreSeconds ?? null,
    rtoSeconds: r.measured?.rtoSeconds ?? null,
    backupAgeSeconds: r.measured?.backupAgeSeconds ?? null,
  };
}

export function createReportActivities(stores: BackupStores) {
  const reportStore = (service: string): BackupStore => {
    const all = stores.forService(service);
    return all.find((s) => s.name === 'primary') ?? all[0];
  };
  return {
    /** Store the report as JSON, Markdown and HTML (with the earlier tests' history); idempotent per report id. */
    async publishRestoreReport({
      report,
    }: {
      report: RestoreTestReport;
    }): Promise<{ json: string; markdown: string; html: string; history: number }> {
      const store = reportStore(report.service);
      const root = reportRoot(report.service);
      const earlier = (await store.list(root))
        .filter((o) => o.key.endsWith('.json'))
        .map((o) => o.key)
        .filter((k) => k !== `${root}${report.id}.json`)
        .sort()
        .reverse()
        .slice(0, HISTORY);
      const history: RestoreHistoryEntry[] = [];
      for (const key of earlier) {
        const text = await store.get(key);
        try {
          const r = JSON.parse(text ?? '') as RestoreTestReport;
          if (r.format === 'drbook-restore-test/1') history.push(historyEntry(r));
        } catch {
          // not one of ours: left out of the history
        }
      }
      const keys = {
        json: `${root}${report.id}.json`,
        markdown: `${root}${report.id}.md`,
        html: `${root}${report.id}.html`,
      };
      const links = {
        json: store.location(keys.json),
        markdown: store.location(keys.markdown),
        html: store.location(keys.html),
      };
      const full: RestoreTestReport = { ...report, links };
      // People's pages first, JSON last: a JSON report in the history always has its pages beside it.
      await store.put(keys.markdown, renderRestoreReportMarkdown(full, history));
      const trend = restoreTrend(full, history);
      const trendSvg = trend.length ? await renderSvg(trendSpec(trend)) : '';
      await store.put(keys.html, renderRestoreReportHtml(full, history, trendSvg));
      await store.put(keys.json, `${JSON.stringify({ ...full, history }, null, 2)}\n`);
      return { ...links, history: history.length };
    },
  };
}

export type ReportActivities = ReturnType<typeof createReportActivities>;
