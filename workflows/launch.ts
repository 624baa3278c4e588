/**
 * launchRunbook({ runbook, service, input }): how a schedule starts a runbook that runs once per
 * service at a time. A scheduled run's workflow id gets a timestamp appended, which the runbook's
 * id guard (`drill-<service>`) refuses; so the schedule starts this launcher, and the launcher
 * starts the runbook as a child under its one id. Temporal refuses a second run with a running id:
 * when a drill of the service is already going (scheduled or by hand), the launch ends "skipped",
 * never a second drill. The runbook is abandoned to run on its own (the launcher does not wait).
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { ParentClosePolicy, startChild, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import {
  launchInput,
  parseInput,
  type LaunchResult,
  DrOutcome,
  DrRunbook,
  DrService,
  workflowIdFor,
} from '../contract';
import { drDrill } from './drill';
import { publishStatusPage } from './page';

const RUNBOOKS = { drill: drDrill } as const;

export async function launchRunbook(rawInput: unknown): Promise<LaunchResult> {
  const { runbook, service, input } = parseInput(launchInput, rawInput);
  const workflowId = workflowIdFor(runbook, service);
  upsertSearchAttributes([
    { key: DrService, value: service },
    { key: DrRunbook, value: `launch-${runbook}` },
  ]);
  const done = (outcome: LaunchResult['outcome'], detail: string): LaunchResult => {
    upsertSearchAttributes([{ key: DrOutcome, value: outcome }]);
    publishStatusPage({
      runbook: `launch ${runbook}`,
      service,
      phase: 'starting',
      outcome: `${outcome}: ${detail}`,
      facts: [['Runbook', workflowId]],
      steps: [],
      problems: [],
      next: [`The runbook's own page: open \`${workflowId}\` (or \`drctl status ${workflowId}\`)`],
    });
    return { runbook, service, workflowId, outcome, detail };
  };
  try {
    const child = await startChild(RUNBOOKS[runbook], {
      workflowId,
      staticSummary: `${runbook} ${service}: launched by ${workflowInfo().workflowId}`.slice(0, 200),
      args: [input as Parameters<(typeof RUNBOOKS)[typeof runbook]>[0]],
      parentClosePolicy: ParentClosePolicy.ABANDON,
    });
    return done('started', `started ${workflowId} (run ${child.firstExecutionRunId})`);
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError)
      return done('skipped', `skipped: ${workflowId} is already running (one ${runbook} per service at a time)`);
    throw err;
  }
}
