/**
 * Scratch is never production, read from the servers themselves: the inventory may be wrong about what a server is
 * (contract/inventory/index.ts already refuses a scratch named like a member, or at a member's host:port).
 *
 * Before a restore, a point-in-time replay or a drill copy writes into a scratch server, the server is read:
 *   - a replica (SHOW ALL SLAVES STATUS has a row): refused, its writes would be errant transactions;
 *   - a replication source (binlog dump threads: replicas attached): refused, it is somebody's primary;
 *   - the same server as a production member of ANY service (primary, replica, drServer), each member read now:
 *     refused. MariaDB has no server_uuid; a server is known by @@server_uid (a hash of its host's MAC address
 *     and its port; MySQL: @@server_uuid) together with @@server_id, @@hostname and @@port, all read from it.
 *     The live primary of every service is one of those members, so it is covered too.
 * A cold failover's target is its service's drServer by design, so there the rule is: not a replica, no replicas
 * attached, read-only (a writable drServer is live already: failed over, or a split) and no other member.
 * Each refusal is ScratchIsProduction (non-retryable), raised before the activity writes anything.
 */
import type mysql from 'mysql2/promise';
import { productionMembers, type Service, ErrorType } from '../../contract';
import { failure } from '../errors';
import { mysqlFailure, type MysqlPools } from './index';

/** Who a server says it is. */
export interface ServerIdentity {
  serverId: number;
  hostname: string;
  port: number;
  /** MariaDB @@server_uid, MySQL @@server_uuid; null where neither exists. */
  uid: string | null;
}

interface ServerRoles {
  identity: ServerIdentity;
  readOnly: boolean;
  /** The sources it replicates from (host:port), one per replication connection. */
  replicatesFrom: string[];
  /** Replicas reading its binlog now (their hosts). */
  replicas: string[];
}

export const describeIdentity = (i: ServerIdentity) =>
  `server_id ${i.serverId} on ${i.hostname}:${i.port}${i.uid ? `, uid ${i.uid}` : ''}`;

/** One server, read twice, gives the same answer to all four; two servers differ in at least one. */
export function sameServer(a: ServerIdentity, b: ServerIdentity): boolean {
  return (
    a.serverId === b.serverId &&
    a.port === b.port &&
    a.hostname === b.hostname &&
    (a.uid === null || b.uid === null || a.uid === b.uid)
  );
}

type Rows = mysql.RowDataPacket[];
/** Small reads; a member behind a silent network must not hold a restore past its heartbeat timeout (10 s). */
const READ_MS = 5000;
const read = async (conn: mysql.PoolConnection, sql: string) => (await conn.query<Rows>({ sql, timeout: READ_MS }))[0];

async function firstOf(conn: mysql.PoolConnection, ...statements: string[]): Promise<Rows | null> {
  for (const sql of statements) {
    try {
      return await read(conn, sql);
    } catch {
      // not this flavour's statement or variable: the next one
    }
  }
  return null;
}

async function readIdentity(conn: mysql.PoolConnection): Promise<{ identity: ServerIdentity; readOnly: boolean }> {
  const [row] = await read(conn, 'SELECT @@server_id AS id, @@hostname AS host, @@port AS port, @@read_only AS ro');
  const uid = await firstOf(conn, 'SELECT @@global.server_uid AS uid', 'SELECT @@global.server_uuid AS uid');
  return {
    identity: {
      serverId: Number(row.id),
      hostname: String(row.host),
      port: Number(row.port),
      uid: uid?.[0]?.uid ? String(uid[0].uid) : null,
    },
    readOnly: Number(row.ro) === 1,
  };
}

async function readRoles(conn: mysql.PoolConnection): Promise<ServerRoles> {
  const { identity, readOnly } = await readIdentity(conn);
  // Every replication connection (MariaDB's multi-source ones too); MySQL 8 knows only SHOW REPLICA STATUS.
  const status =
    (await firstOf(conn, 'SHOW ALL SLAVES STATUS', 'SHOW REPLICA STATUS', 'SHOW SLAVE STATUS')) ?? ([] as Rows);
  const replicatesFrom = status.map(
    (r) => `${String(r.Master_Host ?? r.Source_Host ?? '?')}:${String(r.Master_Port ?? r.Source_Port ?? '?')}`,
  );
  const dumps = await read(
    conn,
    "SELECT HOST AS host FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%' ORDER BY ID",
  );
  return { identity, readOnly, replicatesFrom, replicas: dumps.map((d) => String(d.host)) };
}

