/**
 * Scratch is never production, at run time, on the real stack. The inventory can be wrong about what a server is,
 * so these inventories lie after validation (contract/inventory/index.ts refuses the same lies at load): a scratch
 * entry under a new name at the address of a real production member. Before anything is written, the target is read
 * (activities/mysql/scratch-isolation.ts) and refused with ScratchIsProduction:
 * - the restore test into "scratch" that is shop's replica: the run fails at check scratch-isolated, the restore is
 *   tried once, and the replica holds no restore_* database and no transaction of its own afterwards;
 * - a restore into shop's primary (replicas attached), a PITR replay into wiki's primary (a member by identity
 *   alone), an isolated drill's copy into the replica; a clean-up there writes nothing;
 * - a cold failover's restore into a drServer that is really the replica, or a drServer that is writable.
 */
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import type { RowDataPacket } from 'mysql2/promise';
import type { LoadedInventory } from '../../config/load';
import { restoreTest } from '../../workflows';
import type { RestoreTestResult } from '../../contract';
import { backupIdAt } from '../../workflows/backup-policy';
import { isolatedBackups, publishBackup } from '../helpers/backups';
import { buildAdapters, failureType, sandbox, sql, temporal, type TemporalHarness } from '../helpers/stack';

jest.setTimeout(180_000);

const base = sandbox();
const shopOf = (inv: LoadedInventory['inventory']) => inv.services.find((s) => s.name === 'shop')!;
const wikiOf = (inv: LoadedInventory['inventory']) => inv.services.find((s) => s.name === 'wiki')!;
const REPLICA = shopOf(base.inventory).database!.replica!;
const PRIMARY = shopOf(base.inventory).database!.primary;
const WIKI_PRIMARY = wikiOf(base.inventory).database!.primary;
const COLD_DR = wikiOf(base.inventory).database!.drServer!;

/** A new name for a real server's address (no SSH host, no socket: it claims to be just a database). */
function alias(inv: LoadedInventory['inventory'], name: string, of: string) {
  const { host, port, user, password } = inv.mysqlServers[of];
  inv.mysqlServers[name] = { host, port, user, password };
}

// The lies, told after validation: shop's scratch is the replica; two more names for shop's and wiki's primaries.
const t = isolatedBackups(
  base,
  (inv) => {
    alias(inv, 'db-lies', REPLICA);
    alias(inv, 'db-lies-primary', PRIMARY);
    alias(inv, 'db-lies-wiki', WIKI_PRIMARY);
    shopOf(inv).restoreTest!.scratchServer = 'db-lies';
  },
  'drbook-scratch-isolation',
);
const adapters = buildAdapters(t.loaded);
const attempts = new Map<string, number>();
const activities = {
  ...adapters.activities,
  restoreIntoScratch: async (args: Parameters<typeof adapters.activities.restoreIntoScratch>[0]) => {
    attempts.set('restoreIntoScratch', (attempts.get('restoreIntoScratch') ?? 0) + 1);
    return adapters.activities.restoreIntoScratch(args);
  },
};
let h: TemporalHarness;

/** What a server holds that a restore would have left: restore_* / drill_* databases, and its own GTIDs. */
async function traces(server: string) {
  const conn = await sql(base, server);
  try {
    const [dbs] = await conn.query<RowDataPacket[]>(
      "SELECT SCHEMA_NAME AS s FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'restore\\_%' OR " +
        "SCHEMA_NAME LIKE 'drill\\_%'",
    );
    // A statement run on the server itself is logged under its own server_id (replicated ones keep the source's).
    const [[own]] = await conn.query<RowDataPacket[]>(
      'SELECT @@server_id AS id, @@gtid_binlog_state AS state, (SELECT COUNT(*) FROM ' +
        "information_schema.PROCESSLIST WHERE COMMAND = 'Slave_SQL') AS applying",
    );
    const mine = String(own.state)
      .split(',')
      .filter((g) => g.split('-')[1] === String(own.id));
    return { databases: dbs.map((r) => String(r.s)).sort(), ownGtids: mine, applying: Number(own.applying) };
  } finally {
    await conn.end();
  }
}

const refusal = async (p: Promise<unknown>) => {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(failureType(err)).toBe('ScratchIsProduction');
  return (err as ApplicationFailure).message;
};

beforeAll(async () => {
  h = await temporal(t.loaded);
});

afterAll(async () => {
  await h?.close();
  await t.cleanUp();
  await adapters.close();
});

