/**
 * Bad inventories, generated (fast-check) from the valid config/sandbox.yaml: required keys
 * dropped, wrong types, bad ports, durations, names, regions, URLs, Route 53 zone ids and secret references, unknown
 * keys, hostile backed-up database names (an option, a backtick, a newline), dangling references (a service naming
 * an unknown server or host), duplicate services, a restore's scratch server that is a production member (by name, or
 * another name for a member's host:port) — one to five at once. Every problem must be listed with its path, all of them
 * together, by an
 * InventoryError (never a TypeError or a crash); through the loader (YAML file) as well. Random
 * text and the sandbox file with lines cut out must give an InventoryError or a valid inventory.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import YAML from 'yaml';
import { InventoryError, parseInventory } from '../../contract';
import { expandEnv, loadInventory } from '../../config/load';
import { SANDBOX_INVENTORY } from '../helpers/stack';

type Path = (string | number)[];

/** One problem planted in the document: where, and the path the inventory's error must name. */
interface Planted {
  path: Path;
  edit: 'drop' | 'set';
  value?: unknown;
  /** The problem line must start with this path or one below it (an unknown key: its parent's, naming the key). */
  expect: string;
  key?: string;
  /** What makes it a problem elsewhere in the document: no other planted problem may touch these paths. */
  needs?: Path[];
}

const text = readFileSync(SANDBOX_INVENTORY, 'utf8');
const sandboxDoc = () => YAML.parse(expandEnv(text, {}, [])) as Record<string, unknown>;
const doc0 = sandboxDoc();
const SERVERS = Object.keys(doc0.mysqlServers as object);
const HOSTS = Object.keys(doc0.sshHosts as object);
const dotted = (p: Path) => p.join('.');

