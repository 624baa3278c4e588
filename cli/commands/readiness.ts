/** drctl readiness: every read-only check a failover depends on, now, for one service or all of them. */
import type { Command } from 'commander';
import type { DrctlContext } from '../context';
import { runOf } from '../runbooks';

interface ReadinessReport {
  service: string;
  ready: boolean;
  checks: { name: string; ok: boolean; detail: string }[];
}

export function registerReadinessCommands(program: Command, ctx: DrctlContext): void {
  program
    .command('readiness [service]')
    .description('run every read-only readiness check now (default: every service)')
    .option('--json', 'machine-readable')
    .action(async (service: string | undefined, o: { json?: boolean }) => {
      const services = service ? [ctx.requireService(service)] : ctx.inventory().services.map((s) => s.name);
      const c = await ctx.temporal();
      const reports = await Promise.all(
        services.map((s) => {
          const { type, workflowId, args } = runOf('readiness', { service: s });
          return c.workflow.execute(type, { taskQueue: ctx.queue(), workflowId, args }) as Promise<ReadinessReport>;
        }),
      );
      if (o.json) return ctx.json(reports);
      for (const r of reports) {
        ctx.print(`${r.service}: ${r.ready ? 'READY' : 'NOT READY'}`);
        for (const ch of r.checks) ctx.print(`  ${ch.ok ? '✓' : '✗'} ${ch.name}: ${ch.detail}`);
      }
      if (reports.some((r) => !r.ready)) process.exitCode = 2;
    });
}
