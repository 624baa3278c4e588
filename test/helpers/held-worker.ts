/**
 * The real worker (workers/main.ts's runWorker) with one fault hook, for the chaos suite to
 * SIGKILL at a chosen point. DRBOOK_CHAOS_HOLD says where the process stops making progress:
 *
 *   schedule:<activity>  the workflow task that would schedule <activity> is never completed:
 *                        every earlier step is done and recorded, <activity> has not started
 *                        (a step boundary)
 *   schedule:<activity>~<text>  the same, for the first <activity> whose first argument's JSON
 *                        contains <text> (notifyTarget~/report/: the report, not the earlier
 *                        notifications)
 *   complete:<activity>  <activity> runs (its side effects happen), its result is never reported
 *                        (the worker dies in the middle of the activity, as Temporal sees it)
 *
 * It prints "chaos: holding <spec>" when it gets there and waits: the test kills it, or lets it
 * go on with SIGUSR2. SIGUSR2 is one of the SDK Runtime's default shutdown signals (with SIGINT,
 * SIGTERM, SIGQUIT): left there, the release would also shut the worker down gracefully, so the
 * run would lose its only worker right after the released step (the ~minutes "stall" a first
 * draft of test/chaos/temporal-restart.test.ts took for a Temporal restart problem). This worker
 * shuts down on SIGINT, SIGTERM and SIGQUIT only.
 */
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { runWorker } from '../../workers/main';

const spec = process.env.DRBOOK_CHAOS_HOLD ?? '';
const [when, rest = ''] = spec.split(':');
const [activityType, argumentHas] = rest.split('~');
if (!['schedule', 'complete'].includes(when) || !activityType) {
  console.error(`DRBOOK_CHAOS_HOLD must be schedule:<activity>[~<text>] or complete:<activity>, got "${spec}"`);
  process.exit(2);
}

let held = false;
function hold(): Promise<void> {
  held = true;
  const released = new Promise<void>((resolve) => process.once('SIGUSR2', () => resolve()));
  console.log(`chaos: holding ${spec}`);
  return released;
}

const holdAfterComplete: ActivityInterceptorsFactory = (ctx) => ({
  inbound: {
    async execute(input, next) {
      const result = await next(input);
      if (when === 'complete' && !held && ctx.info.activityType === activityType) await hold();
      return result;
    },
  },
});

runWorker({
  workflowInterceptorModules: [require.resolve('./held-worker-workflow')],
  sinks: {
    chaosHold: {
      scheduling: {
        // Sink calls are awaited before the workflow task's completion goes to the server.
        fn: async (_info, type: string, argument: string) => {
          const chosen = type === activityType && (argumentHas === undefined || argument.includes(argumentHas));
          if (when === 'schedule' && !held && chosen) await hold();
        },
      },
    },
  },
  interceptors: { activity: [holdAfterComplete] },
  shutdownSignals: ['SIGINT', 'SIGTERM', 'SIGQUIT'],
}).catch((err) => {
  console.error(err);
  process.exit(1);
});
