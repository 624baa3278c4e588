/**
 * serviceLock({ service, holder? }): one topology change per service at a time.
 *
 * Failover, failback (with its re-clone) and a switchover drill hold it while they run (a cold
 * failover's restore into the DR server is part of its failover). It is a workflow with the
 * fixed id `lock-<service>`, started as a CHILD of the runbook that holds it: Temporal refuses a
 * second workflow with a running id, so a second change is refused at once, naming the holder
 * (it does not queue: a topology change decided an hour ago may be wrong by the time it would run).
 *
 * Released on every exit path, by Temporal itself where the holder can no longer act:
 *   - the holder ends (completed, failed, aborted): it signals `release` in a finally;
 *   - the holder is cancelled: the cancellation reaches its children, this one included;
 *   - the holder is terminated or times out: the parent close policy TERMINATE ends the lock
 *     with it (the server does this; no worker is needed);
 *   - a worker is lost: nothing is released, because the holder still runs; a new worker
 *     continues both.
 * A holder's own children (a drill's failover and failback) run under its lock (`holdServiceLock`).
 * Started by hand (no parent), it freezes the service's topology until someone signals `release`.
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  ParentClosePolicy,
  patched,
  setHandler,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  type ServicePlan,
  ErrorType,
  parseInput,
  serviceLockInput,
  type ServiceLockInput,
  type ServiceLockState,
  lockHolderQuery,
  releaseLockSignal,
  workflowIdFor,
} from '../contract';
import { publishStatusPage } from './page';
import type { RunbookRun } from './runbook';
import { requireWorkflowId } from './workflow-ids';
import type { Activities } from '../activities';

type LockActivities = Pick<Activities, 'readServiceLock'>;

/** The patch id every runbook that takes the lock guards it with (docs/workflow-changes.md). */
export const SERVICE_LOCK_PATCH = 'service-lock';

export async function serviceLock(rawInput: ServiceLockInput): Promise<ServiceLockState & { releasedBy: string }> {
  const input = parseInput(serviceLockInput, rawInput);
  requireWorkflowId('lock', input.service);
  const state: ServiceLockState = {
    service: input.service,
    holder: workflowInfo().parent?.workflowId ?? input.holder ?? 'an operator (started by hand)',
    since: new Date(Date.now()).toISOString(),
  };
  let releasedBy: string | null = null;
  const page = () =>
    publishStatusPage({
      runbook: 'serviceLock',
      service: input.service,
      phase: `held by ${state.holder}`,
      outcome: releasedBy === null ? null : `released by ${releasedBy}`,
      facts: [
        ['Holder', state.holder],
        ['Since', state.since],
        [
          'While held',
          `no other failover, failback or switchover drill of ${input.service} starts; the monitor stands down`,
        ],
      ],
      steps: [],
      problems: [],
      next: workflowInfo().parent
        ? [`It ends with its holder: \`drctl status ${state.holder}\` shows where that run is.`]
        : [
            'Started by hand: it holds until someone releases it. **More Actions → Send Signal**, signal `release`, ' +
              'input `{"by": "<your name>"}`.',
          ],
    });
  page();
  setHandler(lockHolderQuery, () => state);
  setHandler(releaseLockSignal, ({ by }) => {
    releasedBy ??= by;
    page();
  });
  await condition(() => releasedBy !== null);
  return { ...state, releasedBy: releasedBy! };
}

export interface HeldServiceLock {
  /** Who holds it: this run, or (inherited) the parent this run works under. */
  holder: string;
  inherited: boolean;
  release(): Promise<void>;
}

/**
 * Take `lock-<service>` for this run, as a step; a run whose parent holds it works under the
 * parent's lock. Any other holder: the run fails with ServiceLocked naming it, before any change.
 */
export async function holdServiceLock(run: RunbookRun, plan: ServicePlan, reads: LockActivities) {
  const service = plan.service.name;
  const self = workflowInfo().workflowId;
  const parent = workflowInfo().parent?.workflowId;
  return run.step(
    'lock',
    async (): Promise<HeldServiceLock> => {
      // Twice at most: the holder seen by the first attempt may have released it before the look-up.
      for (let attempt = 1; ; attempt++) {
        try {
          const lock = await startChild(serviceLock, {
            workflowId: workflowIdFor('lock', service),
            staticSummary: `lock ${service}: held by ${self}`,
            args: [{ service, holder: self }],
            parentClosePolicy: ParentClosePolicy.TERMINATE,
          });
          return {
            holder: self,
            inherited: false,
            release: () =>
              CancellationScope.nonCancellable(async () => {
                // Already gone (cancelled with this run): released all the same.
                await lock.signal(releaseLockSignal, { by: self }).catch(() => undefined);
                await lock.result().catch(() => undefined);
              }),
          };
        } catch (err) {
          if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        }
        const held = await reads.readServiceLock({ service });
        if (held && parent && held.holder === parent)
          return { holder: parent, inherited: true, release: () => Promise.resolve() };
        if (held || attempt >= 2) {
          throw ApplicationFailure.create({
            type: ErrorType.ServiceLocked,
            message:
              `${service} is being changed ` +
              `by ${held?.holder ?? 'another run'}${held ? ` (since ${held.since})` : ''}: one topology change ` +
              `per service at a time; let it finish, or abort or terminate it, then start again`,
            nonRetryable: true,
            details: [{ service, holder: held?.holder ?? null }],
          });
        }
      }
    },
    (l) => (l.inherited ? `lock-${service} held by ${l.holder}, this run works under it` : `lock-${service} taken`),
  );
}

/** The lock for runs that may replay histories recorded before it existed. */
export async function holdServiceLockIfPatched(
  run: RunbookRun,
  plan: ServicePlan,
  reads: LockActivities,
): Promise<HeldServiceLock | null> {
  return patched(SERVICE_LOCK_PATCH) ? holdServiceLock(run, plan, reads) : null;
}
