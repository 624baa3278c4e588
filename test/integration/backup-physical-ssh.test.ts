/**
 * The physical backup where a real estate takes it: on the database host, over SSH. In the sandbox db-primary's
 * sshHost is primary-host, whose commands run inside the stack's primary network namespace; that namespace cannot
 * reach the server over TCP, so mariabackup there connects through the server's unix socket (the inventory's
 * `socket`), as an SRE on the box would. Proven from outside: the mariabackup process seen in the process list runs
 * in that namespace, no process ever has a secret on its command line, its private directory (defaults file) is
 * gone from the host afterwards, the copy is verified in every destination with the GTID in its manifest, and it
 * restores with the marker rows as at the copy. A host presenting another key is refused before anything runs, and
 * a server without an sshHost on the worker's own host is copied on the worker. Under a prefix and directory of
 * the tests' own.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import type { RowDataPacket } from 'mysql2/promise';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { utils } from 'ssh2';
import { fingerprintOf } from '../../activities/ssh';
import { serviceBackup } from '../../workflows';
import type { BackupManifest } from '../../contract';
import { isolatedBackups, type IsolatedBackups } from '../helpers/backups';
import { netns } from '../helpers/estate';
import { sandboxSecrets } from '../helpers/secrets';
import { buildAdapters, eventually, failureType, sandbox, sql, temporal, type TemporalHarness } from '../helpers/stack';

jest.setTimeout(600_000); // like restore-physical: a serviceBackup, then a restore, on a shared machine

const base = sandbox();
const physicalShop = (edit: (inv: IsolatedBackups['loaded']['inventory']) => void = () => undefined) =>
  isolatedBackups(
    base,
    (inv) => {
      const shop = inv.services.find((s) => s.name === 'shop')!;
      shop.backup!.physical = true;
      delete shop.rds; // no RDS snapshot: this file is about the database host
      edit(inv);
    },
    'drbook-physical-ssh-test',
  );

/** Every watcher's timer, stopped after the file also when a test failed or timed out before its own stop. */
const watchers: NodeJS.Timeout[] = [];
afterAll(() => watchers.forEach((t) => clearInterval(t)));

/**
 * The machine's process list, read from /proc every 50 ms until stopped: every command line holding a secret
 * (masked), and every mariabackup copying this stack's primary, with its network namespace.
 */
function watchProcesses(secrets: string[], datadir: string) {
  const leaks = new Set<string>();
  const copies = new Map<number, { pid: number; args: string[]; netns: string }>();
  const look = () => {
    for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      let args: string[];
      let netnsLink: string;
      try {
        args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
        netnsLink = readlinkSync(`/proc/${pid}/ns/net`);
      } catch {
        continue; // gone meanwhile
      }
      const line = args.join(' ');
      for (const s of secrets) if (line.includes(s)) leaks.add(`${pid} ${args[0]}: ${line.split(s).join('<secret>')}`);
      if (path.basename(args[0] ?? '') === 'mariabackup' && args.includes('--backup') && line.includes(datadir))
        copies.set(Number(pid), { pid: Number(pid), args, netns: netnsLink });
    }
  };
  look();
  const timer = setInterval(look, 50);
  watchers.push(timer);
  const seen = () => ({ leaks: [...leaks], copies: [...copies.values()] });
  return {
    seen,
    stop() {
      clearInterval(timer);
      look();
      return seen();
    },
  };
}

/** The private directory (defaults file) a mariabackup command line names. */
const workDirOf = (args: string[]) =>
  path.dirname(args.find((x) => x.startsWith('--defaults-extra-file='))!.split('=')[1]);

async function primaryDatadir(): Promise<string> {
  const conn = await sql(base, 'db-primary');
  try {
    const [[d]] = await conn.query<RowDataPacket[]>('SELECT @@datadir AS d');
    return String(d.d);
  } finally {
    await conn.end();
  }
}

