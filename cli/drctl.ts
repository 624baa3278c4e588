/**
 * drctl: the operator's terminal for drbook. Starts runbooks, approves and aborts them, shows
 * live step-by-step status, lists recent runs with measured RTO/RPO, renders reports.
 * Talks to Temporal only through @temporalio/client (connection from @temporalio/envconfig:
 * TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TLS_*, TEMPORAL_PROFILE); validates service
 * names against the inventory (DRBOOK_INVENTORY) before it asks Temporal anything.
 *
 *   drctl failover shop --dry-run --reason "hourly check"      drctl approve drill-shop --step promote --as alice
 *   drctl drill shop --scope switchover                          drctl status drill-shop --watch
 *   drctl runs --service shop --runbook drill                    drctl report drill-shop --html drill.html
 */
import { WorkflowFailedError } from '@temporalio/client';
import { Command, CommanderError } from 'commander';
import { TASK_QUEUE } from '../contract';
import { registerApproveCommands } from './commands/approve';
import { registerBackupCommands } from './commands/backups';
import { registerDrillCommands } from './commands/drill';
import { registerFailoverCommands } from './commands/failover';
import { registerReadinessCommands } from './commands/readiness';
import { registerReportCommands } from './commands/report';
import { registerRunsCommands } from './commands/runs';
import { registerSchedulesCommands } from './commands/schedules';
import { registerStatusCommands } from './commands/status';
import { DrctlContext, OperatorError, type DrctlIo, type DrctlOptions } from './context';

export { OperatorError, type DrctlIo, type DrctlOptions };

/** Every command group, in the order `drctl --help` lists them. */
const COMMAND_GROUPS = [
  registerFailoverCommands,
  registerDrillCommands,
  registerBackupCommands,
  registerApproveCommands,
  registerStatusCommands,
  registerRunsCommands,
  registerReportCommands,
  registerReadinessCommands,
  registerSchedulesCommands,
];

export function buildProgram(options: DrctlOptions = {}): Command {
  const program = new Command('drctl')
    .description('Operate drbook runbooks: failover, failback, drill, backup, restore test')
    .option('--task-queue <queue>', 'task queue the workers serve', process.env.DRBOOK_TASK_QUEUE ?? TASK_QUEUE)
    .showHelpAfterError()
    .exitOverride();
  const ctx = new DrctlContext(options, program);
  program.configureOutput({ writeOut: (s) => ctx.io.out(s), writeErr: (s) => ctx.io.err(s) });
  for (const register of COMMAND_GROUPS) register(program, ctx);
  program.hook('postAction', () => ctx.close());
  return program;
}

/** Run drctl with argv; returns the exit code (0 ok, 1 operator error). */
export async function runDrctl(argv: string[], options: DrctlOptions = {}): Promise<number> {
  const program = buildProgram(options);
  const err = (t: string) => (options.io ? options.io.err(t) : process.stderr.write(t));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof OperatorError) {
      err(`drctl: ${e.message}\n`);
      return 1;
    }
    if (e instanceof WorkflowFailedError) {
      err(`drctl: run failed: ${e.cause?.message ?? e.message}\n`);
      return 1;
    }
    throw e;
  }
}

if (require.main === module) {
  runDrctl(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
