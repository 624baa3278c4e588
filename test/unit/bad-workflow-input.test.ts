/**
 * Bad workflow inputs, generated (fast-check): wrong types, missing fields, unknown keys, huge
 * strings, numbers out of range, wrong enum values, malformed service names, dates and backup ids,
 * non-objects, several problems at once — for every runbook's input schema (contract/inputs.ts).
 * Each one must be rejected by parseInput with a non-retryable InvalidInput failure whose message
 * names the offending field path. A sample then runs through the real workflows on the
 * time-skipping server: each fails naming the field, and its history holds no command at all (no
 * activity, timer, child or search attribute) — nothing happened before the input was checked. A
 * well-formed but unknown service fails with UnknownService after the inventory look-up alone.
 */
import type { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import fc from 'fast-check';
import type { z } from 'zod';
import { createInventoryActivities } from '../../activities/inventory';
import {
  binlogArchiveInput,
  drillInput,
  drTaskQueue,
  ErrorType,
  failbackInput,
  failoverInput,
  launchInput,
  monitorInput,
  serviceLockInput,
  nightlyBackupInput,
  NON_RETRYABLE,
  parseInput,
  readinessInput,
  resolveSplitInput,
  restoreTestInput,
  serviceBackupInput,
  serviceRolesInput,
} from '../../contract';
import * as workflows from '../../workflows';
import { sandbox, workflowBundle } from '../helpers/stack';
import { stubs, timeSkippingEnv } from '../helpers/stubs';

jest.setTimeout(120_000);

// ------------------------------------------------------------------ what each field accepts

type Kind =
  | { t: 'service' }
  | { t: 'enum'; values: string[] }
  | { t: 'text'; min: number; max: number }
  | { t: 'bool' }
  | { t: 'int'; min: number; max?: number }
  | { t: 'datetime' }
  | { t: 'backupId' }
  | { t: 'server' }
  | { t: 'services' }
  | { t: 'pointInTime' }
  | { t: 'record' };

interface Field {
  kind: Kind;
  required: boolean;
}

interface Runbook {
  workflowType: keyof typeof workflows;
  schema: z.ZodObject;
  /** A valid input (the generators break one or more of its fields). */
  valid: Record<string, unknown>;
  fields: Record<string, Field>;
}

const req = (kind: Kind): Field => ({ kind, required: true });
const opt = (kind: Kind): Field => ({ kind, required: false });
const service: Kind = { t: 'service' };
const reason: Kind = { t: 'text', min: 3, max: 500 };
const interval: Kind = { t: 'int', min: 60 };
const MODES = ['real', 'drill'];

const RUNBOOKS: Runbook[] = [
  {
    workflowType: 'readiness',
    schema: readinessInput,
    valid: { service: 'shop' },
    fields: { service: req(service), alertOnDrift: opt({ t: 'bool' }) },
  },
  {
    workflowType: 'failover',
    schema: failoverInput,
    valid: { service: 'shop', mode: 'drill', reason: 'bad input test' },
    fields: {
      service: req(service),
      mode: req({ t: 'enum', values: MODES }),
      reason: req(reason),
      dryRun: opt({ t: 'bool' }),
      incidentStartedAt: opt({ t: 'datetime' }),
      trigger: opt({ t: 'enum', values: ['operator', 'monitor', 'drill'] }),
    },
  },
  {
    workflowType: 'failback',
    schema: failbackInput,
    valid: { service: 'shop' },
    fields: { service: req(service), mode: opt({ t: 'enum', values: MODES }) },
  },
  {
    workflowType: 'serviceLock',
    schema: serviceLockInput,
    valid: { service: 'shop', holder: 'ops: maintenance' },
    fields: { service: req(service), holder: opt({ t: 'text', min: 1, max: 200 }) },
  },
  {
    workflowType: 'monitor',
    schema: monitorInput,
    valid: { service: 'shop' },
    fields: { service: req(service), cooldownUntil: opt({ t: 'datetime' }) },
  },
  {
    workflowType: 'nightlyBackup',
    schema: nightlyBackupInput,
    valid: {},
    fields: {
      services: opt({ t: 'services' }),
      concurrency: opt({ t: 'int', min: 1, max: 64 }),
      batchSize: opt({ t: 'int', min: 1, max: 1000 }),
      snapshots: opt({ t: 'bool' }),
      intervalSeconds: opt(interval),
    },
  },
  {
    workflowType: 'binlogArchive',
    schema: binlogArchiveInput,
    valid: {},
    fields: { services: opt({ t: 'services' }), concurrency: opt({ t: 'int', min: 1, max: 64 }) },
  },
  {
    workflowType: 'launchRunbook',
    schema: launchInput,
    valid: { runbook: 'drill', service: 'shop', input: { service: 'shop', scope: 'isolated' } },
    fields: { runbook: req({ t: 'enum', values: ['drill'] }), service: req(service), input: req({ t: 'record' }) },
  },
  {
    workflowType: 'serviceBackup',
    schema: serviceBackupInput,
    valid: { service: 'shop' },
    fields: {
      service: req(service),
      source: opt({ t: 'server' }),
      backupId: opt({ t: 'backupId' }),
      snapshots: opt({ t: 'bool' }),
      intervalSeconds: opt(interval),
    },
  },
  {
    workflowType: 'drDrill',
    schema: drillInput,
    valid: { service: 'shop', scope: 'isolated' },
    fields: {
      service: req(service),
      scope: req({ t: 'enum', values: ['isolated', 'switchover'] }),
      reason: opt(reason),
    },
  },
  {
    workflowType: 'restoreTest',
    schema: restoreTestInput,
    valid: { service: 'shop' },
    fields: {
      service: req(service),
      backupId: opt({ t: 'backupId' }),
      rds: opt({ t: 'bool' }),
      parallel: opt({ t: 'int', min: 1, max: 16 }),
      pointInTime: opt({ t: 'pointInTime' }),
    },
  },
  {
    workflowType: 'resolveSplit',
    schema: resolveSplitInput,
    valid: { service: 'shop', keep: 'db-primary', reason: 'bad input test' },
    fields: { service: req(service), keep: req({ t: 'server' }), reason: req(reason) },
  },
  {
    workflowType: 'serviceRoles',
    schema: serviceRolesInput,
    valid: { service: 'shop' },
    fields: { service: req(service) },
  },
];

// ------------------------------------------------------------------ generators of bad values

/** A bad value and the path (below the field) a rejection must name. */
interface Bad {
  value: unknown;
  at: (string | number)[];
}
const here = (value: unknown): Bad => ({ value, at: [] });

const HUGE = 100_000;
const notAString = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 2 }),
);
const notANumber = fc.oneof(
  fc.string(),
  fc.integer().map(String), // "5" is not 5: no coercion of workflow inputs
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(NaN, Infinity, -Infinity),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 2 }),
);
const notABoolean = fc.oneof(
  fc.constantFrom('true', 'false', 'yes', 0, 1, null),
  fc.string(),
  fc.integer(),
  fc.array(fc.boolean(), { maxLength: 2 }),
);
/** Strings a service name must not be: empty, upper case, a leading digit or dash, a stray character, too long. */
const badServiceName = fc.oneof(
  fc.constant(''),
  fc.string({ maxLength: 20 }).map((s) => `S${s}`),
  fc.tuple(fc.constantFrom('0', '9', '-'), fc.string({ maxLength: 10 })).map(([a, b]) => a + b),
  fc
    .tuple(
      fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/),
      fc.constantFrom(' ', '_', '.', '/', '!', '\n', 'é', 'A', '$', '"', '\u0000'),
      fc.stringMatching(/^[a-z0-9-]{0,10}$/),
    )
    .map(([a, b, c]) => a + b + c),
  fc.integer({ min: 64, max: HUGE }).map((n) => 'a'.repeat(n)),
);
/** A MySQL server name from the inventory (serviceBackup's `source`): a letter or digit first, 63 at most. */
const SERVER = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const badServerName = fc.oneof(
  fc.constantFrom('', '-db', '.db', '../db', 'db primary', 'db;primary', '--no-data', 'a'.repeat(64)),
  fc.string().filter((s) => !SERVER.test(s)),
);
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;
const badDatetime = fc.oneof(
  fc.constantFrom('yesterday', 'now', '2025-01-01', '2025-13-01T00:00:00Z', '2025-01-32T00:00:00Z', '01/02/2025 03:00'),
  fc.string().filter((s) => !ISO.test(s)),
);
const BACKUP_ID = /^\d{8}T\d{6}Z$/;
const badBackupId = fc.oneof(
  fc.constantFrom('latest', '2025-01-01T03:00:00Z', '20250101T030000', '20250101-030000Z', '../../etc/passwd'),
  fc.string().filter((s) => !BACKUP_ID.test(s)),
);

