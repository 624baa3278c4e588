/**
 * readiness changed the wrong way, for test/unit/replay.test.ts: a new first step (a timer)
 * added without patched(). A run that started on the old code cannot replay it.
 */
import { sleep } from '@temporalio/workflow';
import { readiness as current } from '../../../workflows/readiness';

export async function readiness(input: unknown) {
  await sleep('1s');
  return current(input);
}
