/** One health check of the service: its HTTP health URL, else the live writable member of its database. */
import { ActivityFailure, ApplicationFailure, patched } from '@temporalio/workflow';
import { ErrorType } from '../../contract';
import { runbookActivities } from '../activity-options';
import { reasonOf } from '../plan';
import { notifyPeople } from '../steps';
import { probe, type CheckResult, type Monitor } from './context';

/** A failed probe is a failed check (counted), not a failed monitor. */
export async function checkHealth(m: Monitor): Promise<CheckResult> {
  const { svc } = m;
  const { httpUrl } = svc.health;
  try {
    if (httpUrl) {
      const r = await probe.checkHttpHealth({ url: httpUrl });
      return { ok: r.ok, detail: `${httpUrl}: ${r.status ?? 'no answer'} ${r.detail.slice(0, 120)}` };
    }
    if (svc.database && patched('monitor-live-writable')) {
      // The member writable now, read from the servers: after a failover that is the DR side, not the inventory's
      // primary.
      const live = await probe.probeWritableMember({ service: svc.name });
      if (live.state === 'split') await alertSplitOnce(m, live.detail);
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
}

/** Two writers: people are told at once (once per run); no failover is started into a split. */
async function alertSplitOnce(m: Monitor, detail: string): Promise<void> {
  if (m.splitAlerted) return;
  m.splitAlerted = true;
  await notifyPeople(
    m.plan,
    runbookActivities(m.plan),
    `SPLIT BRAIN: ${m.svc.name}`,
    `${detail}\nThe monitor starts no failover while two members are writable.`,
    'split-brain',
  ).catch(() => undefined);
}
