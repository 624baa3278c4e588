/**
 * recloneFromSource reads the source's database names and passes them to mariadb-dump: a database
 * named like an option ("--no-data") must be refused, naming it, before the target is touched.
 * On the sandbox pair (source db-primary, target db-replica); the replica is left replicating with
 * every row whatever happens (re-cloned properly if a faulty re-clone emptied it).
 */
import type { RowDataPacket } from 'mysql2/promise';
import { buildAdapters, failureType, sandbox, sql } from '../helpers/stack';

jest.setTimeout(180_000);

const loaded = sandbox();
const { activities, close } = buildAdapters(loaded);
const shop = loaded.inventory.services.find((s) => s.name === 'shop')!;
const reclone = () =>
  activities.recloneFromSource({
    service: 'shop',
    server: 'db-replica',
    source: 'db-primary',
    heartbeatEvent: shop.database!.heartbeatEvent,
  });

async function orders(server: string): Promise<number> {
  const c = await sql(loaded, server);
  try {
    const [rows] = await c.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM shop.orders');
    return Number(rows[0].n);
  } finally {
    await c.end();
  }
}

afterAll(close);

test('a source database named like an option is refused before the target changes', async () => {
  const primary = await sql(loaded, 'db-primary');
  await primary.query('SET SESSION sql_log_bin = 0'); // on the source only
  await primary.query('CREATE DATABASE `--no-data`');
  try {
    const rowsBefore = await orders('db-replica');
    expect(rowsBefore).toBeGreaterThan(0);
    const err = await reclone().then(
      () => null,
      (e: unknown) => e,
    );
    expect(failureType(err)).toBe('InvalidInput');
    expect((err as Error).message).toContain('"--no-data"');
    // Untouched: still a replica of db-primary, with every row.
    const status = await activities.readReplicationStatus({ server: 'db-replica' });
    expect(status).toMatchObject({ configured: true, ioRunning: true, sqlRunning: true, sourceServer: 'db-primary' });
    expect(await orders('db-replica')).toBe(rowsBefore);
  } finally {
    await primary.query('DROP DATABASE IF EXISTS `--no-data`');
    await primary.end();
    // A faulty re-clone (today's main) left the replica schema-only: clone it again, properly.
    if ((await orders('db-replica').catch(() => -1)) !== (await orders('db-primary'))) await reclone();
  }
});
