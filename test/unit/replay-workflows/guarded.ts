/**
 * The same change as unguarded.ts, made the right way: behind patched(), so a run that started
 * on the old code (no patch marker in its history) takes the old path and replays.
 */
import { patched, sleep } from '@temporalio/workflow';
import { readiness as current } from '../../../workflows/readiness';

export async function readiness(input: unknown) {
  if (patched('readiness-settle-first')) await sleep('1s');
  return current(input);
}
