/**
 * Restores never execute anything, and nothing unverified reaches a server that will serve traffic,
 * on the real stack. A backup made by the nightly runbook is rewritten the way someone who can write
 * the bucket could (test/helpers/backups.ts tamperWithDump):
 * - its SQL holds a mariadb client command (`\! touch <file>`) and its manifest is resealed to match:
 *   the restore test and a cold failover (wiki) both fail naming the refused line; the file never appears;
 * - its object is changed but the manifest is not: a cold failover fails with BackupCorrupt after one
 *   attempt (BackupCorrupt is not retried), and the DR server never sees a byte of it.
 * Each test puts the sandbox back (the cold failover's old primary, DNS, the DR server's databases).
 */
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import type { RowDataPacket } from 'mysql2/promise';
import { failover, restoreTest, serviceBackup } from '../../workflows';
import { backupIdAt } from '../../workflows/backup-policy';
import { approveUpdate, type RestoreTestResult } from '../../contract';
import { isolatedBackups, tamperWithDump } from '../helpers/backups';
import { atGate, buildAdapters, sandbox, sql, temporal, type TemporalHarness } from '../helpers/stack';

jest.setTimeout(300_000);

const base = sandbox();
const t = isolatedBackups(base, undefined, 'drbook-restore-hostile');
const adapters = buildAdapters(t.loaded);
let h: TemporalHarness;
/** How many times each activity ran (a corrupt backup must be streamed once). */
const attempts = new Map<string, number>();
const activities = {
  ...adapters.activities,
  restoreIntoDrServer: async (args: Parameters<typeof adapters.activities.restoreIntoDrServer>[0]) => {
    attempts.set('restoreIntoDrServer', (attempts.get('restoreIntoDrServer') ?? 0) + 1);
    return adapters.activities.restoreIntoDrServer(args);
  },
};

