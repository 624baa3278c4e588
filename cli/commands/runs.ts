/** drctl runs: recent runbook runs with their outcome and measured RTO/RPO against the targets. */
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError, type Client, type WorkflowExecutionInfo } from '@temporalio/client';
import type { Command } from 'commander';
import type { RunbookStatus } from '../../contract';
import type { DrctlContext } from '../context';

interface RunRow {
  workflowId: string;
  runId: string;
  type: string;
  runbook?: string;
  service?: string;
  mode?: string;
  outcome: string | null;
  state: string;
  startTime: string;
  closeTime: string | null;
  rtoSeconds?: number | null;
  rpoSeconds?: number | null;
  rtoTargetSeconds?: number | null;
  rpoTargetSeconds?: number | null;
}

export function registerRunsCommands(program: Command, ctx: DrctlContext): void {
  program
    .command('runs')
    .description('recent runbook runs with outcome and measured RTO/RPO')
    .option('--service <service>')
    .option('--runbook <runbook>', 'failover, failback, drill, readiness, ...')
    .option('--limit <n>', 'how many', (v) => Number(v), 20)
    .option('--json', 'machine-readable')
    .action(async (o: { service?: string; runbook?: string; limit: number; json?: boolean }) => {
      if (o.service) ctx.requireService(o.service);
      const c = await ctx.temporal();
      const clauses = [
        o.service ? `DrService = '${o.service}'` : `DrService IS NOT NULL`,
        ...(o.runbook ? [`DrRunbook = '${o.runbook.replace(/'/g, '')}'`] : []),
      ];
      const rows: RunRow[] = [];
      for await (const wf of c.workflow.list({ query: clauses.join(' AND '), pageSize: o.limit })) {
        rows.push(await runRow(c, wf));
        if (rows.length >= o.limit) break;
      }
      if (o.json) return ctx.json(rows);
      if (rows.length === 0) return ctx.print('no runs');
      for (const r of rows)
        ctx.print(
          [
            r.workflowId.padEnd(28),
            (r.runbook ?? r.type).padEnd(10),
            (r.mode ?? '').padEnd(10),
            r.state.padEnd(10),
            (r.outcome ?? '').padEnd(16),
            `RTO ${r.rtoSeconds ?? '—'} s / ${r.rtoTargetSeconds ?? '—'}`.padEnd(18),
            `RPO ${r.rpoSeconds ?? '—'} s / ${r.rpoTargetSeconds ?? '—'}`.padEnd(16),
            r.startTime,
          ].join(' '),
        );
    });
}

async function runRow(c: Client, wf: WorkflowExecutionInfo): Promise<RunRow> {
  const sa = wf.searchAttributes as Record<string, string[] | undefined>;
  const row: RunRow = {
    workflowId: wf.workflowId,
    runId: wf.runId,
    type: wf.type,
    runbook: sa.DrRunbook?.[0],
    service: sa.DrService?.[0],
    mode: sa.DrMode?.[0],
    outcome: sa.DrOutcome?.[0] ?? null,
    state: wf.status.name,
    startTime: wf.startTime.toISOString(),
    closeTime: wf.closeTime?.toISOString() ?? null,
  };
  if (wf.status.name === 'COMPLETED' || wf.status.name === 'FAILED') {
    const result = await resultOf(c, wf.workflowId, wf.runId);
    const m = result as { measured?: RunbookStatus['measured']; targets?: RunbookStatus['targets'] } | null;
    row.rtoSeconds = m?.measured?.rtoSeconds ?? null;
    row.rpoSeconds = m?.measured?.rpoSeconds ?? null;
    row.rtoTargetSeconds = m?.targets?.rtoSeconds ?? null;
    row.rpoTargetSeconds = m?.targets?.rpoSeconds ?? null;
  }
  return row;
}

/** A closed run's result; for a failed drill, the report it carries in its failure details. */
export async function resultOf(c: Client, workflowId: string, runId?: string): Promise<unknown> {
  try {
    return await c.workflow.getHandle(workflowId, runId).result();
  } catch (err) {
    if (err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure && err.cause.details?.length)
      return err.cause.details[0];
    return null;
  }
}
