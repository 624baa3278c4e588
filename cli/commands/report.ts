/** drctl report: a finished run's report as Markdown, HTML with its timeline and RTO/RPO charts, or JSON. */
import { writeFileSync } from 'node:fs';
import type { Client } from '@temporalio/client';
import type { Command } from 'commander';
import { approvalMessagesOf } from '../../activities/reports/approvals';
import {
  drillView,
  identifyApprovals,
  renderHtml,
  renderMarkdown,
  runbookView,
  type ReportView,
} from '../../activities/reports/drill-report';
import type { DrillReport } from '../../contract';
import { OperatorError, type DrctlContext } from '../context';
import { resultOf } from './runs';

export function registerReportCommands(program: Command, ctx: DrctlContext): void {
  program
    .command('report <workflowId>')
    .description('the report of a finished run: Markdown (default), HTML with charts, or JSON')
    .option('--html <file>', 'write a self-contained HTML report with the timeline and RTO/RPO charts')
    .option('--md [file]', 'Markdown (to a file, or printed)')
    .option('--json', 'the run result as JSON')
    .action(async (workflowId: string, o: { html?: string; md?: string | boolean; json?: boolean }) => {
      const c = await ctx.temporal();
      const { info } = await ctx.handleFor(workflowId);
      if (info.status.name === 'RUNNING')
        throw new OperatorError(`${workflowId} is still running: drctl status ${workflowId} --watch`);
      const result = await resultOf(c, workflowId, info.runId);
      if (!result || typeof result !== 'object' || !('service' in result))
        throw new OperatorError(`${workflowId} (${info.type}) ended ${info.status.name} without a report`);
      if (o.json) return ctx.json(result);
      const view = await viewOf(c, result as { service: string; format?: string }, workflowId, info.runId);
      if (o.html) {
        writeFileSync(o.html, await renderHtml(view));
        ctx.print(`wrote ${o.html}`);
      }
      if (typeof o.md === 'string') {
        writeFileSync(o.md, renderMarkdown(view));
        ctx.print(`wrote ${o.md}`);
      } else if (o.md || !o.html) ctx.print(renderMarkdown(view));
    });
}

/** A drill's own view; any other runbook's, with the trend of that runbook's earlier runs of the service. */
async function viewOf(
  c: Client,
  result: { service: string; format?: string },
  workflowId: string,
  runId: string,
): Promise<ReportView> {
  if (result.format === 'drbook-drill/1') {
    const drill = result as unknown as DrillReport;
    // The worker stored the identities when it published the report; an older report gets them from history.
    if (drill.approvals.every((a) => a.identity !== undefined)) return drillView(drill);
    const runs = [{ workflowId, runId }, ...drill.children.map((ch) => ch.workflowId)];
    return identifyApprovals(drillView(drill), await approvalMessagesOf(c, runs));
  }
  const r = result as Parameters<typeof runbookView>[1];
  const trend = [];
  const query = `DrService = '${r.service}' AND DrRunbook = '${r.runbook ?? ''}' AND ExecutionStatus = 'Completed'`;
  for await (const wf of c.workflow.list({ query, pageSize: 20 })) {
    const old = (await resultOf(c, wf.workflowId, wf.runId)) as Parameters<typeof runbookView>[1] | null;
    if (!old?.measured || !old.targets) continue;
    trend.push({
      at: wf.startTime.toISOString(),
      label: `${wf.workflowId} ${wf.startTime.toISOString()}`,
      rtoSeconds: old.measured.rtoSeconds,
      rpoSeconds: old.measured.rpoSeconds,
      rtoTargetSeconds: old.targets.rtoSeconds,
      rpoTargetSeconds: old.targets.rpoSeconds,
    });
    if (trend.length >= 20) break;
  }
  // Each approval with the client identity Temporal recorded for it, from this run's history.
  return identifyApprovals(
    runbookView(workflowId, r, trend.reverse()),
    await approvalMessagesOf(c, [{ workflowId, runId }]),
  );
}
