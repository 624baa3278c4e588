/** After cut-over: the application and people told, health and writes verified, RTO and RPO reported. */
import { workflowInfo } from '@temporalio/workflow';
import { DrOutcome } from '../../contract';
import { recordMeasured } from '../metrics';
import { notifyPeople, round1 } from '../steps';
import type { FailoverReport } from '../../contract';
import { reportOf, type Failover } from './context';

/** Tell the application (its webhook) and people, then verify health and a write: returns when it recovered. */
export async function notifyAndVerify(f: Failover, newPrimary: string | null): Promise<number> {
  const { run, plan, svc, input, acts } = f;
  const key = `${workflowInfo().workflowId}/${workflowInfo().runId}`;
  const webhook = svc.applicationWebhook;
  if (webhook && newPrimary) {
    const endpoint = plan.endpoints[newPrimary];
    await run.step(
      'notify-application',
      () =>
        // The URL (a secret: it carries a token) is resolved by the activity from the service's name.
        acts.notifications.callApplicationWebhook({
          service: svc.name,
          primary: { server: newPrimary, ...endpoint },
          idempotencyKey: `${key}/app`,
        }),
      (r) => `${newPrimary} posted to the application webhook: HTTP ${r.status}`,
    );
  } else run.skip('notify-application', webhook ? 'no new primary' : 'no application webhook in the inventory');
  await run.step(
    'notify-people',
    () =>
      notifyPeople(
        plan,
        acts,
        `${input.mode === 'drill' ? 'DRILL: ' : ''}${svc.name} failed over to DR`,
        `${svc.name}: ${input.reason}. New primary: ${newPrimary ?? 'DNS only'}.`,
        'failed-over',
      ),
    () => plan.notificationTargets.join(', ') || 'no targets',
  );
  const recoveredAt = await verifyHealth(f);
  const db = svc.database;
  if (newPrimary && db) {
    await run.step(
      'verify-writes',
      () => acts.reads.verifyWritable({ server: newPrimary, heartbeatTable: db.heartbeatTable }),
      (w) => `${w.server} accepted a write`,
    );
  }
  return recoveredAt;
}

/** The first healthy check on the DR side ends the RTO; without a health URL, now. */
async function verifyHealth({ run, plan, svc, acts }: Failover): Promise<number> {
  const url = svc.health.httpUrl;
  if (!url) {
    run.skip('verify-health', 'no health URL in the inventory');
    return Date.now();
  }
  const healthy = await run.step(
    'verify-health',
    () => acts.longWaits.waitUntilHealthy({ url, timeoutSeconds: Math.max(60, plan.targets.rtoSeconds) }),
    (h) => `${url}: HTTP ${h.status}`,
  );
  return healthy.at;
}

/** Measured RTO (and RPO, measured at promotion) against the targets: in the result, and to people. */
export async function report(f: Failover, recoveredAt: number, newPrimary: string | null): Promise<FailoverReport> {
  const { run, plan, svc, acts } = f;
  run.measured.rtoSeconds = round1((recoveredAt - f.incidentStartedAt) / 1000);
  if (run.measured.rtoSeconds > plan.targets.rtoSeconds) {
    run.notes.push(`RTO target breached: ${run.measured.rtoSeconds} s > ${plan.targets.rtoSeconds} s`);
  }
  f.clock.finished = true;
  run.phase = 'done';
  run.tag([{ key: DrOutcome, value: 'completed' }]);
  const result = reportOf(f, 'completed', { recoveredAt: new Date(recoveredAt).toISOString(), newPrimary });
  recordMeasured('failover', svc.name, result.measured);
  await notifyPeople(
    plan,
    acts,
    `${svc.name} failover report: RTO ${result.measured.rtoSeconds} s, RPO ${result.measured.rpoSeconds} s`,
    JSON.stringify({
      measured: result.measured,
      targets: result.targets,
      rtoMet: result.rtoMet,
      rpoMet: result.rpoMet,
    }),
    'report',
  );
  return result;
}