// Paths into the sandbox document, by what they hold (services: 0 shop warm, 1 catalog hot, 2 wiki cold).
const REQUIRED: Path[] = [
  ['version'],
  ['regions'],
  ['regions', 'primary'],
  ['regions', 'dr'],
  ['approvers'],
  ['services'],
  ['approvers', 1, 'name'],
  ['notifications', 0, 'url'],
  ['notifications', 1, 'topicArn'],
  ...[0, 1, 2].flatMap((i) => ['name', 'tier', 'strategy'].map((k) => ['services', i, k])),
  ...SERVERS.flatMap((s) => ['host', 'user', 'password'].map((k) => ['mysqlServers', s, k])),
  ...HOSTS.flatMap((h) => ['host', 'user', 'privateKey', 'hostKey'].map((k) => ['sshHosts', h, k])),
  ['services', 0, 'database', 'primary'],
  ['services', 2, 'database', 'primary'],
  ...['address', 'device', 'primaryHost', 'drHost'].map((k) => ['services', 0, 'vip', k]),
  ...['hostedZone', 'record', 'primaryValue', 'drValue'].map((k) => ['services', 1, 'dns', k]),
  ['services', 0, 'backup', 'databases'],
  ['services', 0, 'backup', 'destinations'],
  ['services', 0, 'restoreTest', 'scratchServer'],
  ['services', 0, 'rds', 'instance'],
  ['services', 0, 'drCompute', 'tags'],
  ['services', 0, 'database', 'replication', 'password'],
  ['backupSigning', 'privateKey'],
];
const PORTS: Path[] = [
  ...SERVERS.map((s) => ['mysqlServers', s, 'port']),
  ...HOSTS.map((h) => ['sshHosts', h, 'port']),
];
const DURATIONS: Path[] = [
  ['services', 0, 'health', 'interval'],
  ['services', 1, 'health', 'interval'],
  ['services', 0, 'health', 'cooldownAfterFailover'],
];
const STRINGS: Path[] = [
  ...SERVERS.flatMap((s) => [
    ['mysqlServers', s, 'host'],
    ['mysqlServers', s, 'user'],
  ]),
  ['sshHosts', HOSTS[0], 'user'],
  ['services', 0, 'dns', 'record'],
  ['services', 0, 'rds', 'instance'],
  ['services', 0, 'vip', 'device'],
];
const ENUMS: [Path, string[]][] = [
  [
    ['services', 0, 'tier'],
    ['critical', 'important', 'normal'],
  ],
  [
    ['services', 1, 'strategy'],
    ['hot', 'warm', 'cold'],
  ],
  [
    ['services', 0, 'database', 'engine'],
    ['mariadb', 'mysql'],
  ],
  [
    ['services', 2, 'dns', 'type'],
    ['A', 'CNAME'],
  ],
  [
    ['notifications', 0, 'kind'],
    ['webhook', 'sns'],
  ],
  [
    ['services', 2, 'backup', 'files', 'full'],
    ['daily', 'weekly', 'monthly'],
  ],
  [
    ['services', 2, 'backup', 'files', 'between'],
    ['differential', 'incremental'],
  ],
];
/** Absolute paths on a host (a file tree, the tar snapshots' directory): a remote shell cds into them. */
const HOST_PATHS: Path[] = [
  ['services', 2, 'backup', 'paths', 0, 'path'],
  ['services', 2, 'backup', 'files', 'stateDir'],
];
/** A file tree's exclude globs: relative to the tree, never out of it. */
const EXCLUDES: Path[] = [['services', 2, 'backup', 'paths', 0, 'exclude', 0]];
const BOOLEANS: Path[] = [
  ['services', 0, 'health', 'mysqlPing'],
  ['services', 1, 'autoFailover'],
  ['services', 0, 'backup', 'physical'],
];
const NAMES: Path[] = [
  ['services', 1, 'name'],
  ['approvers', 0, 'name'],
  ['mysqlServers', SERVERS[0], 'sshHost'],
];
const REGIONS: Path[] = [
  ['regions', 'dr'],
  ['services', 0, 'rds', 'region'],
  ['notifications', 1, 'region'],
];
const URLS: Path[] = [
  ['services', 1, 'health', 'httpUrl'],
  ['aws', 'endpoint'],
];
const SECRETS: Path[] = [
  ['mysqlServers', SERVERS[1], 'password'],
  ['sshHosts', HOSTS[1], 'privateKey'],
  ['aws', 'secretAccessKey'],
  ['backupSigning', 'privateKey'],
];
/** Route 53 zone ids ("Z…" or "/hostedzone/Z…"), optional: planted where the sandbox has none. */
const ZONE_IDS: Path[] = [
  ['services', 0, 'dns', 'hostedZoneId'],
  ['services', 2, 'dns', 'hostedZoneId'],
];
const COUNTS: Path[] = [
  ['services', 0, 'dns', 'ttl'],
  ['services', 0, 'health', 'failuresBeforeIncident'],
];
/** Where a service names a server or a host: [path, names a MySQL server?]. */
const REFERENCES: [Path, boolean][] = [
  [['services', 0, 'database', 'primary'], true],
  [['services', 0, 'database', 'replica'], true],
  [['services', 2, 'database', 'drServer'], true],
  [['services', 0, 'restoreTest', 'scratchServer'], true],
  [['services', 0, 'vip', 'primaryHost'], false],
  [['services', 0, 'vip', 'drHost'], false],
  [['mysqlServers', SERVERS[0], 'sshHost'], false],
  [['services', 2, 'backup', 'paths', 0, 'host'], false],
];
/** The sandbox's production members (primary, replica, drServer) as [where a service names it, its name]. */
const MEMBERS: [Path, string][] = (doc0.services as { database?: Record<string, unknown> }[]).flatMap((svc, i) =>
  ['primary', 'replica', 'drServer']
    .filter((role) => typeof svc.database?.[role] === 'string')
    .map((role): [Path, string] => [['services', i, 'database', role], svc.database![role] as string]),
);
const SCRATCH_REF: Path = ['services', 0, 'restoreTest', 'scratchServer'];
const SCRATCH = get(doc0, SCRATCH_REF) as string;
const OBJECTS: Path[] = [
  [],
  ['services', 0],
  ['mysqlServers', SERVERS[0]],
  ['services', 0, 'dns'],
  ['regions'],
  ['backupSigning'],
];

const set =
  (p: Path) =>
  (value: unknown): Planted => ({ path: p, edit: 'set', value, expect: dotted(p) });
const notAString = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 2 }));
const wellFormedUnknown = fc
  .stringMatching(/^[a-z][a-z0-9-]{0,20}$/)
  .filter((n) => ![...SERVERS, ...HOSTS].includes(n));