describe('over SSH on the database host (primary-host, inside its network namespace)', () => {
  const t = physicalShop();
  const adapters = buildAdapters(t.loaded);
  const a = adapters.activities;
  const tag = randomUUID().slice(0, 8);
  const BEFORE = `physical-ssh-before-${tag}`;
  const AFTER = `physical-ssh-after-${tag}`;
  let h: TemporalHarness;
  beforeAll(async () => {
    h = await temporal(t.loaded);
  });
  afterAll(async () => {
    await h?.close();
    const conn = await sql(base, 'db-primary');
    await conn.query('DELETE FROM shop.orders WHERE customer IN (?, ?)', [BEFORE, AFTER]);
    await conn.end();
    await adapters.close();
    await t.cleanUp();
  });

  test(
    'serviceBackup copies db-primary on primary-host through its socket: in the namespace, no secret on any ' +
      'command line, its defaults file gone, verified everywhere with the GTID, and it restores with the rows as at ' +
      'the copy',
    async () => {
      const primary = await sql(base, 'db-primary');
      const expected: { database: string; table: string; rows: number }[] = [];
      const datadir = await primaryDatadir();
      try {
        await primary.query("INSERT INTO shop.orders (customer, amount_cents, source) VALUES (?, 1, 'physical-ssh')", [
          BEFORE,
        ]);
        const [tables] = await primary.query<RowDataPacket[]>(
          "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop' AND TABLE_TYPE = " +
            "'BASE TABLE'",
        );
        for (const { t: table } of tables as { t: string }[]) {
          const [[c]] = await primary.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM shop.\`${table}\``);
          expected.push({ database: 'shop', table, rows: Number(c.n) });
        }
      } finally {
        await primary.end();
      }

      const backupId = '20240601T030000Z';
      const watcher = watchProcesses([...sandboxSecrets(base).values()], datadir);
      let seen: ReturnType<typeof watcher.stop>;
      try {
        const result = await h.withWorkers(a, () =>
          h.client.workflow.execute(serviceBackup, {
            args: [{ service: 'shop', backupId, snapshots: false }],
            taskQueue: h.taskQueue,
            workflowId: `backup-physical-ssh-${randomUUID()}`,
            workflowExecutionTimeout: '240s',
          }),
        );
        expect(result.physical?.manifestKey).toBe(`shop/physical/${backupId}/manifest.json`);
      } finally {
        seen = watcher.stop();
      }
      const after = await sql(base, 'db-primary');
      await after.query("INSERT INTO shop.orders (customer, amount_cents, source) VALUES (?, 1, 'physical-ssh')", [
        AFTER,
      ]);
      await after.end();

      // Where it ran: the step says primary-host, and the process itself sat in the primary namespace, not the
      // worker's.
      const manifest = JSON.parse(
        readFileSync(path.join(t.local, 'shop/physical', backupId, 'manifest.json'), 'utf8'),
      ) as BackupManifest;
      const primaryNs = `net:[${statSync(`/run/netns/${netns.primary}`).ino}]`;
      expect(primaryNs).not.toBe(readlinkSync('/proc/self/ns/net'));
      expect(seen.copies.length).toBeGreaterThan(0);
      for (const c of seen.copies) expect(c.netns).toBe(primaryNs);
      expect(seen.leaks).toEqual([]);

      // Its credentials came from a defaults file in a private directory on the host, gone once mariabackup exited.
      const dirs = [...new Set(seen.copies.map((c) => workDirOf(c.args)))];
      expect(dirs).toEqual([expect.stringMatching(/\/drbook-mariabackup-\w+$/)]);
      const dir = dirs[0];
      const onHost = await a.runRemoteCommand({
        host: 'primary-host',
        command: `ip netns identify $$; ls -A ${dir} 2>&1; test ! -e ${dir}`,
        allowFailure: true,
      });
      expect(onHost.stdout).toMatch(new RegExp(`^${netns.primary}\\n.*No such file or directory\\n$`));
      expect(onHost.exitCode).toBe(0);

      // Verified in every destination (size and SHA-256 read back), at the GTID mariabackup reported.
      expect(manifest).toMatchObject({ kind: 'physical', verified: true, source: { server: 'db-primary' } });
      expect(manifest.copies.map((c) => [c.destination, c.size, c.sha256])).toEqual(
        ['local', 'primary', 'offsite'].map((d) => [d, manifest.object.size, manifest.object.sha256]),
      );
      expect(manifest.position.gtid).toMatch(/^\d+-\d+-\d+/);
      expect(manifest.tools.mariabackup).toMatch(/^mariabackup .*MariaDB server/);
      for (const c of manifest.copies)
        await expect(
          a.verifyCopy({
            service: 'shop',
            backupId,
            destination: c.destination,
            size: manifest.object.size,
            sha256: manifest.object.sha256,
            kind: 'physical',
            key: manifest.object.key,
          }),
        ).resolves.toMatchObject({ size: manifest.object.size, sha256: manifest.object.sha256 });

      // And it restores: the row written before the copy is there, the one written after is not, every count as at the
      // copy.
      const r = await a.restorePhysicalIntoScratch({
        service: 'shop',
        backupId,
        destination: 'offsite',
        size: manifest.object.size,
        sha256: manifest.object.sha256,
        databases: manifest.databases.filter((d) => d === 'shop'),
        gtid: manifest.position.gtid,
        expectedTables: expected,
        queries: [
          { name: 'before', sql: `SELECT COUNT(*) FROM orders WHERE customer = '${BEFORE}'`, expect: 1 },
          { name: 'after', sql: `SELECT COUNT(*) FROM orders WHERE customer = '${AFTER}'`, expect: 0 },
        ],
      });
      expect(r.checks.map((c) => [c.name, c.ok])).toEqual([
        ['physical-schema-present', true],
        ['physical-row-counts', true],
        ['physical-position', true],
        ['physical-query:before', true],
        ['physical-query:after', true],
      ]);
      expect(r.gtid).toBe(manifest.position.gtid);
      expect(r.cleanedUp).toBe(true);
    },
  );
});

