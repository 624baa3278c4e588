import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { dataFilesHost, InventoryError, parseInventory, replicationAddress, targetsFor } from '../../contract';
import { expandEnv, loadInventory } from '../../config/load';
import { MysqlPools } from '../../activities/mysql';
import { SANDBOX_INVENTORY } from '../helpers/stack';

const sandboxDoc = () => YAML.parse(expandEnv(readFileSync(SANDBOX_INVENTORY, 'utf8'), {}, []));

function problemsOf(doc: unknown): string[] {
  try {
    parseInventory(doc);
  } catch (err) {
    if (err instanceof InventoryError) return err.problems;
    throw err;
  }
  throw new Error('expected the inventory to be rejected');
}

describe('inventory', () => {
  test('the sandbox inventory is valid and has the critical service shop', () => {
    const { inventory } = loadInventory(SANDBOX_INVENTORY, {});
    const shop = inventory.services.find((s) => s.name === 'shop')!;
    expect(shop.tier).toBe('critical');
    expect(targetsFor(shop)).toEqual({ rtoSeconds: 900, rpoSeconds: 300 });
    expect(shop.health.interval).toBe(5);
    expect(shop.backup!.archive.glacierAfter).toBe(90 * 86400);
    expect(inventory.mysqlServers['db-primary'].port).toBe(13306);
  });

  test('ports follow the environment', () => {
    const { inventory } = loadInventory(SANDBOX_INVENTORY, { DRBOOK_PRIMARY_PORT: '23306' });
    expect(inventory.mysqlServers['db-primary'].port).toBe(23306);
  });

  test('a bad inventory is rejected with every problem listed by path', () => {
    const doc = sandboxDoc();
    doc.regions.dr = 'mars';
    doc.services[0].tier = 'gold';
    doc.services[0].dns.ttl = -5;
    doc.services[0].health.interval = 'soon';
    doc.mysqlServers['db-primary'].password = 'plain-text-password';
    doc.services[0].surprise = true;
    const problems = problemsOf(doc);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^regions\.dr: /),
        expect.stringMatching(/^services\.0\.tier: /),
        expect.stringMatching(/^services\.0\.dns\.ttl: /),
        expect.stringMatching(/^services\.0\.health\.interval: expected a duration/),
        expect.stringMatching(/^mysqlServers\.db-primary\.password: /),
        expect.stringMatching(/^services\.0: .*surprise/),
      ]),
    );
    expect(problems.length).toBeGreaterThanOrEqual(6);
  });

  test('references to unknown servers and hosts are named', () => {
    const doc = sandboxDoc();
    doc.services[0].database.replica = 'db-nowhere';
    doc.services[0].vip.drHost = 'host-nowhere';
    doc.services.push({ ...doc.services[0] });
    const problems = problemsOf(doc);
    expect(problems).toEqual(
      expect.arrayContaining([
        'services.0.database.replica: unknown MySQL server "db-nowhere"',
        'services.0.vip.drHost: unknown SSH host "host-nowhere"',
        `services.${doc.services.length - 1}.name: duplicate service "shop"`,
      ]),
    );
  });

  test('services with backups need a backup-signing key; unsigned backups are accepted only before a backup id', () => {
    const doc = sandboxDoc();
    delete doc.backupSigning;
    expect(problemsOf(doc)).toContain(
      'backupSigning: services with backups (shop, wiki) need a backup-signing key: manifests are signed and ' +
        'verified before any restore',
    );
    // Without a backup section nothing is signed, so no key is needed.
    doc.services = doc.services.filter((s: { backup?: unknown }) => !s.backup);
    expect(() => parseInventory(doc)).not.toThrow();
    const lenient = sandboxDoc();
    lenient.backupSigning.acceptUnsignedBefore = true;
    expect(problemsOf(lenient)).toEqual([
      'backupSigning.acceptUnsignedBefore: Invalid input: expected string, received boolean',
    ]);
  });

  test('a scratch server that is a production member, by name or by host:port, is refused naming both', () => {
    const byName = sandboxDoc();
    byName.services[0].restoreTest.scratchServer = 'db-scratch'; // wiki's primary
    expect(problemsOf(byName)).toEqual([
      expect.stringMatching(
        new RegExp(
          String.raw`^services\.0\.restoreTest\.scratchServer: db-scratch is the primary of wiki: ` +
            String.raw`a restore writes restore_\* databases`,
        ),
      ),
    ]);
    // Another name for the replica's address (and "localhost" is 127.0.0.1 to the worker).
    const byAddress = sandboxDoc();
    byAddress.mysqlServers['db-restore-scratch'].host = 'localhost';
    byAddress.mysqlServers['db-restore-scratch'].port = byAddress.mysqlServers['db-replica'].port;
    expect(problemsOf(byAddress)).toEqual([
      `services.0.restoreTest.scratchServer: db-restore-scratch is at ` +
        `localhost:${byAddress.mysqlServers['db-replica'].port}, the address of db-replica, the replica of shop: a ` +
        `restore writes restore_* databases there with sql_log_bin = 0 (and a point-in-time replay applies binlog ` +
        `events); name a server that is no service's primary, replica or drServer`,
    ]);
    // A member's replication address counts too (the worker may reach it through a proxy), and drServers are members.
    const byReplicationAddress = sandboxDoc();
    byReplicationAddress.mysqlServers['db-cold-dr'].host = 'proxy.internal';
    byReplicationAddress.mysqlServers['db-cold-dr'].replication = {
      host: '127.0.0.1',
      port: byReplicationAddress.mysqlServers['db-restore-scratch'].port,
    };
    expect(problemsOf(byReplicationAddress)).toEqual([
      expect.stringMatching(
        /^services\.0\.restoreTest\.scratchServer: .* the address of db-cold-dr, the drServer of wiki/,
      ),
    ]);
    // Also beside a problem of another kind.
    byName.services[1].tier = 'gold';
    expect(problemsOf(byName)).toHaveLength(2);
  });

  test('the physical backup option: MariaDB only, and only where mariabackup can reach the data files', () => {
    const doc = sandboxDoc();
    doc.services[0].backup.physical = true;
    doc.services[0].database.engine = 'mysql';
    doc.mysqlServers['db-scratch'].host = 'wiki-db.internal'; // wiki's primary: no sshHost, not the worker
    doc.services[2].backup.physical = true;
    doc.mysqlServers['db-replica'].socket = 'run/mysqld.sock';
    expect(problemsOf(doc).sort()).toEqual([
      "mysqlServers.db-replica.socket: an absolute path on the server's host",
      'services.0.backup.physical: physical backups need MariaDB (mariabackup); xtrabackup for MySQL is not supported',
      "services.2.backup.physical: mariabackup must run where db-scratch's data files are: give " +
        "mysqlServers.db-scratch.sshHost (its host wiki-db.internal is not the worker's)",
    ]);
    // Each is listed also beside a problem of another kind (zod skips refinements once a field failed).
    doc.services[1].tier = 'gold';
    expect(problemsOf(doc)).toHaveLength(4);
    // The same option on MariaDB, with the servers' hosts as they are in the sandbox, is fine.
    const ok = sandboxDoc();
    ok.services[0].backup.physical = true;
    ok.services[2].backup.physical = true;
    expect(parseInventory(ok).services[0].backup!.physical).toBe(true);
  });

  test('mariabackup runs on the sshHost when there is one, on the worker only for a local server without one', () => {
    expect(dataFilesHost({ host: '127.0.0.1', sshHost: 'primary-host' })).toEqual({ ssh: 'primary-host' });
    expect(dataFilesHost({ host: 'db1.internal', sshHost: 'db1' })).toEqual({ ssh: 'db1' });
    for (const host of ['127.0.0.1', 'localhost', '::1']) expect(dataFilesHost({ host })).toBe('worker');
    expect(dataFilesHost({ host: '10.0.0.5' })).toBeNull();
    const { inventory } = loadInventory(SANDBOX_INVENTORY, { DRBOOK_PRIMARY_SOCKET: '/x/primary.sock' });
    expect(inventory.mysqlServers['db-primary']).toMatchObject({ sshHost: 'primary-host', socket: '/x/primary.sock' });
  });

  test(
    'file trees: two of a service with one tree id are refused; ' + 'the policy defaults to weekly + differential',
    () => {
      const doc = sandboxDoc();
      const wiki = doc.services[2].backup;
      expect(wiki.paths[0]).toMatchObject({ host: 'primary-host', exclude: ['cache', '*.tmp'] });
      wiki.paths = [
        { host: 'primary-host', path: '/srv/a/b' },
        { host: 'primary-host', path: '/srv/a_b' },
      ];
      delete wiki.files;
      expect(problemsOf(doc)).toEqual([
        'services.2.backup.paths.1.path: primary-host:/srv/a_b has the same tree id "primary-host_srv_a_b" as ' +
          'paths.0: one tree, one chain',
      ]);
      wiki.paths.pop();
      const parsed = parseInventory(doc).services[2].backup!;
      expect(parsed.files).toEqual({ full: 'weekly', between: 'differential', stateDir: '/var/lib/drbook' });
      expect(parsed.paths[0].exclude).toEqual([]);
    },
  );

  test('an unset variable without a default is a problem, reported with the rest', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'drbook-inv-'));
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(
      file,
      'version: 1\nregions: { primary: ${NOT_SET_ANYWHERE}, dr: us-west-2 }\napprovers: []\nservices: []\n',
    );
    expect(() => loadInventory(file, {})).toThrow(InventoryError);
    try {
      loadInventory(file, {});
    } catch (err) {
      const problems = (err as InventoryError).problems;
      expect(problems).toContain('(env): ${NOT_SET_ANYWHERE} is not set and has no default');
      expect(problems.some((p) => p.startsWith('approvers: '))).toBe(true);
    }
  });

  describe("a server's replication address (mysqlServers.<name>.replication)", () => {
    test("defaults to the worker's host and port; either part may be given alone", () => {
      const doc = sandboxDoc();
      doc.mysqlServers['db-primary'].replication = { host: '10.1.0.5', port: 3306 };
      doc.mysqlServers['db-replica'].replication = { host: 'db-replica.repl.internal' };
      doc.mysqlServers['db-scratch'].replication = { port: '3307' };
      const { mysqlServers: s } = parseInventory(doc);
      expect(replicationAddress(s['db-primary'])).toEqual({ host: '10.1.0.5', port: 3306 });
      expect(replicationAddress(s['db-replica'])).toEqual({ host: 'db-replica.repl.internal', port: 13307 });
      expect(replicationAddress(s['db-scratch'])).toEqual({ host: '127.0.0.1', port: 3307 });
      expect(replicationAddress(s['db-cold-dr'])).toEqual({ host: '127.0.0.1', port: 13309 });
      // The worker's own route is untouched.
      expect(s['db-primary']).toMatchObject({ host: '127.0.0.1', port: 13306 });
    });

    test(
      'the worker connects to host/port; ' +
        "CHANGE MASTER and a replica's reported source use the replication address",
      () => {
        const doc = sandboxDoc();
        // The worker reaches db-primary through a bastion on 127.0.0.2:6033; replicas use 10.1.0.5:3306.
        doc.mysqlServers['db-primary'] = {
          ...doc.mysqlServers['db-primary'],
          host: '127.0.0.2',
          port: 6033,
          replication: { host: '10.1.0.5', port: 3306 },
        };
        const pools = new MysqlPools(parseInventory(doc).mysqlServers, () => 'unused');
        expect(pools.target('db-primary')).toMatchObject({ host: '127.0.0.2', port: 6033 });
        expect(pools.replicationSource('db-primary')).toEqual({ host: '10.1.0.5', port: 3306 });
        expect(pools.replicationSource('db-replica')).toEqual({ host: '127.0.0.1', port: 13307 });
        expect(pools.serverAtReplicationAddress('10.1.0.5', 3306)).toBe('db-primary');
        // The worker's route is not where a replica replicates from.
        expect(pools.serverAtReplicationAddress('127.0.0.2', 6033)).toBeNull();
        expect(pools.serverAtReplicationAddress('127.0.0.1', 13307)).toBe('db-replica');
        expect(pools.serverAtReplicationAddress(null, null)).toBeNull();
        expect(() => pools.replicationSource('db-nowhere')).toThrow(/db-nowhere.*not in the inventory/);
      },
    );

    test('bad replication addresses are named by path', () => {
      const doc = sandboxDoc();
      doc.mysqlServers['db-primary'].replication = { host: '', port: 70000 };
      doc.mysqlServers['db-replica'].replication = {};
      doc.mysqlServers['db-scratch'].replication = { host: 'x', user: 'repl' };
      doc.mysqlServers['db-cold-dr'].replication = '10.0.0.1:3306';
      expect(problemsOf(doc)).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/^mysqlServers\.db-primary\.replication\.host: /),
          expect.stringMatching(/^mysqlServers\.db-primary\.replication\.port: /),
          'mysqlServers.db-replica.replication: a host, a port, or both',
          expect.stringMatching(/^mysqlServers\.db-scratch\.replication: .*user/),
          expect.stringMatching(/^mysqlServers\.db-cold-dr\.replication: /),
        ]),
      );
    });
  });

  test('emulator settings (aws.emulator) only with an emulator endpoint: on AWS the real checks apply', () => {
    const { inventory } = loadInventory(SANDBOX_INVENTORY, {});
    expect(inventory.aws.emulator).toEqual({
      rdsKeepsReplicaSourceAfterPromote: true,
      rdsPromotesBeforeAnswering: true,
    });
    const doc = sandboxDoc();
    delete doc.aws.endpoint;
    expect(problemsOf(doc)).toEqual([expect.stringMatching(/^aws\.emulator: .*aws\.endpoint/)]);
    doc.aws = { ...doc.aws, endpoint: 'http://127.0.0.1:5000', emulator: { rdsKeepsSource: true } };
    expect(problemsOf(doc)).toEqual([expect.stringMatching(/^aws\.emulator: .*rdsKeepsSource/)]);
  });

  test('the AWS example inventory is valid', () => {
    const { inventory } = loadInventory(path.join(__dirname, '..', '..', 'config', 'aws-example.yaml'), {});
    expect(inventory.aws.endpoint).toBeUndefined();
    expect(inventory.aws.emulator).toBeUndefined();
    expect(inventory.services.length).toBeGreaterThan(0);
  });

  test("a service's awsFence is checked: action, region and at least one tag, each named by path", () => {
    const doc = sandboxDoc();
    doc.services[0].awsFence = { region: 'moon-1', action: 'reboot', tags: {} };
    expect(problemsOf(doc)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^services\.0\.awsFence\.region: /),
        expect.stringMatching(/^services\.0\.awsFence\.action: /),
        expect.stringMatching(/^services\.0\.awsFence\.tags: .*at least one tag/),
      ]),
    );
    doc.services[0].awsFence = { region: 'us-east-1', action: 'stop-instance', tags: { Role: 'db-primary' } };
    expect(parseInventory(doc).services[0].awsFence).toEqual(doc.services[0].awsFence);
  });
});
