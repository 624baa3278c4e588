/**
 * monitor({ service }): one long-running detector per service.
 *
 *   every health.interval: check → count consecutive failures (one bad check is noise)
 *   → after health.failuresBeforeIncident: record the incident start (the first failed check)
 *     and start `failover-<service>` (it waits at its approval gate unless the inventory
 *     says autoFailover) → then start no other for health.cooldownAfterFailover
 *
 * Continues as new every few hundred checks so its history stays small.
 */
import { continueAsNew, patched, sleep } from '@temporalio/workflow';
import { monitorInput, parseInput, type MonitorInput, type MonitorState } from '../../contract';
import { planFor } from '../plan';
import { requireWorkflowId } from '../workflow-ids';
import { checkHealth } from './check';
import type { Monitor } from './context';
import { changeInProgress, declareIncident } from './incident';
import { answerQueries, publishPage } from './page';

/** Checks per run before continue-as-new (each check adds about a dozen events). */
const CHECKS_PER_RUN = 300;

export async function monitor(rawInput: MonitorInput): Promise<void> {
  const m = await begin(parseInput(monitorInput, rawInput));
  answerQueries(m);
  publishPage(m);
  for (let i = 0; i < CHECKS_PER_RUN; i++) {
    await checkAndAct(m);
    publishPage(m);
    await sleep(m.svc.health.interval * 1000);
  }
  await continueAsNew<typeof monitor>({ service: m.svc.name, cooldownUntil: m.state.cooldownUntil ?? undefined });
}

async function begin(input: MonitorInput): Promise<Monitor> {
  // One monitor per service, under the id its failovers trust as their parent (startedByMonitor).
  if (patched('monitor-own-id')) requireWorkflowId('monitor', input.service);
  const plan = await planFor(input.service);
  const state: MonitorState = {
    service: plan.service.name,
    consecutiveFailures: 0,
    firstFailedAt: null,
    lastHealthyAt: null,
    lastCheck: null,
    cooldownUntil: input.cooldownUntil ?? null,
    incidents: [],
  };
  return { plan, svc: plan.service, state, healthySince: null, lastPage: '', splitAlerted: false };
}

/**
 * One check, counted: after health.failuresBeforeIncident failures in a row start a failover, unless cooling down
 * from the last one, the service is split, or a topology change holds it.
 */
async function checkAndAct(m: Monitor): Promise<void> {
  const { state } = m;
  const now = Date.now();
  const result = await checkHealth(m);
  state.lastCheck = { at: new Date(now).toISOString(), ...result };
  if (result.ok) {
    if (state.consecutiveFailures || !m.healthySince) m.healthySince = state.lastCheck.at;
    state.consecutiveFailures = 0;
    state.firstFailedAt = null;
    state.lastHealthyAt = state.lastCheck.at;
    return;
  }
  state.consecutiveFailures++;
  state.firstFailedAt ??= state.lastCheck.at;
  const coolingDown = state.cooldownUntil !== null && now < Date.parse(state.cooldownUntil);
  if (state.consecutiveFailures < m.svc.health.failuresBeforeIncident || coolingDown || result.split) return;
  // A topology change in progress (a failback, a switchover drill, a re-clone) makes the service look down on
  // purpose: stand down, keep counting, no cooldown.
  if (await changeInProgress(m)) return;
  await declareIncident(m, result.detail);
  state.cooldownUntil = new Date(Date.now() + m.svc.health.cooldownAfterFailover * 1000).toISOString();
  state.consecutiveFailures = 0;
  state.firstFailedAt = null;
  m.healthySince = null;
}
