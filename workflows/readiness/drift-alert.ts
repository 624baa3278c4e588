/** A scheduled run's drift: its failing checks compared with the schedule's previous run, people told once. */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { workflowInfo } from '@temporalio/workflow';
import type { ReadinessCheck, ReadinessDrift, ServicePlan } from '../../contract';
import { activities, readinessChecks, runbookActivities } from '../activity-options';
import { notifyPeople } from '../steps';

/** Set by Temporal on every run a schedule starts. */
const ScheduledById = defineSearchAttributeKey('TemporalScheduledById', SearchAttributeType.KEYWORD);

/**
 * Compare with the schedule's previous completed run; notify once per change. Outside a schedule
 * there is no previous run: every failing check counts as new.
 */
export async function alertOnDrift(plan: ServicePlan, checks: ReadinessCheck[]): Promise<ReadinessDrift> {
  const { previousScheduledReadiness } = activities(readinessChecks);
  const info = workflowInfo();
  const scheduleId = info.typedSearchAttributes.get(ScheduledById);
  const previous = scheduleId ? await previousScheduledReadiness({ scheduleId, workflowId: info.workflowId }) : null;
  const before = previous?.failing ?? {};
  const failing = checks.filter((c) => !c.ok);
  const newlyFailing = failing.filter((c) => !(c.name in before));
  const recovered = Object.keys(before).filter((name) => checks.some((c) => c.name === name && c.ok));
  const drift: ReadinessDrift = {
    previous: previous ? previous.workflowId : null,
    newlyFailing: newlyFailing.map((c) => c.name),
    recovered,
    notified: false,
  };
  if (newlyFailing.length === 0 && recovered.length === 0) return drift;
  const svc = plan.service.name;
  const subject = [
    newlyFailing.length ? `${svc} readiness drift: ${drift.newlyFailing.join(', ')} failing` : '',
    recovered.length ? `${svc} readiness recovered: ${recovered.join(', ')}` : '',
  ]
    .filter(Boolean)
    .join('; ');
  const message = [
    ...newlyFailing.map((c) => `FAILING ${c.name}: ${c.detail}`),
    ...recovered.map((name) => `RECOVERED ${name} (was: ${before[name]})`),
    `still failing: ${
      failing
        .filter((c) => c.name in before)
        .map((c) => c.name)
        .join(', ') || 'none'
    }`,
    `compared with ${previous ? `${previous.workflowId} (closed ${previous.closedAt})` : 'no earlier scheduled run'}`,
    `latest readiness: drctl status ${svc}`,
  ].join('\n');
  await notifyPeople(plan, runbookActivities(plan), `[drbook] ${subject}`, message, 'readiness-drift');
  drift.notified = true;
  return drift;
}
