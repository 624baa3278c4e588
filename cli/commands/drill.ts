/** drctl drill: an isolated DR copy, or a switchover (failover + failback), ending with a drill report. */
import { Option, type Command } from 'commander';
import type { DrctlContext } from '../context';
import { startRunbook } from '../runbooks';

export function registerDrillCommands(program: Command, ctx: DrctlContext): void {
  program
    .command('drill <service>')
    .description('run a DR drill: isolated (production untouched) or switchover (failover + failback)')
    .addOption(new Option('--scope <scope>', 'drill scope').choices(['isolated', 'switchover']).makeOptionMandatory())
    .option('--reason <text>', 'why', 'quarterly DR drill')
    .option('--wait', 'wait for the report and print it')
    .action(async (service: string, o: { scope: 'isolated' | 'switchover'; reason: string; wait?: boolean }) => {
      ctx.requireService(service);
      await startRunbook(ctx, 'drill', { service, scope: o.scope, reason: o.reason }, Boolean(o.wait));
    });
}
