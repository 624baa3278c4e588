/**
 * The live roles as a runbook step: who is writable now, read from the servers by discoverTopology (never the
 * inventory's role names). A split (two writable members) stops the run at once and tells people: nothing but a
 * human's fence may act on a service with two writers.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { type ServicePlan, ErrorType, type Topology } from '../contract';
import type { RunbookRun } from './runbook';
import type { RunbookActivities } from './activity-options';
import { notifyPeople } from './steps';

export async function readLiveTopology(run: RunbookRun, plan: ServicePlan, acts: RunbookActivities): Promise<Topology> {
  const service = plan.service.name;
  const topology = await run.step(
    'topology',
    () => acts.reads.discoverTopology({ service }),
    (t) => t.detail,
  );
  run.topology = topology;
  if (topology.state === 'split') await stopOnSplit(plan, acts, topology, run.runbook);
  return topology;
}

/** Notify people now, then fail the run with SplitBrain. */
export async function stopOnSplit(
  plan: ServicePlan,
  acts: RunbookActivities,
  topology: Topology,
  runbook: string,
): Promise<never> {
  const service = plan.service.name;
  await notifyPeople(
    plan,
    acts,
    `SPLIT BRAIN: ${service} has ${topology.writers.length} writable members (${topology.writers.join(', ')})`,
    `${topology.detail}.\n${runbook} of ${service} refused. Every runbook of ${service} stops until all writers ` +
      `but one are fenced: drctl resolve ${service} --keep <member> --reason "..." (approved; it shows what each ` +
      `writer holds that the other lacks)`,
    'split-brain',
  ).catch(() => undefined);
  throw ApplicationFailure.create({
    type: ErrorType.SplitBrain,
    message: `${service}: ${topology.detail}: ${runbook} refused`,
    nonRetryable: true,
    details: [{ writers: topology.writers }],
  });
}
