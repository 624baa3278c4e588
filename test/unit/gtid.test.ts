import {
  hasErrantTransactions,
  mariadbErrantTransactions,
  parseMysqlGtidSet,
  transactionsBehind,
} from '../../activities/mysql/gtid';
import { normaliseReplicaRow } from '../../activities/mysql';

describe('GTID lag', () => {
  test('MariaDB positions: per-domain sequence gap', () => {
    expect(transactionsBehind('mariadb', '0-1-50', '0-1-50')).toBe(0);
    expect(transactionsBehind('mariadb', '0-1-57', '0-1-50')).toBe(7);
    // Server id changes after a failover; the domain's sequence still counts.
    expect(transactionsBehind('mariadb', '0-2-60,1-5-10', '0-1-57')).toBe(13);
    expect(transactionsBehind('mariadb', '0-1-50', '')).toBe(50);
  });

  test('MySQL GTID sets: size of the difference', () => {
    const a = '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-100,4e11fa47-71ca-11e1-9e33-c80aa9429562:1-5';
    expect(transactionsBehind('mysql', a, a)).toBe(0);
    expect(transactionsBehind('mysql', a, '3E11FA47-71CA-11E1-9E33-C80AA9429562:1-90')).toBe(15);
    expect(
      transactionsBehind(
        'mysql',
        '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10:20-30',
        '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-25',
      ),
    ).toBe(5);
  });

  test('errant transactions on a replica are a split-brain sign', () => {
    expect(hasErrantTransactions('mariadb', '0-1-50', '0-1-50')).toBe(false);
    expect(hasErrantTransactions('mariadb', '0-1-50', '0-1-50,7-2-1')).toBe(true);
  });

  test('malformed sets are refused, not guessed', () => {
    expect(() => parseMysqlGtidSet('nonsense')).toThrow(/not a MySQL GTID set/);
    expect(() => transactionsBehind('mariadb', '0-1', '0-1-1')).toThrow(/not a MariaDB GTID position/);
  });
});

describe('replication status by column name', () => {
  test('MariaDB / MySQL 5.7 names', () => {
    const s = normaliseReplicaRow('r', {
      Slave_IO_Running: 'Yes',
      Slave_SQL_Running: 'No',
      Seconds_Behind_Master: null,
      Master_Host: '10.0.0.1',
      Master_Port: 3306,
      Last_SQL_Error: 'Duplicate entry',
      Gtid_IO_Pos: '0-1-5',
    });
    expect(s).toMatchObject({
      configured: true,
      ioRunning: true,
      sqlRunning: false,
      secondsBehind: null,
      sourceHost: '10.0.0.1',
      sourcePort: 3306,
      lastSqlError: 'Duplicate entry',
      receivedGtids: '0-1-5',
    });
  });

  test('MySQL 8.0.22+ names', () => {
    const s = normaliseReplicaRow('r', {
      Replica_IO_Running: 'Yes',
      Replica_SQL_Running: 'Yes',
      Seconds_Behind_Source: 3,
      Source_Host: 'db1',
      Source_Port: 3307,
      Retrieved_Gtid_Set: 'uuid:1-3',
    });
    expect(s).toMatchObject({
      ioRunning: true,
      sqlRunning: true,
      secondsBehind: 3,
      sourceHost: 'db1',
      sourcePort: 3307,
      receivedGtids: 'uuid:1-3',
    });
  });

  test('not a replica', () => {
    expect(normaliseReplicaRow('p', undefined).configured).toBe(false);
  });
});

describe('MariaDB divergence by domain and server id', () => {
  test('an old primary that wrote 0-1-4112 while the new one wrote 0-2-4112.. has diverged', () => {
    expect(mariadbErrantTransactions('0-1-4112', '0-1-4111,0-2-4300')).toBe(1);
    expect(mariadbErrantTransactions('0-1-4111', '0-1-4111,0-2-4300')).toBe(0);
    // Per-domain comparison alone would call this clean:
    expect(transactionsBehind('mariadb', '0-1-4112', '0-2-4300')).toBe(0);
  });
  test("a source re-cloned from a dump knows the dump's position through its slave position", () => {
    // binlog state empty after RESET MASTER; gtid_slave_pos 0-2-3001 from the dump
    expect(mariadbErrantTransactions('0-2-3001', '0-2-3001')).toBe(0);
    expect(mariadbErrantTransactions('0-2-3001', '')).toBe(3001);
  });
  test('a server the source never saw is errant past the source position', () => {
    expect(mariadbErrantTransactions('0-3-12', '0-1-10')).toBe(2);
    // A promoted replica's own write (0-2-10), then the old primary, reopened, writes on past it (0-1-4000):
    // the source still never saw server 2, so the write is errant however low its number.
    expect(mariadbErrantTransactions('0-2-10', '0-1-4000')).toBeGreaterThanOrEqual(1);
  });
});
