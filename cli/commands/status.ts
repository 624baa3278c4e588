/**
 * drctl status: a run step by step (a drill with its active child), or a service: its live roles, read now by a
 * worker, its failover/failback/drill runs and its latest readiness.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import type { Command } from 'commander';
import { rootCauseMessage } from '../../activities/errors';
import { type RunbookStatus, type Topology, type DrillStatus, statusQuery, workflowIdFor } from '../../contract';
import type { DrctlContext } from '../context';
import { runOf } from '../runbooks';

export function registerStatusCommands(program: Command, ctx: DrctlContext): void {
  program
    .command('status <target>')
    .description('a run (workflow id) step by step, or a service: its runbooks and latest readiness')
    .option('--watch', 'refresh until the run closes')
    .option('--json', 'machine-readable')
    .action(async (target: string, o: { watch?: boolean; json?: boolean }) => {
      if (ctx.inventory().services.some((s) => s.name === target)) return serviceStatus(ctx, target, Boolean(o.json));
      for (;;) {
        const snapshot = await runStatus(ctx, target);
        if (o.json) ctx.json(snapshot);
        else ctx.print(formatStatus(snapshot));
        if (!o.watch || snapshot.state !== 'RUNNING') return;
        await new Promise((r) => setTimeout(r, ctx.options.watchIntervalMs ?? 2000));
        if (!o.json) ctx.print('');
      }
    });
}

async function runStatus(ctx: DrctlContext, workflowId: string) {
  const { handle, info } = await ctx.handleFor(workflowId);
  let status: RunbookStatus | DrillStatus | null = null;
  try {
    status = await handle.query(statusQuery);
  } catch {
    status = null; // not started yet, or a run without a status query
  }
  let child: { workflowId: string; status: RunbookStatus } | null = null;
  const active = (status as DrillStatus | null)?.activeChild;
  if (active) {
    const h = (await ctx.temporal()).workflow.getHandle(active);
    child = { workflowId: active, status: await h.query(statusQuery).catch(() => null as unknown as RunbookStatus) };
  }
  return {
    workflowId,
    type: info.type,
    state: info.status.name,
    startTime: info.startTime,
    closeTime: info.closeTime ?? null,
    status,
    child,
  };
}

function formatStatus(s: Awaited<ReturnType<typeof runStatus>>): string {
  const lines = [`${s.workflowId}  ${s.type}  ${s.state}  started ${s.startTime.toISOString()}`];
  const describe = (st: RunbookStatus, indent: string) => {
    lines.push(`${indent}phase: ${st.phase}`);
    // The live roles the run read from the servers (its topology step), not the inventory's names.
    if (st.topology) lines.push(`${indent}roles: ${st.topology.state}: ${st.topology.detail}`);
    for (const step of st.steps) {
      const took =
        step.startedAt && step.endedAt
          ? `${Math.round((Date.parse(step.endedAt) - Date.parse(step.startedAt)) / 100) / 10} s`
          : step.startedAt
            ? 'running'
            : '';
      lines.push(
        `${indent}  ${mark(step.state)} ${step.name.padEnd(24)} ${step.state.padEnd(9)} ${took.padEnd(9)} ` +
          (step.detail ?? ''),
      );
    }
    if (st.pendingApproval) {
      const p = st.pendingApproval;
      lines.push(
        `${indent}WAITING for approval of "${p.step}" (${p.needed} more; approvers ${p.approvers.join(', ')}; ` +
          `deadline ${p.deadline})`,
        `${indent}  ${p.question}`,
        `${indent}  drctl approve ${s.child?.workflowId ?? s.workflowId} --step ${p.step} --as <name>` +
          (p.requireOverrideRpo ? ' --override-rpo' : '') +
          (p.requireUnfencedAck ? ' --ack-unfenced' : ''),
      );
    }
    if (st.measured.rtoSeconds !== null || st.measured.rpoSeconds !== null)
      lines.push(
        `${indent}measured: RTO ${st.measured.rtoSeconds ?? '—'} s (target ${st.targets.rtoSeconds}), ` +
          `RPO ${st.measured.rpoSeconds ?? '—'} s (target ${st.targets.rpoSeconds})`,
      );
    for (const r of st.rejectedApprovals ?? [])
      lines.push(`${indent}rejected approval by ${r.approval.approver}: ${r.reason}`);
  };
  if (s.status) describe(s.status, '  ');
  if (s.child?.status) {
    lines.push(`  └ ${s.child.workflowId}`);
    describe(s.child.status, '    ');
  }
  return lines.join('\n');
}

/** The runbooks that run once per service at a time, under `<runbook>-<service>`. */
const SERVICE_RUNBOOKS = ['failover', 'failback', 'drill'] as const;

