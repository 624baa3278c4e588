/** drctl backup, restore-test: a backup now, and a restore of one into scratch, checked. */
import type { Command } from 'commander';
import type { DrctlContext } from '../context';
import { startRunbook } from '../runbooks';

export function registerBackupCommands(program: Command, ctx: DrctlContext): void {
  program
    .command('backup [services...]')
    .description('run the nightly backup now (default: every service with a backup section)')
    .option('--no-snapshots', 'logical dump only')
    .option('--wait', 'wait for the summary and print it')
    .action(async (services: string[], o: { snapshots: boolean; wait?: boolean }) => {
      services.forEach(ctx.requireService);
      await startRunbook(
        ctx,
        'backup',
        { ...(services.length ? { services } : {}), snapshots: o.snapshots },
        Boolean(o.wait),
      );
    });
  program
    .command('restore-test <service>')
    .description('restore the newest verified backup into scratch and validate it')
    .option('--backup-id <id>', 'restore this backup instead of the newest')
    .option('--wait', 'wait for the result and print it')
    .action(async (service: string, o: { backupId?: string; wait?: boolean }) => {
      ctx.requireService(service);
      await startRunbook(
        ctx,
        'restore-test',
        { service, ...(o.backupId ? { backupId: o.backupId } : {}) },
        Boolean(o.wait),
      );
    });
}