/** Values of the field's type that break its rule (range, length, enum, format). */
function badValue(kind: Kind): fc.Arbitrary<Bad> {
  switch (kind.t) {
    case 'service':
      return badServiceName.map(here);
    case 'enum':
      return fc
        .oneof(
          fc.constantFrom(...kind.values.map((v) => v.toUpperCase()), ...kind.values.map((v) => ` ${v}`), ''),
          fc.string(),
        )
        .filter((s) => !kind.values.includes(s))
        .map(here);
    case 'text':
      return fc
        .oneof(
          fc.string({ maxLength: kind.min - 1 }),
          fc.integer({ min: kind.max + 1, max: HUGE }).map((n) => 'x'.repeat(n)),
        )
        .map(here);
    case 'bool':
      return notABoolean.map(here);
    case 'int': {
      const { min, max } = kind;
      const out = [
        fc.integer({ min: -1e9, max: min - 1 }),
        fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d)),
      ];
      if (max !== undefined) out.push(fc.integer({ min: max + 1, max: max + 1e9 }));
      return fc.oneof(...out).map(here);
    }
    case 'datetime':
      return badDatetime.map(here);
    case 'backupId':
      return badBackupId.map(here);
    case 'server':
      return badServerName.map(here);
    case 'services':
      return fc.oneof(
        fc.constant(here([])),
        fc.string().map(here), // a name, not a list of names
        fc
          .tuple(fc.array(fc.constantFrom('shop', 'catalog', 'wiki'), { maxLength: 3 }), badServiceName)
          .map(([good, bad]) => ({ value: [...good, bad], at: [good.length] })),
        fc
          .tuple(fc.array(fc.constantFrom('shop', 'catalog'), { maxLength: 3 }), notAString)
          .map(([good, bad]) => ({ value: [...good, bad], at: [good.length] })),
      );
    case 'record':
      // The launched runbook's own input is checked by that runbook; here only that it is an object.
      return fc.constantFrom<unknown>(null, 'drill', 0, true, [], ['service']).map(here);
    case 'pointInTime':
      return fc.oneof(
        notAString.filter((v) => v === null || typeof v !== 'object' || Array.isArray(v)).map(here),
        badDatetime.map((time) => ({ value: { time }, at: ['time'] })),
        fc
          .oneof(fc.constantFrom('0-1', 'abc', '0-1-x', ''), fc.string())
          .filter((g) => !/^\d+-\d+-\d+$/.test(g))
          .map((gtid) => ({ value: { gtid }, at: ['gtid'] })),
        fc.constant<Bad>({ value: { time: '2025-01-01T03:00:00Z', gtid: '0-1-5' }, at: [] }),
        fc.constant<Bad>({ value: { queries: 'SELECT 1' }, at: ['queries'] }),
        // Names of inventory queries (or, for runs that predate that, a whole query: refused by the workflow).
        fc.constant<Bad>({ value: { queries: [{ name: 'q', sql: '', expect: 0 }] }, at: ['queries', 0, 'sql'] }),
        fc
          .tuple(
            fc.array(fc.constantFrom('orders-have-customers', 'before-marker'), { maxLength: 2 }),
            fc.oneof(fc.constant(''), fc.integer(), fc.constant(null), fc.string({ minLength: 201, maxLength: 300 })),
          )
          .map(([good, bad]) => ({ value: { queries: [...good, bad] }, at: ['queries', good.length] })),
        fc.constant<Bad>({ value: { queries: Array.from({ length: 101 }, () => 'q') }, at: ['queries'] }),
      );
  }
}