test(
  "a restore test whose scratch is really shop's replica fails at scratch-isolated; " + 'the replica is untouched',
  async () => {
    const taken = await adapters.activities.dumpDatabase({ service: 'shop', backupId: backupIdAt(Date.now()) });
    await publishBackup(adapters.activities, taken);
    const before = await traces(REPLICA);
    attempts.clear();
    const failure = await h.withWorkers(activities, () =>
      h.client.workflow
        .execute(restoreTest, {
          args: [{ service: 'shop' }],
          taskQueue: h.taskQueue,
          workflowId: `restore-lies-${randomUUID().slice(0, 8)}`,
          workflowExecutionTimeout: '120s',
        })
        .then(
          () => null,
          (err: unknown) => err,
        ),
    );
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    const cause = (failure as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('RestoreTestFailed');
    expect((cause.details![0] as RestoreTestResult).failedCheck).toBe('scratch-isolated');
    expect(cause.message).toMatch(/scratch server db-lies \(server_id \d+ on .*\) is production: it is a replica/);
    expect(cause.message).toContain(`it is ${REPLICA} (the replica of shop)`);
    expect(cause.message).toContain('nothing was written to it');
    expect(attempts.get('restoreIntoScratch')).toBe(1); // non-retryable
    // Nothing written: no restore_* database, no transaction of the replica's own, still applying its primary's.
    expect(await traces(REPLICA)).toEqual(before);
    expect(before.applying).toBe(1);
  },
);

test(
  "a restore into shop's primary, " + "a replay into wiki's primary and a drill copy into the replica are refused",
  async () => {
    const primaryBefore = await traces(PRIMARY);
    const wikiBefore = await traces(WIKI_PRIMARY);
    const replicaBefore = await traces(REPLICA);
    const databases = [{ source: 'shop', scratch: `restore_shop_lies_${randomUUID().slice(0, 6)}` }];

    const intoPrimary = await refusal(
      adapters.activities.restoreIntoScratch({
        service: 'shop',
        backupId: '20250101T030000Z',
        destination: 'local',
        server: 'db-lies-primary',
        databases,
        size: 1,
        sha256: '0'.repeat(64),
      }),
    );
    expect(intoPrimary).toMatch(/replication source: 1 replica\(s\) attached/);
    expect(intoPrimary).toContain(`it is ${PRIMARY} (the primary of shop)`);

    // wiki's primary has no replica and replicates from nothing: only its identity gives it away.
    const intoWiki = await refusal(
      adapters.activities.replayBinlogsToPoint({
        service: 'shop',
        destination: 'local',
        sourceServer: PRIMARY,
        server: 'db-lies-wiki',
        databases,
        from: { gtid: '0-1-1', binlogFile: 'binlog.000001', binlogPos: 4 },
      }),
    );
    expect(intoWiki).toMatch(new RegExp(`is production: it is ${WIKI_PRIMARY} \\(the primary of wiki\\): both answer`));

    const drillCopy = await refusal(
      adapters.activities.copyReplicaToScratch({
        replica: REPLICA,
        scratch: 'db-lies',
        databases: ['shop'],
        heartbeatTable: 'drbook.heartbeat',
        copyId: 'lies',
      }),
    );
    expect(drillCopy).toContain('copying the DR replica into it');

    // Clean-up on a lying scratch writes nothing either: there is nothing of ours to drop.
    expect(
      await adapters.activities.dropScratchDatabase({ server: 'db-lies', databases: ['restore_shop_lies'] }),
    ).toEqual({ dropped: [], absent: ['restore_shop_lies'] });
    expect(
      await adapters.activities.dropDrillCopy({ scratch: 'db-lies', copyId: 'lies', databases: ['shop'] }),
    ).toEqual({
      dropped: [],
    });

    // (the primary's own GTIDs move on with its heartbeat: its databases are the evidence)
    expect((await traces(PRIMARY)).databases).toEqual(primaryBefore.databases);
    expect(await traces(WIKI_PRIMARY)).toEqual(wikiBefore);
    expect(await traces(REPLICA)).toEqual(replicaBefore);
  },
);

describe("cold failover's target (wiki's drServer)", () => {
  test('a drServer that is really the replica is refused before anything is dropped', async () => {
    const inventory = structuredClone(base.inventory);
    alias(inventory, 'db-lies-dr', REPLICA);
    wikiOf(inventory).database!.drServer = 'db-lies-dr';
    const lying = buildAdapters({ ...base, inventory });
    try {
      const before = await traces(REPLICA);
      const message = await refusal(
        lying.activities.restoreIntoDrServer({
          service: 'wiki',
          backupId: '20250101T030000Z',
          destination: 'local',
          sha256: '0'.repeat(64),
        }),
      );
      expect(message).toMatch(/wiki's drServer db-lies-dr .* cannot take a restore: it is a replica/);
      expect(message).toContain(`it is ${REPLICA} (the replica of shop)`);
      expect(await traces(REPLICA)).toEqual(before);
    } finally {
      await lying.close();
    }
  });

  test('a writable drServer (live already) is refused; read-only again, the same check passes', async () => {
    const dr = await sql(base, COLD_DR);
    try {
      await dr.query('SET GLOBAL read_only = OFF');
      const message = await refusal(
        adapters.activities.restoreIntoDrServer({
          service: 'wiki',
          backupId: '20250101T030000Z',
          destination: 'local',
          sha256: '0'.repeat(64),
        }),
      );
      expect(message).toMatch(/it is writable \(read_only OFF\): it may be serving wiki already/);
    } finally {
      await dr.query('SET GLOBAL read_only = ON');
      await dr.end();
    }
    // Read-only, it passes the check and fails further on, for want of that backup.
    const next = await adapters.activities
      .restoreIntoDrServer({
        service: 'wiki',
        backupId: '20250101T030000Z',
        destination: 'local',
        sha256: '0'.repeat(64),
      })
      .catch((e: unknown) => e);
    expect(failureType(next)).not.toBe('ScratchIsProduction');
  });
});
