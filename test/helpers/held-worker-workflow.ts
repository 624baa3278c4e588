/**
 * Workflow interceptor bundled into the held worker (test/helpers/held-worker.ts): before a
 * workflow task schedules an activity, it tells the worker through a sink, which may hold that
 * task's completion so the process can be killed exactly at a step boundary.
 */
import { proxySinks, type Sinks, type WorkflowInterceptorsFactory } from '@temporalio/workflow';

export interface HoldSinks extends Sinks {
  /** `argument`: the activity's first argument as JSON (to tell apart two schedulings of one activity type). */
  chaosHold: { scheduling(activityType: string, argument: string): void };
}

const { chaosHold } = proxySinks<HoldSinks>();

export const interceptors: WorkflowInterceptorsFactory = () => ({
  outbound: [
    {
      scheduleActivity(input, next) {
        chaosHold.scheduling(input.activityType, JSON.stringify(input.args[0] ?? null));
        return next(input);
      },
    },
  ],
});