export function createScratchIsolation(services: () => readonly Service[], pools: MysqlPools) {
  const readOn = async <T>(server: string, reader: (conn: mysql.PoolConnection) => Promise<T>): Promise<T> =>
    pools.withConnection(server, async (conn) => {
      try {
        return await reader(conn);
      } catch (err) {
        throw mysqlFailure(server, err);
      }
    });

  /** Reasons `roles` (read from `server`) is production; `exempt` is the member entry the target stands for. */
  async function productionReasons(
    server: string,
    roles: ServerRoles,
    exempt?: { service: string; role: 'drServer' },
  ): Promise<{ reasons: string[]; unreachable: string[] }> {
    const reasons: string[] = [];
    if (roles.replicatesFrom.length) reasons.push(`it is a replica (of ${roles.replicatesFrom.join(', ')})`);
    if (roles.replicas.length)
      reasons.push(
        `it is a replication source: ${roles.replicas.length} replica(s) attached (${roles.replicas.join(', ')})`,
      );
    const members = productionMembers(services()).filter(
      (m) => !(exempt && m.service === exempt.service && m.role === exempt.role && m.server === server),
    );
    const unreachable: string[] = [];
    const identities = await Promise.all(
      [...new Set(members.map((m) => m.server))].map(async (member) => {
        try {
          return { member, identity: (await readOn(member, readIdentity)).identity };
        } catch {
          unreachable.push(member); // nothing to compare with; the roles above still stand
          return { member, identity: null };
        }
      }),
    );
    for (const { member, identity } of identities) {
      if (!identity || !sameServer(identity, roles.identity)) continue;
      const as = members
        .filter((m) => m.server === member)
        .map((m) => `the ${m.role} of ${m.service}`)
        .join(', ');
      reasons.push(`it is ${member} (${as}): both answer as ${describeIdentity(identity)}`);
    }
    return { reasons, unreachable };
  }

  return {
    /**
     * Before anything is written into a scratch server: refuse one that is a replica, a replication source, or a
     * production member of any service (read now). Returns what it read, for the caller's record.
     */
    async requireScratch(
      server: string,
      purpose: string,
    ): Promise<{ identity: ServerIdentity; unreachable: string[] }> {
      const roles = await readOn(server, readRoles);
      const { reasons, unreachable } = await productionReasons(server, roles);
      if (reasons.length)
        throw failure(
          ErrorType.ScratchIsProduction,
          `scratch server ${server} (${describeIdentity(roles.identity)}) is production: ${reasons.join('; ')}. ` +
            `Not ${purpose}: nothing was written to it`,
          { server, reasons },
        );
      return { identity: roles.identity, unreachable };
    },

    /**
     * Before a cold failover replaces databases on its service's drServer: refuse a drServer that is a replica, has
     * replicas, is writable (live already: failed over, or split) or is another member of any service.
     */
    async requireColdTarget(service: string, server: string): Promise<{ identity: ServerIdentity }> {
      const roles = await readOn(server, readRoles);
      const { reasons } = await productionReasons(server, roles, { service, role: 'drServer' });
      if (!roles.readOnly)
        reasons.push(`it is writable (read_only OFF): it may be serving ${service} already (failed over, or split)`);
      if (reasons.length)
        throw failure(
          ErrorType.ScratchIsProduction,
          `${service}'s drServer ${server} (${describeIdentity(roles.identity)}) cannot take a ` +
            `restore: ${reasons.join('; ')}. Nothing was written to it`,
          { service, server, reasons },
        );
      return { identity: roles.identity };
    },
  };
}

export type ScratchIsolation = ReturnType<typeof createScratchIsolation>;
