/**
 * MySQL/MariaDB adapter: reads and acts on database servers by their inventory name.
 * Passwords are resolved on the worker (MysqlPools) and never appear in an activity's
 * input or result.
 */
import mysql from 'mysql2/promise';
import { replicationAddress, type MysqlServer, ErrorType } from '../../contract';
import { driverFailure, failure } from '../errors';
import { quoteName } from '../process/quote';
import { flavorOfVersion, transactionsBehind, type GtidFlavor } from './gtid';

export interface MysqlTarget {
  host: string;
  port: number;
  user: string;
  password: string;
}

/** One small mysql2 pool per server, built lazily from the inventory. */
export class MysqlPools {
  private readonly pools = new Map<string, mysql.Pool>();

  constructor(
    private readonly servers: Record<string, MysqlServer>,
    private readonly password: (server: MysqlServer) => string,
  ) {}

  names(): string[] {
    return Object.keys(this.servers);
  }

  target(name: string): MysqlTarget {
    const server = this.servers[name];
    if (!server) throw failure(ErrorType.ResourceNotFound, `MySQL server "${name}" is not in the inventory`);
    return { host: server.host, port: server.port, user: server.user, password: this.password(server) };
  }

  /** Where other servers replicate from `name` (never the worker's route to it, which may be a proxy). */
  replicationSource(name: string): { host: string; port: number } {
    const server = this.servers[name];
    if (!server) throw failure(ErrorType.ResourceNotFound, `MySQL server "${name}" is not in the inventory`);
    return replicationAddress(server);
  }

  /** The inventory server whose replication address a replica reports as its source (Master_Host:Master_Port). */
  serverAtReplicationAddress(host: string | null, port: number | null): string | null {
    if (host === null || port === null) return null;
    const found = Object.entries(this.servers).find(([, s]) => {
      const a = replicationAddress(s);
      return a.host === host && a.port === port;
    });
    return found ? found[0] : null;
  }

  pool(name: string): mysql.Pool {
    let pool = this.pools.get(name);
    if (!pool) {
      const t = this.target(name);
      pool = mysql.createPool({
        ...t,
        connectionLimit: 4,
        connectTimeout: 3000,
        enableKeepAlive: true,
        multipleStatements: false,
      });
      this.pools.set(name, pool);
    }
    return pool;
  }

  /** A connection from the server's pool; a failure to get one names the server. */
  private async connect(name: string): Promise<mysql.PoolConnection> {
    try {
      return await this.pool(name).getConnection();
    } catch (err) {
      throw mysqlFailure(name, err);
    }
  }

  /**
   * A dedicated connection for `fn`, released to the pool after: `fn` must leave its session as it found it
   * (use withPrivateSession for session changes).
   */
  async withConnection<T>(name: string, fn: (conn: mysql.PoolConnection) => Promise<T>): Promise<T> {
    const conn = await this.connect(name);
    try {
      const result = await fn(conn);
      conn.release();
      return result;
    } catch (err) {
      // A failed step may leave the session changed (sql_log_bin=0), a timed-out statement still queued, or a
      // dead socket: never hand this connection out again.
      conn.destroy();
      throw err;
    }
  }

  /**
   * A connection for work that changes its session (sql_log_bin = 0, lock_wait_timeout): it is closed
   * afterwards, never handed back to the pool, so no later step inherits the change, whatever happened.
   */
  async withPrivateSession<T>(name: string, fn: (conn: mysql.PoolConnection) => Promise<T>): Promise<T> {
    const conn = await this.connect(name);
    try {
      return await fn(conn);
    } finally {
      conn.destroy();
    }
  }

  async end(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.end()));
    this.pools.clear();
  }
}

/** Turn a driver error into a typed failure naming the server; connection faults stay retryable. */
export function mysqlFailure(server: string, err: unknown): Error {
  const e = err as { code?: string; errno?: number; message?: string };
  const message = `MySQL server ${server}: ${e.code ?? 'error'}: ${e.message ?? String(err)}`;
  if (e.code === 'ER_ACCESS_DENIED_ERROR' || e.code === 'ER_DBACCESS_DENIED_ERROR') {
    return failure(ErrorType.DatabaseAuthFailed, message, { server });
  }
  return driverFailure(e.code, ErrorType.MysqlError, message, { server });
}

/**
 * How long a read may wait for its answer. These are small reads (status, positions, heartbeats): a
 * server that says nothing for this long is behind a silent network, and the step should say so.
 */
