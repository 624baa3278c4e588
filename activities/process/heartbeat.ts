/**
 * Telling Temporal a step is alive. Long waits (SDK waiters, replication catch-up) and running children (dump,
 * restore, copy) must heartbeat, or Temporal cannot tell a slow step from a dead worker. Outside an activity
 * (scripts, benchmarks, tests) there is nobody to tell, and every helper here does nothing.
 */
import { Context } from '@temporalio/activity';

/** The activity's context; null when called directly (benchmarks, scripts, tests). */
export function activityContext(): Context | null {
  try {
    return Context.current();
  } catch {
    return null;
  }
}

/** One heartbeat, when running as an activity. */
export function heartbeat(details: unknown): void {
  activityContext()?.heartbeat(details);
}

/**
 * Heartbeat `details()` every `everyMs` until the returned stop function is called. `details` is read at each beat,
 * so it reports progress (bytes so far, the phase) as it is now.
 */
export function heartbeatEvery(details: () => unknown, everyMs = 2000): () => void {
  const ctx = activityContext();
  if (!ctx) return () => undefined;
  const timer = setInterval(() => ctx.heartbeat(details()), everyMs);
  return () => clearInterval(timer);
}

/** Keep heartbeating `detail` while `work` is pending. */
export async function whileHeartbeating<T>(detail: unknown, work: Promise<T>, everyMs = 2000): Promise<T> {
  const stop = heartbeatEvery(() => detail, everyMs);
  try {
    return await work;
  } finally {
    stop();
  }
}
