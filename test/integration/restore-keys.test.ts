/**
 * A logical restore builds secondary keys after the rows (activities/restore/deferred-keys.ts) and still ends with
 * exactly the dumped schema, on the real stack (mariadb-dump, the restore scratch server): every table's SHOW CREATE
 * TABLE equal to the source's (plain, UNIQUE, FULLTEXT, SPATIAL keys, a KEY a FOREIGN KEY uses, MyISAM, an empty
 * table), the view that names a deferred key by FORCE INDEX and the trigger restored, every row there; with one
 * loader session and with several. Under a database, destination and scratch databases of the test's own.
 */
import { randomUUID } from 'node:crypto';
import type { RowDataPacket } from 'mysql2/promise';
import { isolatedBackups, publishBackup } from '../helpers/backups';
import { buildAdapters, sandbox, sql } from '../helpers/stack';

jest.setTimeout(180_000);

const base = sandbox();
const source = `drtest_keys_${randomUUID().slice(0, 8)}`;
const t = isolatedBackups(
  base,
  (inv) => {
    const shop = inv.services.find((s) => s.name === 'shop')!;
    const keys = structuredClone(shop);
    keys.name = 'keys';
    delete keys.rds;
    keys.backup!.databases = [source];
    keys.backup!.destinations = { local: keys.backup!.destinations.local };
    inv.services.push(keys);
  },
  'drbook-restore-keys',
);
const adapters = buildAdapters(t.loaded);
const { activities } = adapters;
const SCHEMA = [
  `CREATE TABLE orders (
    id INT NOT NULL PRIMARY KEY, code CHAR(8) NOT NULL, customer INT NOT NULL, created DATETIME NOT NULL,
    note TEXT NOT NULL, UNIQUE KEY code (code), KEY customer (customer), KEY \`created at (utc)\` (created, customer),
    FULLTEXT KEY note (note)
  ) ENGINE=InnoDB`,
  `CREATE TABLE items (
    id INT NOT NULL PRIMARY KEY, order_id INT NOT NULL, sku VARCHAR(32) NOT NULL,
    KEY order_sku (order_id, sku), KEY sku (sku(8)),
    CONSTRAINT items_order FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE
  ) ENGINE=InnoDB`,
  `CREATE TABLE places (
    id INT NOT NULL PRIMARY KEY, at POINT NOT NULL, SPATIAL KEY at (at), KEY id_at (id)
  ) ENGINE=InnoDB`,
  `CREATE TABLE audit (id INT NOT NULL PRIMARY KEY, what VARCHAR(20) NOT NULL, KEY what (what)) ENGINE=InnoDB`,
  `CREATE TABLE legacy (id INT NOT NULL, KEY id (id)) ENGINE=MyISAM`,
  `CREATE VIEW recent_orders AS SELECT id, customer FROM orders FORCE INDEX (customer) WHERE customer > 10`,
  `CREATE TRIGGER items_audit AFTER INSERT ON items FOR EACH ROW INSERT INTO audit VALUES (NEW.id, 'item')`,
];
const TABLES = ['audit', 'items', 'legacy', 'orders', 'places'];

async function showCreate(server: string, db: string, table: string): Promise<string> {
  const c = await sql(base, server);
  try {
    const [rows] = await c.query<RowDataPacket[]>(`SHOW CREATE TABLE \`${db}\`.\`${table}\``);
    return String(rows[0]['Create Table'] ?? rows[0]['Create View']).replace(/ AUTO_INCREMENT=\d+/, '');
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  const c = await sql(base, 'db-primary');
  try {
    await c.query('SET SESSION sql_log_bin = 0');
    await c.query(`CREATE DATABASE ${source}`);
    await c.query(`USE ${source}`);
    for (const statement of SCHEMA) await c.query(statement);
    await c.query(
      "INSERT INTO orders SELECT seq, LPAD(seq, 8, '0'), seq % 97, '2026-01-01' + INTERVAL seq MINUTE, " +
        "CONCAT('note ', seq) FROM seq_1_to_5000",
    );
    await c.query("INSERT INTO items SELECT seq, 1 + seq % 5000, CONCAT('sku-', seq % 300) FROM seq_1_to_12000");
    await c.query('INSERT INTO places SELECT seq, POINT(seq, seq) FROM seq_1_to_300');
    await c.query('INSERT INTO legacy SELECT seq FROM seq_1_to_100');
    await c.query('DELETE FROM audit');
  } finally {
    await c.end();
  }
});

afterAll(async () => {
  const c = await sql(base, 'db-primary');
  await c.query('SET SESSION sql_log_bin = 0');
  await c.query(`DROP DATABASE IF EXISTS ${source}`);
  await c.end();
  await adapters.close();
  await t.cleanUp();
});

describe('secondary keys are built after the rows, and the restored schema is the dumped one', () => {
  let manifest: Awaited<ReturnType<typeof publishBackup>>;
  beforeAll(async () => {
    manifest = await publishBackup(
      activities,
      await activities.dumpDatabase({ service: 'keys', backupId: '20260101T000000Z' }),
    );
  });

  test.each([1, 3])('parallel %i', async (parallel) => {
    const scratch = `restore_keys_p${parallel}`;
    try {
      const restored = await activities.restoreIntoScratch({
        service: 'keys',
        backupId: manifest.id,
        destination: 'local',
        server: 'db-restore-scratch',
        databases: [{ source, scratch }],
        size: manifest.object.size,
        sha256: manifest.object.sha256,
        parallel,
      });
      // orders: customer, `created at (utc)`; items: sku (order_sku serves the foreign key); places: id_at;
      // audit: what. Not legacy (MyISAM) and nothing UNIQUE, FULLTEXT or SPATIAL.
      expect(restored.deferredKeys).toBe(5);
      for (const table of TABLES)
        expect(await showCreate('db-restore-scratch', scratch, table)).toBe(
          await showCreate('db-primary', source, table),
        );
      expect(await showCreate('db-restore-scratch', scratch, 'recent_orders')).toContain('FORCE INDEX (`customer`)');
      const validated = await activities.validateRestore({
        server: 'db-restore-scratch',
        databases: [{ source, scratch }],
        tables: manifest.tables,
        rowCountsExact: true,
        queries: [
          {
            name: 'trigger',
            sql: `SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '${scratch}'`,
            expect: 1,
          },
          { name: 'view', sql: 'SELECT COUNT(*) FROM recent_orders', expect: 4429 },
        ],
      });
      expect(validated.checks.filter((c) => !c.ok)).toEqual([]);
    } finally {
      await activities.dropScratchDatabase({ server: 'db-restore-scratch', databases: [scratch] });
    }
  });
});
