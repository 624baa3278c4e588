/**
 * resolveSplit({ service, keep, reason }): a human ends a split brain.
 *
 *   read the live roles (must be split) → what each other writer holds that `keep` lacks
 *   → approval by the production approvers → fence every writer but `keep` → read again: one writer
 *   → notify
 *
 * The one runbook a split service still runs (every other one stops with SplitBrain). It never
 * discards data by itself: the fenced members keep their extra transactions, named in the report and
 * the notification, for the DBA to reconcile or to discard with a re-clone (failback does that).
 *
 * serviceRoles({ service }): the live roles, read now (drctl status <service>).
 */
import { ApplicationFailure } from '@temporalio/workflow';
import {
  ErrorType,
  parseInput,
  resolveSplitInput,
  serviceRolesInput,
  type ResolveSplitInput,
  type ServiceRolesInput,
  type Topology,
  type TopologyMember,
  DrMode,
  DrOutcome,
  DrRunbook,
  DrService,
  type ResolveSplitReport,
  type ServicePlan,
} from '../contract';
import { publishStatusPage } from './page';
import { planFor, productionApprovals } from './plan';
import { RunbookRun } from './runbook';
import { requireWorkflowId } from './workflow-ids';
import { runbookActivities, type RunbookActivities } from './activity-options';
import { approvalTimeoutMs, notifyPeople } from './steps';

/** What every step of a resolve reads: its input, the service's plan, the run's record, its activities. */
interface Resolve {
  input: ResolveSplitInput;
  plan: ServicePlan;
  svc: ServicePlan['service'];
  run: RunbookRun;
  acts: RunbookActivities;
}

export async function resolveSplit(rawInput: ResolveSplitInput): Promise<ResolveSplitReport> {
  const r = await begin(parseInput(resolveSplitInput, rawInput));
  const split = await readSplit(r);
  const losers = split.writers.filter((w) => w !== r.input.keep);
  const divergence = await compareWithKeep(r, losers);
  await approveFence(r, split, losers, divergence);
  await fenceWriters(r, losers);
  const after = await verifySingleWriter(r, losers);
  await notifyResolved(r, after, losers, divergence);
  return report(r, after, losers, divergence);
}

async function begin(input: ResolveSplitInput): Promise<Resolve> {
  requireWorkflowId('resolve', input.service);
  const plan = await planFor(input.service);
  const svc = plan.service;
  const run = new RunbookRun('resolve', svc.name, plan.targets, plan.approvers, Date.now());
  run.requireSignedApprovals(plan);
  run.tag([
    { key: DrService, value: svc.name },
    { key: DrRunbook, value: 'resolve' },
    { key: DrMode, value: 'real' },
  ]);
  return { input, plan, svc, run, acts: runbookActivities(plan) };
}

/** The live roles, read: they must be split, with `keep` one of the writers. */
async function readSplit({ run, acts, svc, input }: Resolve): Promise<Topology> {
  const split = await run.step(
    'topology',
    () => acts.reads.discoverTopology({ service: svc.name }),
    (t) => t.detail,
  );
  run.topology = split;
  requireSplitWithKeep(split, input.keep);
  return split;
}

/** What each other writer holds that `keep` lacks: the approvers see it, the report names it. */
async function compareWithKeep({ run, acts, input }: Resolve, losers: string[]): Promise<Record<string, number>> {
  const divergence: Record<string, number> = {};
  for (const loser of losers) {
    const d = await run.step(
      `compare-${loser}`,
      () => acts.reads.countErrantTransactions({ server: loser, source: input.keep }),
      (c) => `${loser} holds ${c.errant} transaction(s) ${input.keep} lacks`,
    );
    divergence[loser] = d.errant;
  }
  return divergence;
}

/** A split is production whatever anyone calls it: the production approver rule (productionApprovals). */
async function approveFence(
  { run, plan, svc, input }: Resolve,
  split: Topology,
  losers: string[],
  divergence: Record<string, number>,
): Promise<void> {
  const held = losers.map((l) => `${l} (${divergence[l]} transaction(s) ${input.keep} lacks)`).join(', ');
  await run.gate('fence-writers', {
    needed: productionApprovals(svc),
    timeoutMs: approvalTimeoutMs(plan.targets.rtoSeconds, Date.now()),
    question:
      `${svc.name} is SPLIT (${split.writers.join(' and ')} writable). Keep ${input.keep} writable and fence ` +
      `${held}? Their extra transactions stay on them, unreplicated, for reconciliation. Reason: ${input.reason}`,
  });
  run.startChanging();
}