export const READ_TIMEOUT_MS = 10_000;

async function query<T extends mysql.RowDataPacket>(
  pools: MysqlPools,
  server: string,
  sql: string,
  params: unknown[] = [],
) {
  let conn: mysql.PoolConnection | undefined;
  try {
    conn = await pools.pool(server).getConnection();
    const [rows] = await conn.query<T[]>({ sql, timeout: READ_TIMEOUT_MS }, params);
    conn.release();
    return rows;
  } catch (err) {
    // A timed-out connection still has the read queued on it, a fatal one is dead: never hand either out again.
    const e = err as { fatal?: boolean; code?: string };
    if (e.fatal || e.code === 'PROTOCOL_SEQUENCE_TIMEOUT') conn?.destroy();
    else conn?.release();
    throw mysqlFailure(server, err);
  }
}

export interface ReplicationStatus {
  server: string;
  /** False when the server is not a replica at all (no replication configured). */
  configured: boolean;
  ioRunning: boolean;
  sqlRunning: boolean;
  secondsBehind: number | null;
  sourceHost: string | null;
  sourcePort: number | null;
  lastIoError: string;
  lastSqlError: string;
  /** GTIDs received from the source (MariaDB Gtid_IO_Pos / MySQL Retrieved_Gtid_Set). */
  receivedGtids: string;
}

type Row = Record<string, unknown>;
/** The first of several column names present: MySQL 8.0.22+ renamed Slave_/Master_ to Replica_/Source_. */
function column(row: Row, ...names: string[]): unknown {
  for (const n of names) if (n in row) return row[n];
  return undefined;
}
/** A column value as text (NULL → ''). */
function text(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint') return v.toString();
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return JSON.stringify(v);
}
const yes = (v: unknown) => text(v).toLowerCase() === 'yes';

export function normaliseReplicaRow(server: string, row: Row | undefined): ReplicationStatus {
  if (!row) {
    return {
      server,
      configured: false,
      ioRunning: false,
      sqlRunning: false,
      secondsBehind: null,
      sourceHost: null,
      sourcePort: null,
      lastIoError: '',
      lastSqlError: '',
      receivedGtids: '',
    };
  }
  const behind = column(row, 'Seconds_Behind_Source', 'Seconds_Behind_Master');
  const port = column(row, 'Source_Port', 'Master_Port');
  return {
    server,
    configured: true,
    ioRunning: yes(column(row, 'Replica_IO_Running', 'Slave_IO_Running')),
    sqlRunning: yes(column(row, 'Replica_SQL_Running', 'Slave_SQL_Running')),
    secondsBehind: behind === null || behind === undefined ? null : Number(behind),
    sourceHost: (column(row, 'Source_Host', 'Master_Host') as string | undefined) ?? null,
    sourcePort: port === undefined || port === null ? null : Number(port),
    lastIoError: text(column(row, 'Last_IO_Error')),
    lastSqlError: text(column(row, 'Last_SQL_Error')),
    receivedGtids: text(column(row, 'Gtid_IO_Pos', 'Retrieved_Gtid_Set')),
  };
}

export interface ServerInfo {
  server: string;
  reachable: true;
  version: string;
  flavor: GtidFlavor;
  readOnly: boolean;
  serverId: number;
  latencyMs: number;
}

export interface ReplicaLag {
  primary: string;
  replica: string;
  primaryReachable: boolean;
  /** Transactions the primary has committed that the replica has not applied (null if the primary is down). */
  transactionsBehind: number | null;
  /** Newest heartbeat the replica holds (epoch ms): the age of its data. */
  replicaHeartbeatAt: number | null;
  /** Primary's newest heartbeat minus the replica's, in seconds (null if either is unknown). */
  heartbeatLagSeconds: number | null;
  secondsBehind: number | null;
  ioRunning: boolean;
  sqlRunning: boolean;
}