/** A value of another type than the field takes. */
function wrongType(kind: Kind): fc.Arbitrary<Bad> {
  switch (kind.t) {
    case 'bool':
      return notABoolean.map(here);
    case 'int':
      return notANumber.map(here);
    case 'services':
      return fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.dictionary(fc.string(), fc.string())).map(here);
    case 'pointInTime':
    case 'record':
      return fc.oneof(fc.integer(), fc.string(), fc.boolean(), fc.array(fc.integer(), { maxLength: 2 })).map(here);
    default:
      return notAString.map(here);
  }
}

/** One broken field of a runbook's input: the edit, and the path the rejection must name. */
interface Breakage {
  field: string;
  /** The path the rejection must name; an unknown key is named in the message ("Unrecognized key: ..."). */
  path: string;
  edit: 'set' | 'drop' | 'add';
  value?: unknown;
}

function breakage(rb: Runbook): fc.Arbitrary<Breakage> {
  const names = Object.keys(rb.fields);
  const required = names.filter((n) => rb.fields[n].required);
  const setTo =
    (field: string) =>
    (bad: Bad): Breakage => ({ field, path: [field, ...bad.at].join('.'), edit: 'set', value: bad.value });
  const options: fc.Arbitrary<Breakage>[] = [
    fc.constantFrom(...names).chain((f) => wrongType(rb.fields[f].kind).map(setTo(f))),
    fc.constantFrom(...names).chain((f) => badValue(rb.fields[f].kind).map(setTo(f))),
    fc
      .oneof(fc.constantFrom('__proto__', 'constructor', 'Service', 'services ', 'password', 'extra'), fc.string())
      .filter((k) => !names.includes(k))
      .map((key): Breakage => ({ field: key, path: '(input)', edit: 'add', value: 1 })),
  ];
  if (required.length)
    options.push(fc.constantFrom(...required).map((field): Breakage => ({ field, path: field, edit: 'drop' })));
  return fc.oneof(...options);
}

