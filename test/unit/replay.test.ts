/**
 * Replay: every committed history (test/fixtures/histories, recorded from real runs by
 * scripts/record-histories.ts) is replayed against the current workflow code. A change that
 * would make a running workflow issue different commands fails here, naming the fixture, before
 * it can break a run in production. How to change a workflow safely: docs/workflow-changes.md.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DeterminismViolationError } from '@temporalio/workflow';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import type { Fixture } from '../../scripts/record-histories';
import * as workflows from '../../workflows';
import { ROOT, workflowBundle } from '../helpers/stack';

jest.setTimeout(120_000);

const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'histories');
const index = JSON.parse(readFileSync(path.join(FIXTURES, 'index.json'), 'utf8')) as Fixture[];
const history = (f: Fixture): unknown => JSON.parse(readFileSync(path.join(FIXTURES, f.file), 'utf8'));
const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: console.error };

describe('replay of recorded histories', () => {
  test('every workflow type has at least one recorded history', () => {
    const recorded = new Set(index.map((f) => f.workflowType));
    expect(Object.keys(workflows).filter((type) => !recorded.has(type))).toEqual([]);
  });

  // The newest generation (a folder, scripts/record-histories.ts --set) covers every workflow type again and holds
  // what the Web UI shows of a run: a summary on every activity and on every child it starts.
  const sets = [...new Set(index.filter((f) => f.file.includes('/')).map((f) => f.file.split('/')[0]))].sort();
  const newest = index.filter((f) => sets.length && f.file.startsWith(`${sets.at(-1)}/`));
  test('the newest recordings cover every workflow type', () => {
    const recorded = new Set(newest.map((f) => f.workflowType));
    expect(Object.keys(workflows).filter((type) => !recorded.has(type))).toEqual([]);
  });

  test.each(newest.map((f) => [f.file, f] as const))('%s: every activity and child carries its summary', (_, f) => {
    type Event = { eventId: string; eventType: string; userMetadata?: { summary?: unknown } };
    const events = (history(f) as { events: Event[] }).events;
    const scheduled = events
      .filter((e) => /ACTIVITY_TASK_SCHEDULED|START_CHILD_WORKFLOW_EXECUTION_INITIATED/.test(e.eventType))
      .map((e) => ({ event: `${e.eventId} ${e.eventType}`, summary: e.userMetadata?.summary }));
    expect(scheduled.filter((s) => s.summary === undefined)).toEqual([]);
  });

  test.each(index.map((f) => [f.file, f] as const))('%s replays against the current workflow code', async (_, f) => {
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history(f), f.workflowId);
  });

  describe('a change to workflow code', () => {
    const readiness = index.find((f) => f.workflowType === 'readiness')!;
    const bundle = (variant: string) =>
      bundleWorkflowCode({ workflowsPath: require.resolve(`./replay-workflows/${variant}`), logger: quiet });

    test('without patched(): the recorded run fails to replay with a determinism violation', async () => {
      const err = await Worker.runReplayHistory(
        { workflowBundle: await bundle('unguarded') },
        history(readiness),
        readiness.workflowId,
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DeterminismViolationError);
      expect((err as Error).message).toMatch(/Nondeterminism|nondeterminism/);
    });

    test('behind patched(): the recorded run takes the old path and replays', async () => {
      await Worker.runReplayHistory(
        { workflowBundle: await bundle('guarded') },
        history(readiness),
        readiness.workflowId,
      );
    });
  });
});
