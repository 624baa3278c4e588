/**
 * One line per activity call for the Web UI's timeline and event history: the runbook step, the activity and its
 * target, instead of the bare activity type.
 */
import type { ActivityInterfaceFor } from '@temporalio/workflow';

/** What a summary needs of a run: the step it is in (null where the runbook has no named steps). */
export interface RunSteps {
  readonly currentStep: string | null;
}

/** A run without named steps: its summaries say the activity and its target. */
export const NO_STEP: RunSteps = { currentStep: null };

/**
 * The same activities, each call carrying a one-line summary (the Web UI's timeline and event history show it
 * instead of the bare activity type): the runbook step, the activity, and its target. The summary is user
 * metadata on the schedule command, which replay does not compare (test/unit/replay.test.ts replays the fixtures).
 */
export function withSummaries<A extends object>(acts: ActivityInterfaceFor<A>, run: RunSteps): ActivityInterfaceFor<A> {
  return new Proxy(acts, {
    get(target, name, receiver) {
      const activity: unknown = Reflect.get(target, name, receiver);
      if (typeof name !== 'string' || typeof activity !== 'function') return activity;
      const withOptions = activity as unknown as {
        executeWithOptions: (o: { summary: string }, args: unknown[]) => Promise<unknown>;
      };
      const call = (...args: unknown[]) =>
        withOptions.executeWithOptions({ summary: activitySummary(run.currentStep, name, args[0]) }, args);
      return Object.assign(call, { executeWithOptions: withOptions.executeWithOptions });
    },
  });
}

/** An activity call in one line: "fence: fencePrimary db-primary", "switch-dns: switchDnsRecord a → b". */
export function activitySummary(step: string | null, activity: string, arg: unknown): string {
  const a = (arg ?? {}) as Record<string, unknown>;
  const text = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? String(v) : null);
  const target =
    a.name && a.value
      ? `${text(a.name)} → ${text(a.value)}`
      : a.source && a.server
        ? `${text(a.server)} from ${text(a.source)}`
        : a.primary && a.replica
          ? `${text(a.replica)} behind ${text(a.primary)}`
          : (text(a.server) ??
            text(a.replica) ??
            text(a.instance) ??
            (a.host && a.address ? `${text(a.address)} on ${text(a.host)}` : null) ??
            text(a.target) ??
            (typeof a.url === 'string' ? bareUrl(a.url) : null) ??
            text(a.service) ??
            (Array.isArray(a.servers) ? a.servers.filter((s) => typeof s === 'string').join(', ') : null) ??
            text(a.region));
  const line = `${step ? `${step}: ` : ''}${activity}${target ? ` ${target}` : ''}`;
  return line.length > 120 ? `${line.slice(0, 119)}…` : line;
}

/** A URL without credentials, query or fragment: a webhook's token never lands in a summary. */
const bareUrl = (url: string) => url.replace(/\/\/[^/@]*@/, '//').replace(/[?#].*$/, '');
