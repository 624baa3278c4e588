import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { dataFilesHost, InventoryError, parseInventory, targetsFor } from '../../config/inventory';
import { expandEnv, loadInventory } from '../../config/load';
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
      "services.2.backup.physical: mariabackup must run where db-scratch's data files are: give mysqlServers.db-scratch.sshHost (its host wiki-db.internal is not the worker's)",
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

  test('the AWS example inventory is valid', () => {
    const { inventory } = loadInventory(path.join(__dirname, '..', '..', 'config', 'aws-example.yaml'), {});
    expect(inventory.aws.endpoint).toBeUndefined();
    expect(inventory.services.length).toBeGreaterThan(0);
  });
});
