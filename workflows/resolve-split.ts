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
  DrMode,
  DrOutcome,
  DrRunbook,
  DrService,
  type ResolveSplitReport,
} from '../contract';
import { publishStatusPage } from './page';
import { planFor, productionApprovals } from './plan';
import { RunbookRun } from './runbook';
import { requireWorkflowId } from './workflow-ids';
import { runbookActivities } from './activity-options';
import { approvalTimeoutMs, notifyPeople } from './steps';

export async function resolveSplit(rawInput: ResolveSplitInput): Promise<ResolveSplitReport> {
  const input = parseInput(resolveSplitInput, rawInput);
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
  const acts = runbookActivities(plan);
  const heartbeatEvent = svc.database?.heartbeatEvent ?? '';

  const split = await run.step(
    'topology',
    () => acts.reads.discoverTopology({ service: svc.name }),
    (t) => t.detail,
  );
  run.topology = split;
  requireSplitWithKeep(split, input.keep);
  const losers = split.writers.filter((w) => w !== input.keep);

  const divergence: Record<string, number> = {};
  for (const loser of losers) {
    const d = await run.step(
      `compare-${loser}`,
      () => acts.reads.countErrantTransactions({ server: loser, source: input.keep }),
      (r) => `${loser} holds ${r.errant} transaction(s) ${input.keep} lacks`,
    );
    divergence[loser] = d.errant;
  }
  const held = losers.map((l) => `${l} (${divergence[l]} transaction(s) ${input.keep} lacks)`).join(', ');

  // A split is production whatever anyone calls it: the production approver rule (productionApprovals).
  await run.gate('fence-writers', {
    needed: productionApprovals(svc),
    timeoutMs: approvalTimeoutMs(plan.targets.rtoSeconds, Date.now()),
    question:
      `${svc.name} is SPLIT (${split.writers.join(' and ')} writable). Keep ${input.keep} writable and fence ` +
      `${held}? Their extra transactions stay on them, unreplicated, for reconciliation. Reason: ${input.reason}`,
  });
  run.startChanging();

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

  // The fence is trusted only once read back: exactly one writer, the one the approvers chose.
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

  const discarded = losers.filter((l) => divergence[l] > 0);
  if (discarded.length)
    run.notes.push(
      `${discarded.map((l) => `${l} holds ${divergence[l]}`).join('; ')} transaction(s) ${input.keep} lacks: ` +
        'reconcile them by hand, or re-clone with failback',
    );
  // The fence holds whatever the notification does: a failed notification is a note, not a failed resolve.
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
      ...topology.members.map((m): [string, string] => [
        m.server,
        m.reachable
          ? `read_only=${m.readOnly ? 'ON' : 'OFF'}, replication ${m.replication?.configured ? `from ${m.replication.source ?? '?'}` : 'none'}, GTID ${m.gtidPosition}`
          : `unreachable: ${m.error}`,
      ]),
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
