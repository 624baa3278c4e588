/** What every readiness check reads and adds to, and how one check runs: timed, on the run's page, never thrown. */
import type { ReadinessCheck, ServicePlan, StepRecord, Topology } from '../../contract';
import type { activities } from '../activity-options';
import { publishStatusPage } from '../page';
import { reasonOf } from '../plan';

export interface Readiness {
  plan: ServicePlan;
  svc: ServicePlan['service'];
  /** Read-only checks on each side: a short retry budget, so an unreachable component is reported, not waited for. */
  primarySide: ReturnType<typeof activities>;
  drSide: ReturnType<typeof activities>;
  checks: ReadinessCheck[];
  /** The checks with their times, for the run's page in the Web UI. */
  steps: StepRecord[];
  /** The replica's heartbeat lag: the data a failover now would lose. */
  expectedRpoSeconds: number | null;
  backupAgeSeconds: number | null;
  /** The live roles, where the service has a database. */
  topology: Topology | undefined;
}

/** A check that ran and found a problem (as opposed to one that could not run). */
export class CheckFailed extends Error {}

/** The run's page, rewritten as each check starts and ends. */
export function publishPage(r: Readiness, outcome: string | null = null): void {
  const { plan, svc, checks, expectedRpoSeconds } = r;
  publishStatusPage({
    runbook: 'readiness',
    service: svc.name,
    phase: `checking (${checks.length} done)`,
    outcome,
    facts: [
      ['Tier', `${svc.tier}: RTO ${plan.targets.rtoSeconds} s, RPO ${plan.targets.rpoSeconds} s`],
      ...(expectedRpoSeconds === null ? [] : [['Data loss if it failed over now', `${expectedRpoSeconds} s`]]),
    ] as [string, string][],
    steps: r.steps,
    problems: checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`),
    next: [
      'Each failing check names what to fix; the run changes nothing.',
      `The service's runbooks and this report: \`drctl status ${svc.name}\`; ` +
        `again now: \`drctl readiness ${svc.name}\``,
    ],
  });
}

/** Run one check: what `run` returns is its detail; what it throws, the reason it failed. */
export async function check(r: Readiness, name: string, run: () => Promise<string>): Promise<void> {
  const step: StepRecord = { name, state: 'running', startedAt: new Date().toISOString(), attempts: 1 };
  r.steps.push(step);
  publishPage(r);
  try {
    r.checks.push({ name, ok: true, detail: await run() });
  } catch (err) {
    r.checks.push({ name, ok: false, detail: reasonOf(err) });
  }
  const done = r.checks.at(-1)!;
  Object.assign(step, {
    state: done.ok ? 'succeeded' : 'failed',
    detail: done.detail,
    endedAt: new Date().toISOString(),
  });
  publishPage(r);
}

export const hours = (s: number) =>
  s >= 3600 ? `${Math.round(s / 360) / 10} h` : s >= 60 ? `${Math.round(s / 60)} min` : `${s} s`;