/** One to four breakages of distinct fields. */
const breakages = (rb: Runbook) =>
  fc.uniqueArray(breakage(rb), { minLength: 1, maxLength: 4, selector: (b) => b.field });

/** The valid input with the breakages applied. */
function broken(rb: Runbook, list: Breakage[]): Record<string, unknown> {
  const input = structuredClone(rb.valid);
  for (const b of list) {
    if (b.edit === 'drop') delete input[b.field];
    // defineProperty: "__proto__" becomes a key, as JSON.parse makes it of a workflow input.
    else
      Object.defineProperty(input, b.field, { value: b.value, enumerable: true, writable: true, configurable: true });
  }
  return input;
}

const notAnObject = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.integer(),
  fc.string(),
  fc.boolean(),
  fc.array(fc.anything(), { maxLength: 3 }),
);

// ------------------------------------------------------------------ checks

/** The rejection of `input`, or an error saying it was accepted. */
function rejection(schema: z.ZodType, input: unknown): ApplicationFailure {
  let parsed: unknown;
  try {
    parsed = parseInput(schema, input);
  } catch (err) {
    if (!(err instanceof ApplicationFailure)) throw new Error(`crashed with ${String(err)}`);
    return err;
  }
  throw new Error(`accepted ${preview(input)} as ${preview(parsed)}`);
}

const preview = (v: unknown) => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 200 ? `${s.slice(0, 200)}… (${s.length} characters)` : s;
};

/** A rejection a workflow must give: InvalidInput, non-retryable, every breakage named. */
function expectNamed(failure: ApplicationFailure, breakages: Breakage[]) {
  if (failure.type !== ErrorType.InvalidInput || !NON_RETRYABLE.includes(ErrorType.InvalidInput))
    throw new Error(`type ${failure.type}, not InvalidInput: ${failure.message}`);
  if (!failure.nonRetryable) throw new Error(`retryable: ${failure.message}`);
  // The message lists every problem; details[0] holds them one per line, each starting with its path.
  const problems = (failure.details?.[0] ?? []) as string[];
  if (!failure.message.startsWith('invalid input: ') || problems.some((p) => !failure.message.includes(p)))
    throw new Error(`message does not list the problems ${preview(problems)}: ${failure.message.slice(0, 500)}`);
  for (const b of breakages) {
    const named =
      b.edit === 'add'
        ? problems.some((p) => p.startsWith('(input): Unrecognized key') && p.includes(`"${b.field}"`))
        : problems.some((p) => p.startsWith(`${b.path}: `));
    if (!named)
      throw new Error(`"${b.edit === 'add' ? b.field : b.path}" not named in: ${failure.message.slice(0, 500)}`);
  }
}

