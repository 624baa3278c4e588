/**
 * What a scheduled readiness run compares itself with: the previous run of the same schedule.
 * Read from the schedule's own record of its recent actions (strongly consistent, unlike
 * visibility) through the worker's Temporal client; the answer is recorded in the run's history,
 * so the drift decision replays deterministically.
 */
import { Context } from '@temporalio/activity';
import { ScheduleNotFoundError, WorkflowNotFoundError } from '@temporalio/client';
import type { ReadinessReport } from '../../contract';
import { rootCauseMessage } from '../errors';

export interface PreviousReadiness {
  workflowId: string;
  runId: string;
  closedAt: string;
  /** The checks that failed then (name → detail). */
  failing: Record<string, string>;
}

/** The run of a service's backup before this one, as far as Temporal's visibility knows it. */
export interface PreviousBackupRun {
  workflowId: string;
  status: string;
  closedAt: string | null;
  /** Its failure message, when it failed. */
  reason: string | null;
}

export function createReadinessActivities() {
  return {
    /**
     * The newest closed serviceBackup of `service` (ids `backup-<service>-<backupId>`) other than `workflowId`,
     * or null. A backup that succeeds after a failed one tells people it recovered; nightly runs are a day
     * apart, far beyond visibility's lag.
     */
    async previousServiceBackup({
      service,
      workflowId,
    }: {
      service: string;
      workflowId: string;
    }): Promise<PreviousBackupRun | null> {
      const { client } = Context.current();
      const query =
        `WorkflowType = 'serviceBackup' AND WorkflowId STARTS_WITH 'backup-${service}-' ` +
        `AND ExecutionStatus != 'Running'`;
      let newest: PreviousBackupRun | null = null;
      let newestAt = 0;
      for await (const wf of client.workflow.list({ query, pageSize: 20 })) {
        if (wf.workflowId === workflowId) continue;
        const at = (wf.closeTime ?? wf.startTime).getTime();
        if (at <= newestAt) continue;
        newestAt = at;
        newest = {
          workflowId: wf.workflowId,
          status: wf.status.name,
          closedAt: wf.closeTime?.toISOString() ?? null,
          reason: null,
        };
      }
      const previous = newest;
      if (previous?.status === 'FAILED') {
        previous.reason = await client.workflow
          .getHandle(previous.workflowId)
          .result()
          .then(() => null, rootCauseMessage);
      }
      return previous;
    },

    /**
     * The newest completed run of `scheduleId` other than the current one, or null (first run,
     * schedule gone, or only failed runs among its recent actions).
     */
    async previousScheduledReadiness({
      scheduleId,
      workflowId,
    }: {
      scheduleId: string;
      workflowId: string;
    }): Promise<PreviousReadiness | null> {
      const { client } = Context.current();
      let actions;
      try {
        actions = (await client.schedule.getHandle(scheduleId).describe()).info.recentActions;
      } catch (err) {
        if (err instanceof ScheduleNotFoundError) return null;
        throw err;
      }
      const older = actions
        .filter((a) => a.action.workflow.workflowId !== workflowId)
        .sort((a, b) => b.takenAt.getTime() - a.takenAt.getTime());
      for (const a of older) {
        const handle = client.workflow.getHandle(a.action.workflow.workflowId, a.action.workflow.firstExecutionRunId);
        let info;
        try {
          info = await handle.describe();
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) continue; // past retention
          throw err;
        }
        if (info.status.name !== 'COMPLETED') continue;
        const report = (await handle.result()) as ReadinessReport;
        return {
          workflowId: info.workflowId,
          runId: info.runId,
          closedAt: (info.closeTime ?? info.startTime).toISOString(),
          failing: Object.fromEntries(report.checks.filter((c) => !c.ok).map((c) => [c.name, c.detail])),
        };
      }
      return null;
    },
  };
}

export type ReadinessActivities = ReturnType<typeof createReadinessActivities>;
