/**
 * What a runbook undoes when it stops half-way (the saga sample's shape): as it changes the estate it pushes the
 * undo of each change; when it fails, the undos run last-first. A finished promotion clears the stack: from then on
 * the run goes forward, never back. An undo may stop the unwinding (a server that may take writes could not be
 * fenced again: what is fenced below it stays fenced, since an outage is recoverable and two writers are not).
 */
import type { RunbookActivities } from './activity-options';
import { reasonOf } from './plan';
import type { RunbookRun } from './runbook';

type Undo = () => Promise<'stop' | void>;

export class Compensations {
  private readonly stack: { name: string; undo: Undo }[] = [];

  /** Push the undo of a change that is about to start (a change that fails part-way is undone too). */
  push(name: string, undo: Undo): void {
    this.stack.push({ name, undo });
  }

  /** A change that is done for good: nothing before it is undone any more. */
  clear(): void {
    this.stack.length = 0;
  }

  get pending(): boolean {
    return this.stack.length > 0;
  }

  /** Undo everything pushed, last first; an undo that says 'stop' leaves the rest as it is. */
  async unwind(): Promise<void> {
    for (let next = this.stack.pop(); next; next = this.stack.pop()) {
      if ((await next.undo()) === 'stop') this.clear();
    }
  }
}

/** A fence in progress: what to put back if the run stops before the promotion it prepares is done. */
export interface Fencing {
  service: string;
  /** The primary being fenced (made read-only, heartbeat off, VIP removed). */
  server: string;
  heartbeatEvent: string;
  /** The VIP as it was on the fenced primary's host. */
  vip: { host: string; address: string; device: string } | null;
  /** The fence step's MySQL result; null while it runs or if it failed (then any part of it may have happened). */
  result: { fenced: boolean; reachable: boolean } | null;
  /** The server whose promotion began (it may have taken writes), until that promotion is done. */
  promoting: string | null;
  /** Made a replica of `server` again after the unfence, when its promotion began. */
  reprotect: string | null;
}

/** Push the undo of a fence: the fenced primary writable again with its VIP, the begun promotion re-protected. */
export function pushUnfence(compensations: Compensations, run: RunbookRun, acts: RunbookActivities, f: Fencing): void {
  compensations.push('unfence', () => unfence(run, acts, f));
}

/** Push the undo of a promotion about to start on `target`: it is fenced again first, or nothing below it is undone. */
export function pushRefence(
  compensations: Compensations,
  run: RunbookRun,
  acts: RunbookActivities,
  f: Fencing,
  target: string,
): void {
  f.promoting = target;
  compensations.push('refence-target', () => refence(run, acts, f, target));
}

async function refence(run: RunbookRun, acts: RunbookActivities, f: Fencing, target: string): Promise<'stop' | void> {
  const refenced = await run
    .step(
      'refence-target',
      () => acts.fencing.fencePrimary({ server: target, heartbeatEvent: f.heartbeatEvent }),
      (r) => r.detail,
    )
    .catch(() => null);
  if (refenced?.fenced) return;
  run.notes.push(
    `${target} could not be fenced again after its promotion began (${refenced?.detail ?? 'the step failed'}): ` +
      `${f.server} is LEFT FENCED so that two servers never take writes; ` +
      `fence ${target} by hand, then unfence ${f.server} (or finish the run)`,
  );
  return 'stop';
}

async function unfence(run: RunbookRun, acts: RunbookActivities, f: Fencing): Promise<void> {
  const { server, heartbeatEvent, vip } = f;
  // A fence step that returned "unreachable" changed nothing on the server; one that failed may have changed anything.
  const mysqlTouched = f.result === null || f.result.reachable;
  await run
    .step(
      'unfence-old-primary',
      async () => {
        const [db, address] = await Promise.allSettled([
          mysqlTouched ? acts.topologyChanges.unfencePrimary({ server, heartbeatEvent }) : Promise.resolve(null),
          vip ? acts.topologyChanges.addVip({ host: vip.host, address: vip.address, device: vip.device }) : null,
        ]);
        const parts = [
          db.status === 'rejected'
            ? `${server} NOT made writable: ${reasonOf(db.reason)}`
            : db.value
              ? `${server} writable again`
              : `${server} was never reached by the fence: left as it is`,
          vip ? (address.status === 'rejected' ? `VIP NOT back: ${reasonOf(address.reason)}` : 'VIP back') : null,
        ].filter(Boolean);
        if (db.status === 'rejected' || address.status === 'rejected') throw new Error(parts.join('; '));
        return parts.join(', ');
      },
      (d) => d,
    )
    .catch(() => run.notes.push(`COULD NOT UNFENCE ${server}: the service may have no writable primary`));
  // The target is read-only again: make it a replica of the old primary once more (refused if it took writes).
  const target = f.promoting;
  if (target && target === f.reprotect) {
    await run
      .step(
        'reprotect-target',
        () =>
          acts.topologyChanges.rebuildAsReplica({ service: f.service, server: target, source: server, heartbeatEvent }),
        (r) => `${target} replicates from ${server}${r.alreadyReplicating ? ' (it still did)' : ''}`,
      )
      .catch(() =>
        run.notes.push(
          `${target} is read-only but NOT replicating from ${server}: re-protect it (failback's re-clone)`,
        ),
      );
  }
}
