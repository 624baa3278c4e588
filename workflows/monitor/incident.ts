/** After enough failed checks: stand down while a topology change holds the service, else start its failover. */
import { ParentClosePolicy, patched, startChild, workflowInfo } from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { workflowIdFor } from '../../contract';
import { failover } from '../failover';
import { SERVICE_LOCK_PATCH } from '../lock';
import { probe, type Monitor } from './context';

/** True when a run holds the service's topology lock (then no failover is started; noted once per holder). */
export async function changeInProgress(m: Monitor): Promise<boolean> {
  const { svc, state } = m;
  if (!patched(SERVICE_LOCK_PATCH)) return false;
  // Not readable: go on and start the failover; the lock itself still refuses a second change.
  const held = await probe.readServiceLock({ service: svc.name }).catch(() => null);
  if (!held) return false;
  const detail = `${held.holder} holds lock-${svc.name} (a topology change since ${held.since}): no failover started`;
  if (state.incidents.at(-1)?.detail !== detail) {
    state.incidents.push({
      detectedAt: new Date(Date.now()).toISOString(),
      incidentStartedAt: state.firstFailedAt!,
      failover: workflowIdFor('failover', svc.name),
      started: false,
      detail,
    });
  }
  return true;
}

/** Start `failover-<service>` with the incident's start (the first failed check); one already running stands. */
export async function declareIncident(m: Monitor, detail: string): Promise<void> {
  const { svc, state } = m;
  const { failuresBeforeIncident } = svc.health;
  const incidentStartedAt = state.firstFailedAt!;
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
          reason: `monitor: ${failuresBeforeIncident} failed health checks since ${incidentStartedAt}: ${detail}`.slice(
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
  state.incidents.push(incident);
}