const planted: fc.Arbitrary<Planted> = fc.oneof(
  fc.constantFrom(...REQUIRED).map((p): Planted => ({ path: p, edit: 'drop', expect: dotted(p) })),
  fc
    .tuple(
      fc.constantFrom(...PORTS),
      fc.oneof(
        fc.integer({ min: -1e6, max: 0 }),
        fc.integer({ min: 65536, max: 1e7 }),
        fc.double({ min: 1.5, max: 65534.5, noNaN: true }).filter((d) => !Number.isInteger(d)),
        fc.constantFrom<unknown>('abc', '', '22a', ' 22', '-1', 'NaN', null, true, false, [], [22], {}),
      ),
    )
    .map(([p, v]) => set(p)(v)),
  fc
    .tuple(
      fc.constantFrom(...DURATIONS),
      fc.oneof(
        fc.constantFrom<unknown>('soon', '5 x', '-1s', '1.5h', '', '10 weeks', 's', true, null, [], {}),
        fc.integer({ min: -1e6, max: -1 }),
        fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d)),
      ),
    )
    .map(([p, v]) => set(p)(v)),
  fc.tuple(fc.constantFrom(...STRINGS), fc.oneof(notAString, fc.constant(''))).map(([p, v]) => set(p)(v)),
  fc.constantFrom(...ENUMS).chain(([p, values]) =>
    fc
      .oneof(fc.string(), fc.constantFrom(...values.map((v) => v.toUpperCase())))
      .filter((v) => !values.includes(v))
      // A wrong discriminator (a notification's kind) leaves its siblings unjudged: nothing else planted there.
      .map((v): Planted => ({ ...set(p)(v), ...(p.at(-1) === 'kind' ? { needs: [p.slice(0, -1)] } : {}) })),
  ),
  fc
    .tuple(fc.constantFrom(...BOOLEANS), fc.constantFrom<unknown>('true', 'yes', 0, 1, null, []))
    .map(([p, v]) => set(p)(v)),
  fc
    .tuple(
      fc.constantFrom(...NAMES),
      fc.oneof(fc.constantFrom('', 'Shop', '9lives', 'has space', 'under_score', 'x'.repeat(64)), notAString),
    )
    .map(([p, v]) => set(p)(v)),
  fc
    .tuple(
      fc.constantFrom(...REGIONS),
      fc.oneof(fc.constantFrom('mars', 'US-EAST-1', 'us-east', 'useast1', ''), notAString),
    )
    .map(([p, v]) => set(p)(v)),
  fc
    .tuple(fc.constantFrom(...URLS), fc.oneof(fc.constantFrom('not a url', '127.0.0.1:8080', '', '//x'), notAString))
    .map(([p, v]) => set(p)(v)),
  fc
    .tuple(
      fc.constantFrom(...SECRETS),
      fc.oneof(
        fc.string({ minLength: 1 }), // a secret value in the inventory instead of a reference
        fc.constantFrom<unknown>(
          { env: '' },
          { file: '' },
          { file: 1 },
          { env: 'X', file: 'y' },
          { vault: 'x' },
          null,
          [],
        ),
      ),
    )
    .map(([p, v]) => set(p)(v)),
  fc
    .tuple(
      fc.constantFrom(...ZONE_IDS),
      fc.oneof(
        fc.constantFrom<unknown>('', 'sandbox.internal', 'z0123', 'Z', '/hostedzone/', 'hostedzone/Z1', 'Z1 Z2', 'Z-1'),
        fc.string().filter((v) => !/^(\/hostedzone\/)?Z[A-Z0-9]{1,32}$/.test(v)),
        notAString,
      ),
    )
    .map(([p, v]) => set(p)(v)),
  fc
    .tuple(
      fc.constantFrom(...COUNTS),
      fc.oneof(fc.integer({ min: -1e6, max: 0 }), fc.constantFrom<unknown>('60', 1.5, null)),
    )
    .map(([p, v]) => set(p)(v)),
  fc.tuple(fc.constantFrom(...REFERENCES), wellFormedUnknown).map(([[p], name]) => set(p)(name)),
  // A backed-up database name reaches mariadb-dump's arguments: one that reads as an option, quotes its way out or
  // ends a line is refused by its path.
  fc
    .tuple(
      fc.constantFrom<Path>(['services', 0, 'backup', 'databases'], ['services', 2, 'backup', 'databases']),
      fc.constantFrom<unknown>(
        '--no-data',
        '-r/tmp/x',
        'shop`x',
        "shop'",
        'sh op',
        'shop\nDROP',
        'shop;',
        '',
        'x'.repeat(65),
        7,
      ),
    )
    .map(([p, v]): Planted => ({ path: [...p, 0], edit: 'set', value: v, expect: dotted([...p, 0]) })),
  fc
    .tuple(
      fc.constantFrom(...HOST_PATHS),
      fc.oneof(
        fc.constantFrom<unknown>('', 'srv/wiki', '~/uploads', '/srv/../etc', '/srv/wiki/', '/srv/a\nb', '/srv/\u0000'),
        notAString,
      ),
    )
    .map(([p, v]) => set(p)(v)),
  fc
    .tuple(
      fc.constantFrom(...EXCLUDES),
      fc.oneof(
        fc.constantFrom<unknown>('', '/etc', '../up', 'a/../../b', 'x;rm -rf /', '$(id)', 'a\nb', '`id`'),
        notAString,
      ),
    )
    .map(([p, v]) => set(p)(v)),
  // Webhook URLs carry tokens: only a secret reference holds one, never the URL itself (nor a malformed reference).
  fc
    .tuple(
      fc.constantFrom<Path>(['services', 0, 'applicationWebhook'], ['notifications', 0, 'url']),
      fc.oneof(
        fc.constantFrom<unknown>(
          'https://hooks.slack.com/services/T000/B000/XXXXXXXX',
          'http://127.0.0.1:8080/failover',
          'not a url',
          '',
        ),
        fc.constantFrom<unknown>({ env: '' }, { file: '' }, { url: 'https://x' }, { env: 'X', file: 'y' }, null, [], 5),
      ),
    )
    .map(([p, v]) => set(p)(v)),
  // Unsigned backups are accepted only before a backup id, never by a switch.
  fc
    .oneof(
      fc.constantFrom<unknown>('yesterday', '2024-01-01', '20240101T030000', '', true, 0, null, ['20240101T030000Z']),
      fc.string().filter((v) => !/^\d{8}T\d{6}Z$/.test(v)),
    )
    .map(set(['backupSigning', 'acceptUnsignedBefore'])),
  fc.constantFrom<unknown>('x', { file: '' }, [{ vault: 'k' }], null).map(set(['backupSigning', 'trustedPublicKeys'])),
  // Object Lock on a destination: an object with a mode (governance or compliance), nothing else.
  fc
    .tuple(
      fc.constantFrom<Path>(
        ['services', 0, 'backup', 'destinations', 'offsite', 'objectLock'],
        ['services', 2, 'backup', 'destinations', 'primary', 'objectLock'],
      ),
      fc.constantFrom<unknown>(
        'governance',
        true,
        null,
        [],
        {},
        { mode: 'GOVERNANCE' },
        { mode: 'legal-hold' },
        { mode: 'compliance', days: 30 },
      ),
    )
    .map(([p, v]) => set(p)(v)),
  // An offline destination: an object with a verifiedWithin duration, nothing else.
  fc
    .tuple(
      fc.constantFrom<Path>(
        ['services', 0, 'backup', 'destinations', 'offsite', 'offline'],
        ['services', 0, 'backup', 'destinations', 'local', 'offline'],
      ),
      fc.constantFrom<unknown>(
        'yes',
        1,
        [],
        { verifiedWithin: 'weekly' },
        { verifiedWithin: -1 },
        { verifiedWithin: '7d', window: '02:00-04:00' },
      ),
    )
    .map(([p, v]) => set(p)(v)),
  // Encryption at rest: a destination's SSE-KMS key and the DR region's snapshot key are KMS key ids, ARNs or aliases.
  fc
    .tuple(
      fc.constantFrom<Path>(
        ['services', 0, 'backup', 'destinations', 'offsite', 'encryption'],
        ['services', 2, 'backup', 'destinations', 'primary', 'encryption'],
      ),
      fc.constantFrom<unknown>(
        'alias/drbook',
        {},
        { kmsKeyId: '' },
        { kmsKeyId: 'my key' },
        { kmsKeyId: 'arn:aws:s3:::bucket' },
        { kmsKeyId: 42 },
        { kmsKeyId: 'alias/drbook', algorithm: 'AES256' },
        null,
      ),
    )
    .map(([p, v]) => set(p)(v)),
  fc
    .oneof(
      fc.constantFrom<unknown>('', 'drbook', 'key/1234', 'arn:aws:kms:us-west-2:1:key/x', 42, null, { id: 'x' }),
      fc.string().filter((v) => !/^(alias\/[\w/+=,.@-]+)$/.test(v) && !/^[0-9a-f-]{32,36}$/.test(v)),
    )
    .map(set(['regions', 'drKmsKeyId'])),
  // A restore's scratch server that is a production member: by its name, or by another name for its host:port.
  fc
    .constantFrom(...MEMBERS)
    .map(([ref, server]): Planted => ({ ...set(SCRATCH_REF)(server), needs: [ref, ['mysqlServers', server]] })),
  fc.constantFrom(...MEMBERS).map(([ref, server]): Planted => ({
    path: ['mysqlServers', SCRATCH],
    edit: 'set',
    value: { ...(get(doc0, ['mysqlServers', SCRATCH]) as object), port: get(doc0, ['mysqlServers', server, 'port']) },
    expect: dotted(SCRATCH_REF),
    needs: [ref, SCRATCH_REF, ['mysqlServers', server]],
  })),
  fc.constant<Planted>({ path: ['services', 1, 'name'], edit: 'set', value: 'shop', expect: 'services.1.name' }),
  // Approvals: a policy that is neither named nor signed; signed with approvers that list no SSH key; a key that is
  // not an OpenSSH public key (garbage, a type alone, a truncated body, an unknown type, an RSA body under ed25519).
  fc
    .constantFrom<unknown>('SIGNED', 'ssh', '', 1, null, ['signed'])
    .map((v): Planted => ({ path: ['approvals'], edit: 'set', value: { policy: v }, expect: 'approvals.policy' })),
  fc.constant<Planted>({
    path: ['approvals'],
    edit: 'set',
    value: { policy: 'signed' },
    expect: 'approvers.0.sshKeys',
    needs: [['approvers', 0]],
  }),
  fc
    .tuple(
      fc.constantFrom(0, 1, 2),
      fc.constantFrom<unknown>(
        'not a key',
        'ssh-ed25519',
        'ssh-ed25519 AAAA',
        'ssh-dss AAAAB3NzaC1kc3MAAACBAP8',
        'ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQC7',
        'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI!!',
        1,
        null,
      ),
    )
    .map(([i, v]) => set(['approvers', i, 'sshKeys'])([v])),
  // A restoreTest input names its point-in-time queries: a name used twice, or no SQL, is refused.
  fc
    .constantFrom<unknown>(
      [{ name: 'orders-have-customers', sql: 'SELECT 1', expect: 1 }],
      [{ name: 'x'.repeat(201), sql: 'SELECT 1', expect: 1 }],
      [{ name: 'no-sql', expect: 1 }],
      'SELECT 1',
    )
    .map(set(['services', 0, 'restoreTest', 'pointInTimeQueries'])),
  fc
    .tuple(
      fc.constantFrom(...OBJECTS),
      fc.oneof(fc.constantFrom('surprise', 'Name', 'passwd', '__proto__'), fc.string({ minLength: 1, maxLength: 12 })),
    )
    .filter(([p, key]) => !(key in (get(doc0, p) as object)))
    .map(([p, key]): Planted => ({ path: [...p, key], edit: 'set', value: 1, expect: dotted(p) || '(root)', key })),
);