export function createMysqlActivities(pools: MysqlPools) {
  async function serverInfo(server: string): Promise<ServerInfo> {
    const started = Date.now();
    const rows = await query(pools, server, 'SELECT VERSION() AS version, @@read_only AS ro, @@server_id AS id');
    const version = String(rows[0].version);
    return {
      server,
      reachable: true,
      version,
      flavor: flavorOfVersion(version),
      readOnly: Number(rows[0].ro) === 1,
      serverId: Number(rows[0].id),
      latencyMs: Date.now() - started,
    };
  }

  async function replicationStatus(server: string): Promise<ReplicationStatus & { sourceServer: string | null }> {
    let rows: mysql.RowDataPacket[];
    try {
      rows = await query(pools, server, 'SHOW REPLICA STATUS');
    } catch (err) {
      // MariaDB before 10.5.1 and MySQL before 8.0.22 only know the old spelling.
      if (!/ER_PARSE_ERROR/.test((err as Error).message)) throw err;
      rows = await query(pools, server, 'SHOW SLAVE STATUS');
    }
    const status = normaliseReplicaRow(server, rows[0]);
    return { ...status, sourceServer: pools.serverAtReplicationAddress(status.sourceHost, status.sourcePort) };
  }

  /** Executed GTIDs: what a server's data contains. */
  async function executedGtids(server: string, flavor: GtidFlavor): Promise<string> {
    const sql = flavor === 'mariadb' ? 'SELECT @@gtid_current_pos AS g' : 'SELECT @@gtid_executed AS g';
    const rows = await query(pools, server, sql);
    return text(rows[0].g);
  }

  async function heartbeatAt(server: string, table: string): Promise<number | null> {
    const rows = await query(pools, server, `SELECT UNIX_TIMESTAMP(MAX(ts)) AS t FROM ${quoteName(table)}`);
    const t = text(rows[0]?.t);
    return t === '' ? null : Math.round(Number(t) * 1000);
  }

  return {
    /** Reachability, version and read_only of one server. */
    async pingDatabase({ server }: { server: string }): Promise<ServerInfo> {
      return serverInfo(server);
    },

    /** Everything a server has committed (MariaDB gtid_binlog_pos / MySQL gtid_executed). */
    async readGtidPosition({ server }: { server: string }): Promise<{ server: string; gtids: string }> {
      const info = await serverInfo(server);
      const sql = info.flavor === 'mariadb' ? 'SELECT @@gtid_binlog_pos AS g' : 'SELECT @@gtid_executed AS g';
      return { server, gtids: text((await query(pools, server, sql))[0].g) };
    },

    /**
     * SHOW REPLICA STATUS, read by column name so MariaDB and MySQL 8 both work; `sourceServer` names the
     * inventory server at the reported source address (matched against replication addresses), null if none.
     */
    async readReplicationStatus({
      server,
    }: {
      server: string;
    }): Promise<ReplicationStatus & { sourceServer: string | null }> {
      return replicationStatus(server);
    },

    /**
     * How far the replica is behind, two ways: GTID transactions (exact, needs the primary) and
     * the heartbeat row (dates the newest change the replica holds, works with the primary down).
     */
    async measureReplicaLag({
      primary,
      replica,
      heartbeatTable,
    }: {
      primary: string;
      replica: string;
      heartbeatTable: string;
    }): Promise<ReplicaLag> {
      const info = await serverInfo(replica);
      const status = await replicationStatus(replica);
      const replicaGtids = await executedGtids(replica, info.flavor);
      const replicaHeartbeatAt = await heartbeatAt(replica, heartbeatTable);
      let primaryReachable = true;
      let behind: number | null = null;
      let primaryHeartbeatAt: number | null = null;
      try {
        const primaryInfo = await serverInfo(primary);
        const sql = primaryInfo.flavor === 'mariadb' ? 'SELECT @@gtid_binlog_pos AS g' : 'SELECT @@gtid_executed AS g';
        const primaryGtids = text((await query(pools, primary, sql))[0].g);
        behind = transactionsBehind(primaryInfo.flavor, primaryGtids, replicaGtids);
        primaryHeartbeatAt = await heartbeatAt(primary, heartbeatTable);
      } catch {
        primaryReachable = false;
      }
      return {
        primary,
        replica,
        primaryReachable,
        transactionsBehind: behind,
        replicaHeartbeatAt,
        heartbeatLagSeconds:
          primaryHeartbeatAt !== null && replicaHeartbeatAt !== null
            ? Math.max(0, (primaryHeartbeatAt - replicaHeartbeatAt) / 1000)
            : null,
        secondsBehind: status.secondsBehind,
        ioRunning: status.ioRunning,
        sqlRunning: status.sqlRunning,
      };
    },
  };
}

export type MysqlActivities = ReturnType<typeof createMysqlActivities>;
