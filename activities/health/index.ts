/**
 * Service health as the runbooks see it: the HTTP health URL (the application working),
 * used to detect an incident and to date the end of one (the RTO clock stops at the first
 * healthy check on the DR side).
 */
import { heartbeat } from '@temporalio/activity';
import { ErrorType } from '../../contract';
import { failure } from '../errors';

export interface HttpProbe {
  url: string;
  ok: boolean;
  status: number | null;
  at: number;
  detail: string;
}

export async function probeHttp(url: string, timeoutMs = 3000): Promise<HttpProbe> {
  const at = Date.now();
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    return { url, ok: res.ok, status: res.status, at, detail: text.slice(0, 300) };
  } catch (err) {
    return { url, ok: false, status: null, at, detail: (err as Error).message };
  }
}

export function createHealthActivities() {
  return {
    /** One HTTP health check; never throws for an unhealthy answer (the caller counts them). */
    async checkHttpHealth({ url }: { url: string }): Promise<HttpProbe> {
      return probeHttp(url);
    },

    /** Poll until healthy; returns the first healthy probe (its `at` ends the RTO clock). */
    async waitUntilHealthy({
      url,
      timeoutSeconds,
      everyMs = 500,
    }: {
      url: string;
      timeoutSeconds: number;
      everyMs?: number;
    }): Promise<HttpProbe> {
      const deadline = Date.now() + timeoutSeconds * 1000;
      let last: HttpProbe | undefined;
      let attempts = 0;
      while (Date.now() < deadline) {
        attempts++;
        last = await probeHttp(url);
        if (last.ok) return last;
        heartbeat({ attempts, last: `${last.status ?? 'no answer'} ${last.detail.slice(0, 100)}` });
        await new Promise((r) => setTimeout(r, everyMs));
      }
      throw failure(
        ErrorType.HealthCheckFailed,
        `${url} not healthy after ${timeoutSeconds} s (${attempts} ` +
          `checks): ${last?.status ?? 'no answer'} ${last?.detail ?? ''}`,
        { url },
      );
    },
  };
}

export type HealthActivities = ReturnType<typeof createHealthActivities>;
