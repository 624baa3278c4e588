/** What the monitor shows: the `status` and `monitorState` queries, and its page in the Web UI. */
import { setCurrentDetails, setHandler } from '@temporalio/workflow';
import { monitorStateQuery, statusQuery, workflowIdFor } from '../../contract';
import { renderStatusPage } from '../page';
import type { Monitor } from './context';

export function answerQueries(m: Monitor): void {
  const { plan, svc, state } = m;
  setHandler(statusQuery, () => ({
    runbook: 'monitor',
    service: svc.name,
    phase: state.consecutiveFailures
      ? `unhealthy (${state.consecutiveFailures}/${svc.health.failuresBeforeIncident})`
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
}

/**
 * The run's page in the Web UI: rewritten when what it says changes (health turns, an incident, a cooldown), not on
 * every healthy check.
 */
export function publishPage(m: Monitor): void {
  const { svc, state, healthySince } = m;
  const { interval, failuresBeforeIncident, cooldownAfterFailover, httpUrl } = svc.health;
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
  if (text !== m.lastPage) setCurrentDetails(text);
  m.lastPage = text;
}