test(
  'cancelled while it streams: ' +
    'mariabackup on the host stops, its private directory is removed, nothing is published',
  async () => {
    const t = physicalShop();
    const adapters = buildAdapters(t.loaded);
    const watcher = watchProcesses([], await primaryDatadir());
    try {
      // the failure is expected
      const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
      const backupId = '20240604T030000Z';
      const running = env.run(adapters.activities.takePhysicalBackup, { service: 'shop', backupId });
      const outcome = running.then(
        () => 'completed',
        (err: Error) => err.message,
      );
      const copy = await eventually(async () => watcher.seen().copies[0], 60_000, 'mariabackup on primary-host');
      env.cancel();
      expect(await outcome).toBe('cancelled');
      // The channel closed under it: its next write fails, it exits, and the shell's trap removes the directory.
      await eventually(async () => !existsSync(`/proc/${copy.pid}`), 30_000, `mariabackup ${copy.pid} to exit`);
      const dir = workDirOf(copy.args);
      const onHost = await eventually(
        async () =>
          (
            await adapters.activities.runRemoteCommand({
              host: 'primary-host',
              command: `test ! -e ${dir}`,
              allowFailure: true,
            })
          ).exitCode === 0,
        30_000,
        `${dir} removed on primary-host`,
      );
      expect(onHost).toBe(true);
      for (const store of t.stores.forService('shop')) expect(await store.list('shop/physical/')).toEqual([]);
    } finally {
      watcher.stop();
      await adapters.close();
      await t.cleanUp();
    }
  },
);

test(
  'a database host presenting another host key than the pinned one is refused (HostKeyMismatch): ' +
    'nothing runs, nothing is stored',
  async () => {
    const impostor = fingerprintOf(Buffer.from(utils.generateKeyPairSync('ed25519').public.split(' ')[1], 'base64'));
    const t = physicalShop((inv) => {
      inv.sshHosts['primary-host'].hostKey = { fingerprint: impostor };
    });
    const adapters = buildAdapters(t.loaded);
    try {
      const err = await adapters.activities
        .takePhysicalBackup({ service: 'shop', backupId: '20240602T030000Z' })
        .catch((e: unknown) => e);
      expect(failureType(err)).toBe('HostKeyMismatch');
      expect((err as Error).message).toMatch(
        /^primary-host \(.*\) presented host key SHA256:\S+, which is not the pinned key/,
      );
      for (const store of t.stores.forService('shop')) expect(await store.list('shop/physical/')).toEqual([]);
    } finally {
      await adapters.close();
      await t.cleanUp();
    }
  },
);

test(
  'a server with no sshHost on the worker own host ' + 'is copied on the worker (over TCP without a socket)',
  async () => {
    const t = physicalShop((inv) => {
      delete inv.mysqlServers['db-primary'].sshHost;
      delete inv.mysqlServers['db-primary'].socket;
    });
    const adapters = buildAdapters(t.loaded);
    try {
      const backupId = '20240603T030000Z';
      const p = await adapters.activities.takePhysicalBackup({ service: 'shop', backupId });
      expect(p.ranOn).toBe('local');
      expect(p.position.gtid).toMatch(/^\d+-\d+-\d+/);
      expect(p.tools.mariabackup).toMatch(/^mariabackup .*MariaDB server/);
      for (const c of p.copies)
        await expect(
          adapters.activities.verifyCopy({
            service: 'shop',
            backupId,
            destination: c.destination,
            size: p.object.size,
            sha256: p.object.sha256,
            kind: 'physical',
            key: p.object.key,
          }),
        ).resolves.toMatchObject({ sha256: p.object.sha256 });
    } finally {
      await adapters.close();
      await t.cleanUp();
    }
  },
);