const marker = () => path.join(tmpdir(), `drbook-hostile-${randomUUID().slice(0, 8)}`);
/** The dump with its sandbox-mode header gone (the attacker writes the object) and `line` after its first USE. */
const withLine = (line: string) => (dumpSql: string) => {
  const out = dumpSql.replace(/^\/\*M!999999\\- enable the sandbox mode \*\/ ?\n/, '');
  expect(out).not.toContain('sandbox mode');
  const use = /^USE `[^`]+`;\n/m.exec(out)!;
  return `${out.slice(0, use.index + use[0].length)}${line}\n${out.slice(use.index + use[0].length)}`;
};

async function backup(service: string): Promise<string> {
  const backupId = backupIdAt(Date.now());
  await h.client.workflow.execute(serviceBackup, {
    args: [{ service, backupId, snapshots: false }],
    taskQueue: h.taskQueue,
    workflowId: `backup-${service}-${randomUUID().slice(0, 8)}`,
    workflowExecutionTimeout: '120s',
  });
  return backupId;
}

async function databasesOn(server: string): Promise<string[]> {
  const c = await sql(base, server);
  try {
    const [rows] = await c.query<RowDataPacket[]>('SELECT SCHEMA_NAME AS s FROM information_schema.SCHEMATA');
    return rows.map((r) => String(r.s)).sort();
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  h = await temporal(t.loaded);
});

afterAll(async () => {
  await t.cleanUp();
  await h?.close();
  await adapters.close();
});

describe('a restore never executes what a backup holds', () => {
  test.each([
    ['starting a line', (file: string) => `\\! touch ${file}`],
    ['inside a statement', (file: string) => `SELECT 1 \\! touch ${file}\n;`],
  ])('restoreTest: a client command %s is refused, named, and never runs', async (_where, command) => {
    const file = marker();
    try {
      await h.withWorkers(activities, async () => {
        const backupId = await backup('shop');
        await tamperWithDump(t.stores, adapters.activities, 'shop', backupId, withLine(command(file)), {
          reseal: true,
        });
        const failure = await h.client.workflow
          .execute(restoreTest, {
            args: [{ service: 'shop', backupId, rds: false }],
            taskQueue: h.taskQueue,
            workflowId: `restore-${randomUUID()}`,
            workflowExecutionTimeout: '120s',
          })
          .then(
            () => null,
            (err: unknown) => err,
          );
        expect(failure).toBeInstanceOf(WorkflowFailedError);
        const cause = (failure as WorkflowFailedError).cause as ApplicationFailure;
        expect(cause.type).toBe('RestoreTestFailed');
        expect(cause.message).toContain('failed at check restore');
        expect(cause.message).toMatch(/client command/);
        expect(cause.message).toContain('\\!');
        expect((cause.details![0] as RestoreTestResult).failedCheck).toBe('restore');
      });
      expect(existsSync(file)).toBe(false);
    } finally {
      rmSync(file, { force: true });
    }
  });
});

describe('cold failover (wiki) restores only a verified backup, and runs nothing in it', () => {
  const wiki = base.inventory.services.find((s) => s.name === 'wiki')!;
  const drServer = wiki.database!.drServer!;

  afterEach(async () => {
    await h.terminate(['failover-wiki']);
    // Cold failover has no failback runbook: put the sandbox back by hand (as failover-faults does).
    await adapters.activities
      .unfencePrimary({ server: wiki.database!.primary, heartbeatEvent: wiki.database!.heartbeatEvent })
      .catch(() => undefined);
    const dr = await sql(base, drServer);
    try {
      await dr.query('SET SESSION sql_log_bin = 0');
      await dr.query('DROP DATABASE IF EXISTS wiki');
      await dr.query('SET GLOBAL read_only = ON');
    } finally {
      await dr.end();
    }
    await adapters.activities.switchDnsRecord({
      zone: wiki.dns!.hostedZone,
      name: wiki.dns!.record,
      type: 'CNAME',
      ttl: wiki.dns!.ttl,
      value: wiki.dns!.primaryValue,
    });
  });

  async function failOver(): Promise<ApplicationFailure> {
    return h.withWorkers(activities, async () => {
      const handle = await h.client.workflow.start(failover, {
        taskQueue: h.taskQueue,
        workflowId: 'failover-wiki',
        args: [{ service: 'wiki', mode: 'drill', reason: 'hostile backup test' }],
      });
      await atGate(handle, 'promote');
      await handle.executeUpdate(approveUpdate, { args: [{ step: 'promote', approver: 'carol' }] });
      const failure = await handle.result().then(
        () => null,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(WorkflowFailedError);
      return (failure as WorkflowFailedError).cause as ApplicationFailure;
    });
  }

  test('a client command in the SQL (manifest resealed) is refused naming the line; it never runs', async () => {
    const file = marker();
    try {
      const backupId = await h.withWorkers(activities, () => backup('wiki'));
      await tamperWithDump(t.stores, adapters.activities, 'wiki', backupId, withLine(`\\! touch ${file}`), {
        reseal: true,
      });
      const cause = await failOver();
      expect(cause.type).toBe('RestoreRefused');
      expect(cause.message).toMatch(/line \d+ of the dump is a mariadb client command, refused/);
      expect(cause.message).toContain(`\\\\! touch ${file}`); // the line, JSON-quoted
      expect(existsSync(file)).toBe(false);
      // The old primary is writable again (the failed run unfenced it).
      expect((await adapters.activities.pingDatabase({ server: wiki.database!.primary })).readOnly).toBe(false);
    } finally {
      rmSync(file, { force: true });
    }
  });

  test(
    'a tampered object (manifest unchanged) fails BackupCorrupt after one attempt; ' + 'the DR server never sees it',
    async () => {
      const backupId = await h.withWorkers(activities, () => backup('wiki'));
      await tamperWithDump(
        t.stores,
        adapters.activities,
        'wiki',
        backupId,
        withLine('CREATE TABLE planted_by_attacker (x INT);'),
        { reseal: false },
      );
      const before = await databasesOn(drServer);
      attempts.clear();
      const cause = await failOver();
      expect(cause.type).toBe('BackupCorrupt');
      expect(await databasesOn(drServer)).toEqual(before);
      expect(attempts.get('restoreIntoDrServer')).toBe(1);
      expect(cause.message).toMatch(/does not match the manifest's [0-9a-f]{64}; nothing was loaded into/);
    },
  );
});