const isPrefix = (a: Path, b: Path) => a.length <= b.length && a.every((x, i) => x === b[i]);
const firstName: Path = ['services', 0, 'name'];
/** The duplicate "shop" at services.1 is a duplicate only while services.0 is still named shop. */
const hidesDuplicate = (ps: Planted[]) =>
  ps.some((p) => dotted(p.path) === 'services.1.name' && p.value === 'shop') &&
  ps.some((p) => isPrefix(p.path, firstName) || isPrefix(firstName, p.path));
/** One to five problems, none inside another's (a dropped section hides what was planted in it). */
const plantedSets = fc
  .uniqueArray(planted, { minLength: 1, maxLength: 5, selector: (p) => dotted(p.path) })
  .filter((ps) => ps.every((a, i) => ps.every((b, j) => i === j || !isPrefix(a.path, b.path))))
  .filter((ps) => !hidesDuplicate(ps))
  .filter((ps) =>
    ps.every((a) =>
      (a.needs ?? []).every((n) => ps.every((b) => a === b || !(isPrefix(b.path, n) || isPrefix(n, b.path)))),
    ),
  );

function get(doc: unknown, p: Path): unknown {
  return p.reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], doc);
}

function plant(ps: Planted[]): Record<string, unknown> {
  const doc = sandboxDoc();
  for (const p of ps) {
    const parent = get(doc, p.path.slice(0, -1)) as Record<string | number, unknown>;
    const last = p.path[p.path.length - 1];
    if (p.edit === 'drop') delete parent[last];
    else Object.defineProperty(parent, last, { value: p.value, enumerable: true, writable: true, configurable: true });
  }
  return doc;
}

