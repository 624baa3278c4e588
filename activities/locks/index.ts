/**
 * The service topology lock (`lock-<service>`, workflows/lock.ts) seen from outside: who holds
 * it, read through the worker's Temporal client. The answer is recorded in the asking run's
 * history, so what the run decided from it replays deterministically.
 */
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { DrMode, workflowIdFor } from '../../contract';

export interface ServiceLockHolder {
  /** The workflow id of the run holding the lock. */
  holder: string;
  since: string;
}

export function createServiceLockActivities() {
  return {
    /** The run holding `lock-<service>`, or null when the service is free to change. */
    async readServiceLock({ service }: { service: string }): Promise<ServiceLockHolder | null> {
      const { client } = Context.current();
      try {
        const handle = client.workflow.getHandle(workflowIdFor('lock', service));
        const info = await handle.describe();
        if (info.status.name !== 'RUNNING') return null;
        const since = info.startTime.toISOString();
        const parent = info.parentExecution?.workflowId;
        if (parent) return { holder: parent, since };
        // Started by hand: the lock names whoever started it (its `holder` query).
        const state = await handle.query<{ holder: string }>('holder').catch(() => null);
        return { holder: state?.holder ?? 'an operator (started by hand)', since };
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return null;
        throw err;
      }
    },

    /**
     * A real failover takes precedence over an isolated drill of the same service (whose copy pauses
     * the DR replica's SQL thread): the drill, if one runs, is cancelled (its teardown drops the copy).
     * Returns the cancelled drill's workflow id, or null when no isolated drill runs.
     */
    async cancelIsolatedDrill({ service, reason }: { service: string; reason: string }): Promise<string | null> {
      const { client, log } = Context.current();
      const handle = client.workflow.getHandle(workflowIdFor('drill', service));
      try {
        const info = await handle.describe();
        if (info.status.name !== 'RUNNING' || info.typedSearchAttributes.get(DrMode) !== 'isolated') return null;
        log.warn(`cancelling isolated drill ${info.workflowId}: ${reason}`);
        await handle.cancel();
        return info.workflowId;
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return null;
        throw err;
      }
    },
  };
}

export type ServiceLockActivities = ReturnType<typeof createServiceLockActivities>;