async function fenceWriters({ run, acts, svc }: Resolve, losers: string[]): Promise<void> {
  const heartbeatEvent = svc.database?.heartbeatEvent ?? '';
  for (const loser of losers) {
    await run.step(
      `fence-${loser}`,
      async () => {
        const f = await acts.fencing.fencePrimary({ server: loser, heartbeatEvent });
        if (!f.fenced) throw ApplicationFailure.create({ type: ErrorType.FenceFailed, message: f.detail });
        return f;
      },
      (f) => f.detail,
    );
  }
}

/** The fence is trusted only once read back: exactly one writer, the one the approvers chose. */
async function verifySingleWriter({ run, acts, svc, input }: Resolve, losers: string[]): Promise<Topology> {
  const after = await run.step(
    'verify-single-writer',
    async () => {
      const t = await acts.reads.discoverTopology({ service: svc.name });
      if (t.writers.length !== 1 || t.writers[0] !== input.keep)
        throw ApplicationFailure.create({
          type: ErrorType.SplitBrain,
          message: `after fencing ${losers.join(', ')}: ${t.detail}`,
          nonRetryable: true,
        });
      return t;
    },
    (t) => t.detail,
  );
  run.topology = after;
  return after;
}

/** The fence holds whatever the notification does: a failed notification is a note, not a failed resolve. */
async function notifyResolved(
  { run, plan, acts, svc, input }: Resolve,
  after: Topology,
  losers: string[],
  divergence: Record<string, number>,
): Promise<void> {
  const discarded = losers.filter((l) => divergence[l] > 0);
  if (discarded.length)
    run.notes.push(
      `${discarded.map((l) => `${l} holds ${divergence[l]}`).join('; ')} transaction(s) ${input.keep} lacks: ` +
        'reconcile them by hand, or re-clone with failback',
    );
  await notifyPeople(
    plan,
    acts,
    `split brain of ${svc.name} resolved: ${input.keep} is the one writer`,
    [
      `${after.detail}.`,
      `Fenced: ${losers.join(', ')} (approved by ${run.approvals.map((a) => a.approver).join(' + ')}).`,
      ...run.notes,
    ].join('\n'),
    'resolved',
  ).catch(() => run.notes.push('the resolved notification could not be sent'));
}

/** Done: the one writer kept, the ones fenced and what they hold that it lacks. */
function report(
  { run, svc, input }: Resolve,
  after: Topology,
  losers: string[],
  divergence: Record<string, number>,
): ResolveSplitReport {
  run.phase = 'done';
  run.tag([{ key: DrOutcome, value: 'resolved' }]);
  return {
    runbook: 'resolve',
    service: svc.name,
    kept: input.keep,
    fenced: losers,
    divergence,
    topology: after,
    steps: run.steps,
    approvals: run.approvals,
    notes: run.notes,
  };
}

/** Only a split is resolved, and only in favour of one of its writers (read, not assumed). */
function requireSplitWithKeep(t: Topology, keep: string): void {
  if (t.state !== 'split')
    throw ApplicationFailure.create({
      type: ErrorType.NotSplit,
      message: `${t.service} is not split (${t.detail}): nothing to resolve`,
      nonRetryable: true,
    });
  if (!t.writers.includes(keep))
    throw ApplicationFailure.create({
      type: ErrorType.InvalidInput,
      message: `keep: ${keep} is not one of ${t.service}'s writable members (${t.writers.join(', ')})`,
      nonRetryable: true,
    });
}

/** The live roles of one service, read from its servers now. */
export async function serviceRoles(rawInput: ServiceRolesInput): Promise<Topology> {
  const input = parseInput(serviceRolesInput, rawInput);
  const plan = await planFor(input.service);
  const topology = await runbookActivities(plan).reads.discoverTopology({ service: plan.service.name });
  publishStatusPage({
    runbook: 'serviceRoles',
    service: plan.service.name,
    phase: 'reading',
    outcome: `${topology.state}: ${topology.writers.length ? topology.writers.join(', ') : 'no'} writable`,
    facts: [
      ['Live roles', topology.detail],
      ['Read at', topology.readAt],
      ...topology.members.map((m): [string, string] => [m.server, memberFact(m)]),
    ],
    steps: [],
    problems:
      topology.state === 'split'
        ? [`two writers: ${topology.writers.join(', ')}: \`drctl resolve ${plan.service.name}\``]
        : topology.state === 'unknown' || topology.state === 'degraded'
          ? [topology.detail]
          : [],
    next: [`\`drctl status ${plan.service.name}\``],
  });
  return topology;
}

/** One member's role evidence, as the roles page lists it. */
function memberFact(m: TopologyMember): string {
  if (!m.reachable) return `unreachable: ${m.error}`;
  const from = m.replication?.configured ? `from ${m.replication.source ?? '?'}` : 'none';
  return `read_only=${m.readOnly ? 'ON' : 'OFF'}, replication ${from}, GTID ${m.gtidPosition}`;
}