/** The problems an invalid document is rejected with, or an error saying it was accepted or crashed. */
function problemsOf(run: () => unknown, what: string): string[] {
  try {
    run();
  } catch (err) {
    if (err instanceof InventoryError) return err.problems;
    throw new Error(`${what}: crashed with ${String(err)}`);
  }
  throw new Error(`${what}: accepted`);
}

function expectListed(problems: string[], ps: Planted[]) {
  for (const p of ps) {
    const listed = problems.some(
      (line) =>
        (line.startsWith(`${p.expect}: `) || line.startsWith(`${p.expect}.`)) &&
        (p.key === undefined || line.includes(`"${p.key}"`)),
    );
    if (!listed)
      throw new Error(
        `${p.key ? `unknown key "${p.key}" at ` : ''}${p.expect} not listed in:\n  ${problems.join('\n  ')}`,
      );
  }
}

let tried = 0;

describe('bad inventories (fast-check)', () => {
  afterAll(() => {
    console.log(`fast-check: ${tried} inventories tried: every planted problem listed by path, no crash`);
  });

  test('the sandbox document the problems are planted in is valid', () => {
    expect(() => parseInventory(sandboxDoc())).not.toThrow();
  });

  // Found by the property below on some seeds: zod's refinements stop at an int failure or a missing section, and
  // the cross-checks that read other sections (SSH hosts, signed approvers) were skipped with them.
  test.each<[string, Planted[]]>([
    [
      'services dropped',
      [
        { path: ['services'], edit: 'drop', expect: 'services' },
        {
          path: ['mysqlServers', 'db-primary', 'sshHost'],
          edit: 'set',
          value: 'a',
          expect: 'mysqlServers.db-primary.sshHost',
        },
      ],
    ],
    [
      'a non-integer TTL',
      [{ path: ['services', 0, 'dns', 'ttl'], edit: 'set', value: 1.5, expect: 'services.0.dns.ttl' }],
    ],
  ])('signed approvers without keys and SSH host references are listed beside %s', (_, ps) => {
    const signed: Planted = {
      path: ['approvals'],
      edit: 'set',
      value: { policy: 'signed' },
      expect: 'approvers.0.sshKeys',
    };
    expectListed(
      problemsOf(() => parseInventory(plant([...ps, signed])), 'inventory'),
      [...ps, signed],
    );
  });

  test('every planted problem is listed by its path, all of them at once', () => {
    fc.assert(
      fc.property(plantedSets, (ps) => {
        tried++;
        expectListed(
          problemsOf(() => parseInventory(plant(ps)), JSON.stringify(ps)),
          ps,
        );
      }),
      { numRuns: 500 },
    );
  });

  test('the loader lists the same problems from a YAML file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'drbook-bad-inventory-'));
    try {
      fc.assert(
        fc.property(plantedSets, (ps) => {
          tried++;
          const file = path.join(dir, 'inventory.yaml');
          writeFileSync(file, YAML.stringify(plant(ps)));
          const problems = problemsOf(() => loadInventory(file, {}), JSON.stringify(ps));
          expectListed(problems, ps);
          const error = (() => {
            try {
              loadInventory(file, {});
            } catch (err) {
              return err as InventoryError;
            }
          })()!;
          if (!error.message.startsWith(`${file}: ${problems.length} problem(s) in the inventory:`))
            throw new Error(`unclear message: ${error.message.slice(0, 200)}`);
        }),
        { numRuns: 60 },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(
    'any text, or the sandbox file with lines cut out, ' + 'is an InventoryError or a valid inventory, never a crash',
    () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'drbook-bad-inventory-'));
      const lines = text.split('\n');
      const cut = fc
        .uniqueArray(fc.nat({ max: lines.length - 1 }), { minLength: 1, maxLength: 8 })
        .map((drop) => lines.filter((_, i) => !drop.includes(i)).join('\n'));
      try {
        fc.assert(
          fc.property(
            fc.oneof(cut, fc.string({ maxLength: 300 }), fc.constantFrom('', '---', '[]', 'null', ': :', '{')),
            (t) => {
              tried++;
              const file = path.join(dir, 'inventory.yaml');
              writeFileSync(file, t);
              try {
                loadInventory(file, {});
              } catch (err) {
                if (!(err instanceof InventoryError))
                  throw new Error(`crashed with ${String(err)} on ${JSON.stringify(t)}`);
                if (!err.problems.length || err.problems.some((p) => !/^[^\s:]+: /.test(p)))
                  throw new Error(`a problem without its path: ${JSON.stringify(err.problems)}`);
              }
            },
          ),
          { numRuns: 300 },
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
