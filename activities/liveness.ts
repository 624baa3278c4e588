/**
 * Long waits (SDK waiters, replication catch-up) must heartbeat, or Temporal cannot tell
 * a slow step from a dead worker. This keeps heartbeating while a promise is pending.
 */
import { Context } from '@temporalio/activity';

export async function whileHeartbeating<T>(detail: unknown, work: Promise<T>, everyMs = 2000): Promise<T> {
  let ctx: Context | undefined;
  try {
    ctx = Context.current();
  } catch {
    ctx = undefined; // called outside an activity (scripts, tests): nothing to heartbeat to
  }
  const timer = ctx ? setInterval(() => ctx.heartbeat(detail), everyMs) : undefined;
  try {
    return await work;
  } finally {
    if (timer) clearInterval(timer);
  }
}
