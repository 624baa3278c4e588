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
import {
  ActivityFailure,
  ApplicationFailure,
  continueAsNew,
  ParentClosePolicy,
  patched,
  setCurrentDetails,
  setHandler,
  sleep,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  ErrorType,
  monitorInput,
  parseInput,
  type MonitorInput,
  monitorStateQuery,
  statusQuery,
  type MonitorState,
  workflowIdFor,
} from '../contract';
import { failover } from './failover';
import { SERVICE_LOCK_PATCH } from './lock';
import { renderStatusPage } from './page';
import { planFor, reasonOf } from './plan';
import { requireWorkflowId } from './workflow-ids';
import { activities, healthProbes, runbookActivities } from './activity-options';
import { notifyPeople } from './steps';

/** Checks per run before continue-as-new (each check adds about a dozen events). */
const CHECKS_PER_RUN = 300;

// One probe per check: a retry would hide exactly the failure being counted.
const probe = activities(healthProbes);

export async function monitor(rawInput: MonitorInput): Promise<void> {
  const input = parseInput(monitorInput, rawInput);
  // One monitor per service, under the id its failovers trust as their parent (startedByMonitor).
  if (patched('monitor-own-id')) requireWorkflowId('monitor', input.service);
  const plan = await planFor(input.service);
  const svc = plan.service;
  const { interval, failuresBeforeIncident, cooldownAfterFailover, httpUrl } = svc.health;
  const state: MonitorState = {
    service: svc.name,
    consecutiveFailures: 0,
    firstFailedAt: null,
    lastHealthyAt: null,
    lastCheck: null,
    cooldownUntil: input.cooldownUntil ?? null,
    incidents: [],
  };
  setHandler(statusQuery, () => ({
    runbook: 'monitor',
    service: svc.name,
    phase: state.consecutiveFailures
      ? `unhealthy (${state.consecutiveFailures}/${failuresBeforeIncident})`
      : 'watching',
    steps: [],
    pendingApproval: null,
    measured: { rtoSeconds: null, rpoSeconds: null },
    targets: plan.targets,
    rtoClock: { startedAt: state.firstFailedAt ?? '', usedSeconds: 0, leftSeconds: plan.targets.rtoSeconds },
    approvals: [],
    rejectedApprovals: [],
    aborted: null,
    notes: state.incidents.map(
      (i) => `${i.detectedAt}: ${i.started ? 'started' : 'did not start'} ${i.failover} (${i.detail})`,
    ),
  }));
  setHandler(monitorStateQuery, () => ({ ...state, incidents: [...state.incidents] }));

  // The run's page in the Web UI: rewritten when what it says changes (health turns, an incident, a cooldown),
  // not on every healthy check.
  let healthySince: string | null = null;
  let lastPage = '';
  const publishPage = () => {
    const failover = workflowIdFor('failover', svc.name);
    const last = state.lastCheck;
    const text = renderStatusPage({
      runbook: 'monitor',
      service: svc.name,
      phase: state.consecutiveFailures
        ? `UNHEALTHY since ${state.firstFailedAt} (${state.consecutiveFailures}/${failuresBeforeIncident} checks)`
        : healthySince
          ? `healthy since ${healthySince}`
          : 'starting',
      outcome: null,
      facts: [
        ['Watching', httpUrl ? httpUrl : svc.database ? `the writable member of ${svc.name}'s database` : 'nothing'],
        [
          'Rule',
          `every ${interval} s; after ${failuresBeforeIncident} failed checks in a row start \`${failover}\` ` +
            `(${svc.autoFailover ? 'unattended where the fence allows' : 'it waits for approval'}); ` +
            `then none for ${cooldownAfterFailover} s`,
        ],
        ...(last && !last.ok ? [['Last failed check', `${last.at}: ${last.detail}`] as [string, string]] : []),
        ...(state.cooldownUntil ? [['Cooldown until', state.cooldownUntil] as [string, string]] : []),
      ],
      steps: state.incidents.map((i) => ({
        name: `incident → ${i.failover}`,
        state: i.started ? 'succeeded' : 'skipped',
        startedAt: i.detectedAt,
        attempts: 1,
        detail: `${i.started ? 'failover started' : 'no failover started'}: ${i.detail}`,
      })),
      problems: [],
      next: [
        `A failover it starts waits at its gate on its own page: \`${failover}\` (\`drctl status ${failover}\`)`,
        `The service's runbooks and readiness: \`drctl status ${svc.name}\``,
      ],
    });
    if (text !== lastPage) setCurrentDetails(text);
    lastPage = text;
  };
  publishPage();

  let splitAlerted = false;
  /** Two writers: people are told at once (once per run); no failover is started into a split. */
  const alertSplitOnce = async (detail: string) => {
    if (splitAlerted) return;
    splitAlerted = true;
    await notifyPeople(
      plan,
      runbookActivities(plan),
      `SPLIT BRAIN: ${svc.name}`,
      `${detail}\nThe monitor starts no failover while two members are writable.`,
      'split-brain',
    ).catch(() => undefined);
  };

  const check = async (): Promise<{ ok: boolean; detail: string; split?: boolean }> => {
    try {
      if (httpUrl) {
        const r = await probe.checkHttpHealth({ url: httpUrl });
        return { ok: r.ok, detail: `${httpUrl}: ${r.status ?? 'no answer'} ${r.detail.slice(0, 120)}` };
      }
      if (svc.database && patched('monitor-live-writable')) {
        // The member writable now, read from the servers: after a failover that is the DR side, not the inventory's primary.
        const live = await probe.probeWritableMember({ service: svc.name });
        if (live.state === 'split') await alertSplitOnce(live.detail);
        return { ok: live.ok, detail: live.detail, split: live.state === 'split' };
      }
      if (svc.database) {
        const info = await probe.pingDatabase({ server: svc.database.primary });
        return { ok: !info.readOnly, detail: `${info.server}: ${info.readOnly ? 'read-only' : 'writable'}` };
      }
      throw ApplicationFailure.create({
        type: ErrorType.NotConfigured,
        message: `${svc.name} has no health URL and no database to watch`,
        nonRetryable: true,
      });
    } catch (err) {
      if (err instanceof ActivityFailure) return { ok: false, detail: reasonOf(err) };
      throw err;
    }
  };

  for (let i = 0; i < CHECKS_PER_RUN; i++) {
    const now = Date.now();
    const result = await check();
    state.lastCheck = { at: new Date(now).toISOString(), ...result };
    if (result.ok) {
      if (state.consecutiveFailures || !healthySince) healthySince = state.lastCheck.at;
      state.consecutiveFailures = 0;
      state.firstFailedAt = null;
      state.lastHealthyAt = state.lastCheck.at;
    } else {
      state.consecutiveFailures++;
      state.firstFailedAt ??= state.lastCheck.at;
      const coolingDown = state.cooldownUntil !== null && now < Date.parse(state.cooldownUntil);
      if (state.consecutiveFailures >= failuresBeforeIncident && !coolingDown && !result.split) {
        // A topology change in progress (a failback, a switchover drill, a re-clone) makes the
        // service look down on purpose: stand down, keep counting, no cooldown.
        if (await changeInProgress(state)) {
          publishPage();
          await sleep(interval * 1000);
          continue;
        }
        await declareIncident(state, result.detail);
        state.cooldownUntil = new Date(Date.now() + cooldownAfterFailover * 1000).toISOString();
        state.consecutiveFailures = 0;
        state.firstFailedAt = null;
        healthySince = null;
      }
    }
    publishPage();
    await sleep(interval * 1000);
  }
  await continueAsNew<typeof monitor>({ service: svc.name, cooldownUntil: state.cooldownUntil ?? undefined });

  /** True when a run holds the service's topology lock (then no failover is started; noted once per holder). */
  async function changeInProgress(s: MonitorState): Promise<boolean> {
    if (!patched(SERVICE_LOCK_PATCH)) return false;
    // Not readable: go on and start the failover; the lock itself still refuses a second change.
    const held = await probe.readServiceLock({ service: svc.name }).catch(() => null);
    if (!held) return false;
    const detail = `${held.holder} holds lock-${svc.name} (a topology change since ${held.since}): no failover started`;
    if (s.incidents.at(-1)?.detail !== detail) {
      s.incidents.push({
        detectedAt: new Date(Date.now()).toISOString(),
        incidentStartedAt: s.firstFailedAt!,
        failover: workflowIdFor('failover', svc.name),
        started: false,
        detail,
      });
    }
    return true;
  }

  async function declareIncident(s: MonitorState, detail: string): Promise<void> {
    const incidentStartedAt = s.firstFailedAt!;
    const workflowId = workflowIdFor('failover', svc.name);
    const incident = {
      detectedAt: new Date(Date.now()).toISOString(),
      incidentStartedAt,
      failover: workflowId,
      started: false,
      detail,
    };
    try {
      // Abandoned, not owned: the failover must outlive this monitor's continue-as-new.
      await startChild(failover, {
        workflowId,
        taskQueue: workflowInfo().taskQueue,
        staticSummary: `failover ${svc.name} (real): started by monitor-${svc.name} after failed health checks`,
        parentClosePolicy: ParentClosePolicy.ABANDON,
        args: [
          {
            service: svc.name,
            mode: 'real',
            reason:
              `monitor: ${failuresBeforeIncident} failed health checks since ${incidentStartedAt}: ${detail}`.slice(
                0,
                500,
              ),
            incidentStartedAt,
            trigger: 'monitor',
          },
        ],
      });
      incident.started = true;
    } catch (err) {
      // One failover per service: if an operator already started one, that one stands.
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      incident.detail = `a failover of ${svc.name} is already running; not starting another`;
    }
    s.incidents.push(incident);
  }
}
