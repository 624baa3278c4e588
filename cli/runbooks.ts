/**
 * The runbooks drctl starts, one entry each: the workflow type (the operator contract), the workflow id rule
 * (`workflowIdFor`, the same rule the workflows enforce) and the input schema the workflow parses. Every command
 * that starts a workflow goes through here, so an input the runbook would refuse is refused before Temporal is
 * asked, and a run's id is never spelled twice.
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { z } from 'zod';
import {
  drillInput,
  failbackInput,
  failoverInput,
  nightlyBackupInput,
  readinessInput,
  resolveSplitInput,
  restoreTestInput,
  serviceRolesInput,
  workflowIdFor,
} from '../contract';
import { OperatorError, stamp, type DrctlContext } from './context';
import { runMetadata } from './run-metadata';

interface Runbook<S extends z.ZodType> {
  /** The workflow type. */
  type: string;
  input: S;
  /** The id a run gets: `<runbook>-<service>` where one per service runs at a time, else with its start time. */
  workflowId(input: z.input<S>): string;
}

const runbook = <S extends z.ZodType>(r: Runbook<S>) => r;

export const RUNBOOKS = {
  failover: runbook({
    type: 'failover',
    input: failoverInput,
    workflowId: (i) => workflowIdFor('failover', i.service),
  }),
  failback: runbook({
    type: 'failback',
    input: failbackInput,
    workflowId: (i) => workflowIdFor('failback', i.service),
  }),
  drill: runbook({ type: 'drDrill', input: drillInput, workflowId: (i) => workflowIdFor('drill', i.service) }),
  resolve: runbook({
    type: 'resolveSplit',
    input: resolveSplitInput,
    workflowId: (i) => workflowIdFor('resolve', i.service),
  }),
  backup: runbook({
    type: 'nightlyBackup',
    input: nightlyBackupInput,
    workflowId: () => `nightly-backup-manual-${stamp()}`,
  }),
  'restore-test': runbook({
    type: 'restoreTest',
    input: restoreTestInput,
    workflowId: (i) => `${workflowIdFor('restore-test', i.service)}-${stamp()}`,
  }),
  readiness: runbook({
    type: 'readiness',
    input: readinessInput,
    workflowId: (i) => `${workflowIdFor('readiness', i.service)}-${stamp()}`,
  }),
  // The live roles for `drctl status <service>`: a short read, one per call.
  roles: runbook({
    type: 'serviceRoles',
    input: serviceRolesInput,
    workflowId: (i) => `${workflowIdFor('roles', i.service)}-${stamp()}-${Math.random().toString(36).slice(2, 6)}`,
  }),
};

export type RunbookName = keyof typeof RUNBOOKS;
export type RunbookInput<N extends RunbookName> = z.input<(typeof RUNBOOKS)[N]['input']>;

/** The workflow type, id and args of a run of `name`; an input its runbook would refuse is an OperatorError. */
export function runOf<N extends RunbookName>(name: N, input: RunbookInput<N>) {
  const entry: Runbook<z.ZodType> = RUNBOOKS[name];
  const parsed = entry.input.safeParse(input);
  if (!parsed.success)
    throw new OperatorError(
      `${name}: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ')}`,
    );
  // The input as given, not as parsed: the workflow applies the defaults, and its history shows what was sent.
  return { type: entry.type, workflowId: entry.workflowId(input), args: [input] };
}

/** Start a runbook on the workers' queue and say how to follow it; with `wait`, print its result. */
export async function startRunbook<N extends RunbookName>(
  ctx: DrctlContext,
  name: N,
  input: RunbookInput<N>,
  wait: boolean,
): Promise<void> {
  const { type, workflowId, args } = runOf(name, input);
  const c = await ctx.temporal();
  try {
    const service = (input as { service?: string }).service;
    const svc = ctx.inventory().services.find((x) => x.name === service);
    const handle = await c.workflow.start(type, {
      taskQueue: ctx.queue(),
      workflowId,
      args,
      ...runMetadata(name, input, svc),
    });
    ctx.print(`started ${name} ${workflowId} (run ${handle.firstExecutionRunId})`);
    ctx.print(`  follow:  drctl status ${workflowId} --watch`);
    if (!wait) return;
    ctx.json(await handle.result());
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError)
      throw new OperatorError(
        `${workflowId} is already running: one ${name} per service at a time (drctl status ${workflowId})`,
      );
    throw err;
  }
}