const RUNS = 250;
let tried = 0;
let ranThroughWorkflows = 0;

describe('bad workflow inputs (fast-check)', () => {
  afterAll(() => {
    console.log(
      `fast-check: ${tried} workflow inputs tried, all rejected as non-retryable InvalidInput with the field named; ` +
        `${ranThroughWorkflows} of them through the real workflows, none with a command in its history`,
    );
  });

  test('the generators cover every runbook and every field of its input', () => {
    expect(RUNBOOKS.map((r) => r.workflowType).sort()).toEqual(Object.keys(workflows).sort());
    for (const rb of RUNBOOKS) {
      // A new input field needs a generator above: this says which.
      expect({ [rb.workflowType]: Object.keys(rb.schema.shape).sort() }).toEqual({
        [rb.workflowType]: Object.keys(rb.fields).sort(),
      });
      expect(rb.schema.safeParse(rb.valid).success).toBe(true);
    }
  });

  test.each(RUNBOOKS.map((rb) => [rb.workflowType, rb] as const))(
    '%s: every malformed input is rejected naming each bad field',
    (_, rb) => {
      fc.assert(
        fc.property(breakages(rb), (list) => {
          tried++;
          expectNamed(rejection(rb.schema, broken(rb, list)), list);
        }),
        { numRuns: RUNS },
      );
      fc.assert(
        fc.property(notAnObject, (input) => {
          tried++;
          const f = rejection(rb.schema, input);
          expectNamed(f, []);
          if (!(f.details?.[0] as string[]).some((p) => p.startsWith('(input): ')))
            throw new Error(`input not named: ${f.message}`);
        }),
        { numRuns: 30 },
      );
    },
  );

  describe('through the real workflows (time-skipping server)', () => {
    let env: TestWorkflowEnvironment;
    beforeAll(async () => {
      env = await timeSkippingEnv();
    });
    afterAll(async () => {
      await env?.teardown();
    });

    test('a sample of bad inputs fails each runbook with the field named, before any command', async () => {
      const s = stubs({ primaryReachable: true, heartbeatLagSeconds: 1 });
      const taskQueue = `unit-bad-input-${Math.random().toString(36).slice(2)}`;
      const bundle = await workflowBundle();
      const workers = await Promise.all(
        [taskQueue, drTaskQueue(taskQueue, 'us-west-2')].map((q) =>
          Worker.create({
            connection: env.nativeConnection,
            taskQueue: q,
            workflowBundle: bundle,
            activities: s.activities,
          }),
        ),
      );
      // A run that failed on its input: started, one workflow task, failed. Any other event is a command it gave.
      const { EventType } = temporal.api.enums.v1;
      const commandless = new Set<number>([
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
      ]);
      await workers[0].runUntil(() =>
        workers[1].runUntil(async () => {
          for (const rb of RUNBOOKS) {
            const samples = fc.sample(breakages(rb), { numRuns: 3, seed: 42 });
            for (const [i, list] of samples.entries()) {
              const input = broken(rb, list);
              const workflowId = `bad-${rb.workflowType}-${i}-${taskQueue}`;
              const err = await env.client.workflow
                .execute(rb.workflowType, { taskQueue, workflowId, args: [input] })
                .then(
                  () => new Error(`${rb.workflowType} accepted ${preview(input)}`),
                  (e: unknown) => e,
                );
              const cause = (err as WorkflowFailedError).cause;
              expect(cause).toBeInstanceOf(ApplicationFailure);
              // Inputs travel as JSON (NaN becomes null, and so on): still the same field at fault.
              expectNamed(cause as ApplicationFailure, list);
              const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
              const commands = history.events!.filter((e) => !commandless.has(e.eventType!));
              expect(commands.map((e) => EventType[e.eventType!])).toEqual([]);
              tried++;
              ranThroughWorkflows++;
            }
          }
        }),
      );
      expect(s.calls).toEqual([]);
    });

    test(
      'restoreTest: pointInTime.queries that are not ' + 'inventory query names fail after the look-up alone',
      async () => {
        const s = stubs({ primaryReachable: true, heartbeatLagSeconds: 1 });
        const taskQueue = `unit-pitr-names-${Math.random().toString(36).slice(2)}`;
        const bundle = await workflowBundle();
        const workers = await Promise.all(
          [taskQueue, drTaskQueue(taskQueue, 'us-west-2')].map((q) =>
            Worker.create({
              connection: env.nativeConnection,
              taskQueue: q,
              workflowBundle: bundle,
              activities: s.activities,
            }),
          ),
        );
        const adHoc = { name: 'hashes', sql: 'SELECT authentication_string FROM mysql.user', expect: 'x' };
        const cases = [
          { queries: [adHoc], named: /pointInTime\.queries\.0: ad-hoc SQL is not accepted/ },
          {
            queries: ['orders-have-customers', 'DROP DATABASE shop'],
            named:
              /pointInTime\.queries\.1: no inventory query named "DROP DATABASE shop" \(known: orders-have-customers\)/,
          },
        ];
        await workers[0].runUntil(() =>
          workers[1].runUntil(async () => {
            for (const [i, c] of cases.entries()) {
              const err = await env.client.workflow
                .execute('restoreTest', {
                  taskQueue,
                  workflowId: `pitr-names-${i}-${taskQueue}`,
                  args: [{ service: 'shop', pointInTime: { queries: c.queries } }],
                })
                .catch((e: unknown) => e);
              const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
              expect({ type: cause.type, nonRetryable: cause.nonRetryable }).toEqual({
                type: ErrorType.InvalidInput,
                nonRetryable: true,
              });
              expect(cause.message).toMatch(c.named);
            }
          }),
        );
        expect(s.calls).toEqual(['describeService', 'describeService']);
      },
    );

    test('a well-formed but unknown service fails with UnknownService after the inventory look-up alone', async () => {
      const { describeService } = createInventoryActivities(sandbox().inventory);
      const looked: string[] = [];
      const activities = {
        ...stubs({ primaryReachable: true, heartbeatLagSeconds: 1 }).activities,
        describeService: async (i: { service: string }) => {
          looked.push(i.service);
          return describeService(i);
        },
      };
      const taskQueue = `unit-unknown-service-${Math.random().toString(36).slice(2)}`;
      const bundle = await workflowBundle();
      const workers = await Promise.all(
        [taskQueue, drTaskQueue(taskQueue, 'us-west-2')].map((q) =>
          Worker.create({ connection: env.nativeConnection, taskQueue: q, workflowBundle: bundle, activities }),
        ),
      );
      const known = sandbox().inventory.services.map((x) => x.name);
      const names = fc.sample(
        fc.stringMatching(/^[a-z][a-z0-9-]{0,62}$/).filter((n) => !known.includes(n)),
        { numRuns: 2, seed: 7 },
      );
      // The runbooks that look their one service up first (nightlyBackup, binlogArchive and launchRunbook list or
      // launch). serviceLock changes nothing and looks nothing up: it only holds lock-<service> for its holder.
      const byService = RUNBOOKS.filter(
        (rb) => rb.fields.service && rb.workflowType !== 'launchRunbook' && rb.workflowType !== 'serviceLock',
      );
      const idOf: Record<string, string> = {
        failover: 'failover',
        failback: 'failback',
        drDrill: 'drill',
        monitor: 'monitor',
        resolveSplit: 'resolve',
      };
      await workers[0].runUntil(() =>
        workers[1].runUntil(async () => {
          for (const rb of byService) {
            for (const name of names) {
              const workflowId = idOf[rb.workflowType] ? `${idOf[rb.workflowType]}-${name}` : `unknown-${name}`;
              const err = await env.client.workflow
                .execute(rb.workflowType, { taskQueue, workflowId, args: [{ ...rb.valid, service: name }] })
                .then(
                  () => new Error(`${rb.workflowType} accepted unknown service ${name}`),
                  (e: unknown) => e,
                );
              const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
              expect(cause).toBeInstanceOf(ApplicationFailure);
              expect({ type: cause.type, named: cause.message.includes(`unknown service "${name}"`) }).toEqual({
                type: ErrorType.UnknownService,
                named: true,
              });
              const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
              const scheduled = history.events!.flatMap(
                (e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? [],
              );
              expect({ [rb.workflowType]: scheduled }).toEqual({ [rb.workflowType]: ['describeService'] });
              tried++;
              ranThroughWorkflows++;
            }
          }
        }),
      );
      expect(looked.length).toBe(byService.length * names.length);
    });
  });
});
