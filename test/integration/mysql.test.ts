/** The MySQL adapter against the sandbox MariaDB pair with real GTID replication. */
import type { Connection } from 'mysql2/promise';
import { MysqlPools, createMysqlActivities } from '../../activities/mysql';
import { resolveSecret } from '../../config/load';
import { buildAdapters, eventually, failureType, sandbox, sql } from '../helpers/stack';

describe('MySQL adapter (MariaDB primary + replica)', () => {
  const loaded = sandbox();
  const { activities, close } = buildAdapters(loaded);
  let replica: Connection;
  let primary: Connection;
  const lag = () =>
    activities.measureReplicaLag({ primary: 'db-primary', replica: 'db-replica', heartbeatTable: 'drbook.heartbeat' });

  beforeAll(async () => {
    primary = await sql(loaded, 'db-primary');
    replica = await sql(loaded, 'db-replica');
  });
  afterAll(async () => {
    await replica.query('START SLAVE'); // leave replication running whatever happened
    await Promise.all([primary.end(), replica.end()]);
    await close();
  });

  test('ping tells primary from read-only replica', async () => {
    const p = await activities.pingDatabase({ server: 'db-primary' });
    const r = await activities.pingDatabase({ server: 'db-replica' });
    expect(p).toMatchObject({ flavor: 'mariadb', readOnly: false, serverId: 1 });
    expect(r).toMatchObject({ flavor: 'mariadb', readOnly: true, serverId: 2 });
  });

  test('replication status read by column name', async () => {
    const r = await activities.readReplicationStatus({ server: 'db-replica' });
    expect(r).toMatchObject({ configured: true, ioRunning: true, sqlRunning: true, sourceHost: '127.0.0.1' });
    expect(r.sourcePort).toBe(loaded.inventory.mysqlServers['db-primary'].port);
    expect(r.receivedGtids).toMatch(/^0-1-\d+$/);
    expect((await activities.readReplicationStatus({ server: 'db-primary' })).configured).toBe(false);
  });

  test("a replica's source is named by matching replication addresses, not the worker's route", async () => {
    expect((await activities.readReplicationStatus({ server: 'db-replica' })).sourceServer).toBe('db-primary');
    // The worker reaches db-primary elsewhere (a bastion, here a port nobody listens on): the replica's
    // Master_Host:Master_Port is still matched against db-primary's replication address.
    const servers = structuredClone(loaded.inventory.mysqlServers);
    const real = servers['db-primary'];
    servers['db-primary'] = { ...real, host: '127.0.0.2', port: 1, replication: { host: real.host, port: real.port } };
    const pools = new MysqlPools(servers, (s) => resolveSecret(s.password, loaded.baseDir));
    try {
      const status = await createMysqlActivities(pools).readReplicationStatus({ server: 'db-replica' });
      expect(status).toMatchObject({ sourcePort: real.port, sourceServer: 'db-primary' });
      expect(pools.replicationSource('db-primary')).toEqual({ host: real.host, port: real.port });
      // Without the replication address, the reported source would match no server.
      delete servers['db-primary'].replication;
      const unmatched = new MysqlPools(servers, (s) => resolveSecret(s.password, loaded.baseDir));
      try {
        expect(
          (await createMysqlActivities(unmatched).readReplicationStatus({ server: 'db-replica' })).sourceServer,
        ).toBeNull();
      } finally {
        await unmatched.end();
      }
    } finally {
      await pools.end();
    }
  });

  test('lag in GTID transactions and heartbeat age, with the SQL thread stopped and restarted', async () => {
    await eventually(async () => (await lag()).transactionsBehind === 0, 20000, 'replica to catch up');
    await replica.query('STOP SLAVE SQL_THREAD');
    for (let i = 0; i < 5; i++) {
      await primary.query("INSERT INTO shop.orders (customer, amount_cents, source) VALUES ('lag-test', 1, 'test')");
    }
    // The heartbeat event ticks every second on the primary; the stopped replica's copy ages.
    const behind = await eventually(
      async () => {
        const l = await lag();
        return l.heartbeatLagSeconds !== null && l.heartbeatLagSeconds >= 2 ? l : null;
      },
      20000,
      'heartbeat lag of 2 s',
    );
    expect(behind.sqlRunning).toBe(false);
    expect(behind.ioRunning).toBe(true);
    expect(behind.transactionsBehind).toBeGreaterThanOrEqual(5);
    expect(behind.primaryReachable).toBe(true);
    await replica.query('START SLAVE SQL_THREAD');
    const caughtUp = await eventually(
      async () => {
        const l = await lag();
        return l.transactionsBehind === 0 ? l : null;
      },
      20000,
      'replica to catch up again',
    );
    expect(caughtUp.heartbeatLagSeconds).toBeLessThan(2);
  });

  test('an unreachable primary still gives the replica heartbeat (the RPO clock)', async () => {
    const pools = new MysqlPools(
      { ...loaded.inventory.mysqlServers, gone: { ...loaded.inventory.mysqlServers['db-primary'], port: 1 } },
      (server) => resolveSecret(server.password, loaded.baseDir),
    );
    try {
      const l = await createMysqlActivities(pools).measureReplicaLag({
        primary: 'gone',
        replica: 'db-replica',
        heartbeatTable: 'drbook.heartbeat',
      });
      expect(l.primaryReachable).toBe(false);
      expect(l.transactionsBehind).toBeNull();
      expect(l.replicaHeartbeatAt).toBeGreaterThan(Date.now() - 60000);
    } finally {
      await pools.end();
    }
  });

  test('a wrong password fails fast as DatabaseAuthFailed', async () => {
    const pools = new MysqlPools(loaded.inventory.mysqlServers, () => 'wrong-password');
    try {
      const err = await createMysqlActivities(pools)
        .pingDatabase({ server: 'db-primary' })
        .catch((e: unknown) => e);
      expect(failureType(err)).toBe('DatabaseAuthFailed');
      expect((err as Error).message).toContain('MySQL server db-primary');
      expect((err as Error).message).not.toContain('wrong-password');
    } finally {
      await pools.end();
    }
  });
});