async function serviceStatus(ctx: DrctlContext, service: string, asJson: boolean) {
  const c = await ctx.temporal();
  const out: Record<string, unknown> = {};
  for (const runbook of SERVICE_RUNBOOKS) {
    const id = workflowIdFor(runbook, service);
    try {
      const info = await c.workflow.getHandle(id).describe();
      out[runbook] = {
        workflowId: id,
        state: info.status.name,
        startTime: info.startTime,
        closeTime: info.closeTime ?? null,
      };
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      out[runbook] = null;
    }
  }
  out.roles = await liveRoles(ctx, service);
  out.readiness = await latestReadiness(ctx, service);
  if (asJson) return ctx.json({ service, ...out });
  ctx.print(`service ${service}`);
  const roles = out.roles as Topology | { error: string };
  if ('error' in roles) ctx.print(`  roles      could not be read now: ${roles.error}`);
  else {
    ctx.print(`  roles      ${roles.state.toUpperCase()}: ${roles.detail} (read ${roles.readAt})`);
    for (const m of roles.members) {
      const role = m.reachable ? (m.readOnly ? 'read-only' : 'WRITABLE ') : 'unreachable';
      const from = m.replication?.configured
        ? `replicates from ${m.replication.sourceServer ?? m.replication.source}`
        : '';
      ctx.print(`    ${m.server.padEnd(14)} ${role}  ${from}${m.error ? ` (${m.error})` : ''}`);
    }
  }
  for (const runbook of SERVICE_RUNBOOKS) {
    const r = out[runbook] as { workflowId: string; state: string; startTime: Date } | null;
    ctx.print(
      `  ${runbook.padEnd(10)} ${r ? `${r.workflowId} ${r.state} (started ${r.startTime.toISOString()})` : '—'}`,
    );
  }
  const rd = out.readiness as Awaited<ReturnType<typeof latestReadiness>>;
  if (!rd) ctx.print('  readiness  no readiness run yet (drctl readiness ' + service + ')');
  else {
    ctx.print(`  readiness  ${rd.ready ? 'READY' : 'NOT READY'} at ${rd.at} (${rd.workflowId})`);
    for (const ch of rd.checks) ctx.print(`    ${ch.ok ? '✓' : '✗'} ${ch.name}: ${ch.detail}`);
  }
}

/**
 * Who is writable now, read from the servers by a worker (serviceRoles: the worker holds the database
 * credentials, drctl does not), never the roles of the last readiness run.
 */
async function liveRoles(ctx: DrctlContext, service: string): Promise<Topology | { error: string }> {
  const c = await ctx.temporal();
  const { type, workflowId, args } = runOf('roles', { service });
  try {
    return (await c.workflow.execute(type, {
      taskQueue: ctx.queue(),
      workflowId,
      args,
      workflowExecutionTimeout: '60s',
    })) as Topology;
  } catch (err) {
    return { error: rootCauseMessage(err) };
  }
}

/** The newest finished readiness of a service: a readiness run, or a failover dry run. */
async function latestReadiness(ctx: DrctlContext, service: string) {
  const c = await ctx.temporal();
  const query =
    `ExecutionStatus = 'Completed' AND ((WorkflowType = 'readiness' AND WorkflowId STARTS_WITH ` +
    `'${workflowIdFor('readiness', service)}') OR (DrService = '${service}' AND DrRunbook = 'failover' AND ` +
    `DrMode = 'dry-run'))`;
  for await (const wf of c.workflow.list({ query, pageSize: 5 })) {
    const result = (await c.workflow.getHandle(wf.workflowId, wf.runId).result()) as {
      ready?: boolean;
      checks?: { name: string; ok: boolean; detail: string }[];
      readiness?: { ready: boolean; checks: { name: string; ok: boolean; detail: string }[] };
    };
    const r = result.readiness ?? result;
    return {
      workflowId: wf.workflowId,
      at: (wf.closeTime ?? wf.startTime).toISOString(),
      ready: Boolean(r.ready),
      checks: r.checks ?? [],
    };
  }
  return null;
}

function mark(state: string): string {
  return { succeeded: '✓', failed: '✗', skipped: '·', waiting: '…', running: '▶', pending: ' ' }[state] ?? ' ';
}
