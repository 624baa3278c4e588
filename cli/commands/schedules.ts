/** drctl schedules list | reconcile: drbook's Temporal Schedules against the inventory's (cli/schedules.ts). */
import { Argument, type Command } from 'commander';
import type { DrctlContext } from '../context';
import { schedulesCommand } from '../schedules';

export function registerSchedulesCommands(program: Command, ctx: DrctlContext): void {
  program
    .command('schedules')
    .description("drbook's Temporal Schedules: list them, or reconcile the server with the inventory's schedules")
    .addArgument(new Argument('<action>', 'list | reconcile').choices(['list', 'reconcile']))
    .option('--dry-run', 'reconcile: report what would change, change nothing')
    .action(async (action: string, o: { dryRun?: boolean }) => {
      await schedulesCommand(
        await ctx.temporal(),
        action,
        {
          dryRun: Boolean(o.dryRun),
          ...(action === 'reconcile' ? { inventory: ctx.inventory() } : {}),
          taskQueue: ctx.queue(),
        },
        ctx.print,
      );
    });
}
