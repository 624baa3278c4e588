/**
 * A switchover drill: a planned failover to DR and back, with the runbooks operators would use (children
 * `failover-<service>` and `failback-<service>`, mode drill), under the service's topology lock.
 */
import { executeChild, ParentClosePolicy } from '@temporalio/workflow';
import { workflowIdFor } from '../../contract';
import { failback } from '../failback';
import { failover } from '../failover';
import { holdServiceLockIfPatched } from '../lock';
import { round1 } from '../steps';
import { absorb, runChild } from './children';
import type { Drill } from './context';

export async function switchover(d: Drill): Promise<void> {
  // The drill holds the service's topology lock across both children (they run under it):
  // nothing else (the monitor's failover included) changes the service between them.
  const lock = await holdServiceLockIfPatched(d.run, d.plan, d.acts.quick);
  try {
    await failOver(d);
    await failBack(d);
  } finally {
    await lock?.release();
  }
}

/** The failover child: its RTO and RPO are the drill's; a planned switchover must lose nothing. */
async function failOver(d: Drill): Promise<void> {
  const { run, svc, drillId, input, findings } = d;
  const fo = await runChild(d, 'failover', () =>
    executeChild(failover, {
      args: [{ service: svc.name, mode: 'drill', reason: `drill ${drillId}: ${input.reason}` }],
      workflowId: workflowIdFor('failover', svc.name),
      staticSummary: `failover ${svc.name} (drill): drill ${drillId}: ${input.reason}`.slice(0, 200),
      // A drill that is terminated must not take a half-done failover with it.
      parentClosePolicy: ParentClosePolicy.ABANDON,
    }),
  );
  absorb(d, 'failover', fo);
  run.measured.rtoSeconds = fo.measured.rtoSeconds;
  run.measured.rpoSeconds = fo.measured.rpoSeconds;
  if (fo.measured.rpoSeconds !== null && fo.measured.rpoSeconds > 0)
    findings.push({
      severity: 'critical',
      text: `a planned switchover lost ${fo.measured.rpoSeconds} s of data (must be 0)`,
    });
  const gate = fo.steps.find((s) => s.name.startsWith('approve-'));
  if (gate?.startedAt && gate.endedAt) {
    const waited = round1((Date.parse(gate.endedAt) - Date.parse(gate.startedAt)) / 1000);
    findings.push({
      severity: 'info',
      text: `failover waited ${waited} s for approval (${gate.detail ?? ''}), counted in its RTO`,
    });
  }
}

/** The failback child: its measures are a finding, the drill's RTO and RPO stay the failover's. */
async function failBack(d: Drill): Promise<void> {
  const { svc, drillId } = d;
  const fb = await runChild(d, 'failback', () =>
    executeChild(failback, {
      args: [{ service: svc.name, mode: 'drill' }],
      workflowId: workflowIdFor('failback', svc.name),
      staticSummary: `failback ${svc.name} (drill): drill ${drillId}`,
      parentClosePolicy: ParentClosePolicy.ABANDON,
    }),
  );
  absorb(d, 'failback', fb);
  d.findings.push({
    severity: 'info',
    text: `failback: RTO ${fb.measured.rtoSeconds ?? '—'} s, RPO ${fb.measured.rpoSeconds ?? '—'} s (${fb.outcome})`,
  });
}
