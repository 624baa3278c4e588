/** drctl failover, failback, resolve: the runbooks that change which server a service writes to. */
import type { Command } from 'commander';
import type { DrctlContext } from '../context';
import { startRunbook } from '../runbooks';

export function registerFailoverCommands(program: Command, ctx: DrctlContext): void {
  program
    .command('failover <service>')
    .description('fail a service over to DR (default: a drill; --real for an incident)')
    .requiredOption('--reason <text>', 'why (recorded in the run and the notifications)')
    .option('--real', 'a real failover (a critical service needs two approvers, as in a drill)')
    .option('--dry-run', 'run every read-only readiness check, change nothing')
    .option('--wait', 'wait for the result and print it')
    .action(async (service: string, o: { reason: string; real?: boolean; dryRun?: boolean; wait?: boolean }) => {
      ctx.requireService(service);
      await startRunbook(
        ctx,
        'failover',
        { service, mode: o.real ? 'real' : 'drill', reason: o.reason, dryRun: Boolean(o.dryRun) },
        Boolean(o.wait || o.dryRun),
      );
    });
  program
    .command('failback <service>')
    .description('switch a failed-over service back to its original primary')
    .option('--real', 'after a real failover (a critical service needs two approvers, as in a drill)')
    .option('--wait', 'wait for the result and print it')
    .action(async (service: string, o: { real?: boolean; wait?: boolean }) => {
      ctx.requireService(service);
      await startRunbook(ctx, 'failback', { service, mode: o.real ? 'real' : 'drill' }, Boolean(o.wait));
    });
  program
    .command('resolve <service>')
    .description('end a split brain: keep one writable member, fence the others (approved by the production approvers)')
    .requiredOption('--keep <member>', 'the database member that stays writable')
    .requiredOption('--reason <text>', 'why this member (recorded in the run and the notifications)')
    .option('--wait', 'wait for the report and print it')
    .action(async (service: string, o: { keep: string; reason: string; wait?: boolean }) => {
      ctx.requireService(service);
      await startRunbook(ctx, 'resolve', { service, keep: o.keep, reason: o.reason }, Boolean(o.wait));
    });
}
