/**
 * Starting a runbook from the Web UI's Start Workflow form without reading code: docs/operating.md's table of
 * workflow type, id and input per runbook is parsed here, and every input must pass its runbook's schema (the
 * docs cannot drift from what the runbooks accept); a wrong input's failure names the field and shows a valid
 * input that itself parses.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { z } from 'zod';
import {
  binlogArchiveInput,
  drillInput,
  failbackInput,
  failoverInput,
  INPUT_EXAMPLES,
  monitorInput,
  nightlyBackupInput,
  parseInput,
  readinessInput,
  resolveSplitInput,
  restoreTestInput,
  serviceBackupInput,
  serviceLockInput,
  serviceRolesInput,
  workflowIdFor,
} from '../../contract';

const SCHEMAS: Record<string, z.ZodType> = {
  failover: failoverInput,
  failback: failbackInput,
  drDrill: drillInput,
  restoreTest: restoreTestInput,
  serviceBackup: serviceBackupInput,
  nightlyBackup: nightlyBackupInput,
  binlogArchive: binlogArchiveInput,
  readiness: readinessInput,
  resolveSplit: resolveSplitInput,
  serviceRoles: serviceRolesInput,
  monitor: monitorInput,
  serviceLock: serviceLockInput,
};
/** Runbooks that refuse any id but `<prefix>-<service>`. */
const FIXED_ID: Record<string, string> = {
  failover: 'failover',
  failback: 'failback',
  drDrill: 'drill',
  resolveSplit: 'resolve',
  monitor: 'monitor',
  serviceLock: 'lock',
};

function documentedStarts() {
  const doc = readFileSync(path.join(__dirname, '..', '..', 'docs', 'operating.md'), 'utf8');
  const section = doc.slice(doc.indexOf('### Start a runbook: Start Workflow values to paste'));
  const rows = section.split('\n').filter((l) => /^\| [^-|]/.test(l) && l.includes('`{'));
  return rows.map((row) => {
    const cells = row
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim().replace(/^`|`$/g, ''));
    return { runbook: cells[0], type: cells[1], id: cells[2], input: JSON.parse(cells[3]) as Record<string, unknown> };
  });
}

describe('Start Workflow values in docs/operating.md', () => {
  const starts = documentedStarts();

  it('cover every runbook a person starts, each once', () => {
    expect(starts.map((s) => s.type).sort()).toEqual(Object.keys(SCHEMAS).sort());
  });

  it.each(documentedStarts().map((s) => [s.type, s] as const))(
    '%s: the input parses and the id is the one it needs',
    (type, s) => {
      expect(SCHEMAS[type].safeParse(s.input).error?.issues ?? []).toEqual([]);
      if (FIXED_ID[type]) expect(s.id).toBe(workflowIdFor(FIXED_ID[type], s.input.service as string));
    },
  );
});

describe('a wrong input from the form', () => {
  it.each(Object.entries(SCHEMAS))('%s: its failure names the field and shows a valid input', (_type, schema) => {
    const example = INPUT_EXAMPLES.get(schema);
    expect(example).toBeDefined();
    expect(schema.safeParse(example).success).toBe(true);
    let failure: unknown;
    try {
      parseInput(schema, { ...example, unexpected: 1 });
    } catch (err) {
      failure = err;
    }
    expect(failure).toBeInstanceOf(ApplicationFailure);
    const message = (failure as ApplicationFailure).message;
    expect(message).toMatch(/^invalid input: .*unexpected/);
    const shown = /A valid input: (\{.*\})$/.exec(message);
    expect(shown).not.toBeNull();
    expect(schema.safeParse(JSON.parse(shown![1])).success).toBe(true);
  });

  it('a failover without a reason names the field', () => {
    expect(() => parseInput(failoverInput, { service: 'shop', mode: 'drill' })).toThrow(
      new RegExp(
        String.raw`^invalid input: reason: .*` +
          String.raw`A valid input: \{"service":"shop","mode":"drill","reason":"quarterly failover drill"\}$`,
      ),
    );
  });
});
