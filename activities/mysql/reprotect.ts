/**
 * Re-protecting an old primary: undoing a fence, or making it a replica of the new primary from its own GTID
 * position. A server holding transactions its new source lacks is refused: it needs a re-clone (reclone.ts).
 */
import { ErrorType } from '../../contract';
import { failure } from '../errors';
import { whileHeartbeating } from '../process/heartbeat';
import type { MysqlPools } from './index';
import type { TopologySql } from './topology-sql';

/** Replication credentials per service (database.replication in the inventory), resolved on the worker. */
export type ReplicationCredentials = (service: string) => { user: string; password: string };

export function createReprotectActivities(
  pools: MysqlPools,
  sql: TopologySql,
  replicationCredentials: ReplicationCredentials,
) {
  const { read, run, withConnection, flavorOf, setHeartbeatEvent, errantTransactions } = sql;
  return {
    /** How many transactions `server` holds that `source` lacks (0: it can simply replicate from it). */
    async countErrantTransactions({
      server,
      source,
    }: {
      server: string;
      source: string;
    }): Promise<{ server: string; source: string; errant: number }> {
      return { server, source, errant: await errantTransactions(server, source) };
    },

    /**
     * Undo a fence: make a primary that is not replicating writable again and restart its
     * heartbeat. Refuses a server that replicates from something (that would be a split brain).
     */
    async unfencePrimary({
      server,
      heartbeatEvent,
    }: {
      server: string;
      heartbeatEvent: string;
    }): Promise<{ server: string }> {
      const status = await read.readReplicationStatus({ server });
      if (status.configured) {
        throw failure(
          ErrorType.ReplicationBroken,
          `${server} replicates from ${status.sourceHost}:${status.sourcePort}${status.sourceServer ? ` (${status.sourceServer})` : ''}: refusing to make it writable`,
          { server },
        );
      }
      const unfenced = withConnection(server, async (conn) => {
        const flavor = await flavorOf(server, conn);
        if (flavor === 'mysql') await run(server, conn, 'SET GLOBAL super_read_only = OFF');
        await run(server, conn, 'SET GLOBAL read_only = OFF');
        await setHeartbeatEvent(server, conn, heartbeatEvent, true);
        return { server };
      });
      return whileHeartbeating({ unfencing: server }, unfenced);
    },

    /**
     * Re-protect: make `server` (a fenced old primary) a replica of `source`, from its own GTID
     * position. Refuses if it holds transactions the source lacks (errant: it needs a rebuild
     * from backup, not a CHANGE MASTER that would silently diverge).
     */
    async rebuildAsReplica({
      service,
      server,
      source,
      heartbeatEvent,
    }: {
      service: string;
      server: string;
      source: string;
      heartbeatEvent: string;
    }): Promise<{ server: string; source: string; alreadyReplicating: boolean }> {
      const rebuilt = (async () => {
        // The source's replication address, not the worker's route to it: replication must not run through a bastion or proxy.
        const src = pools.replicationSource(source);
        const status = await read.readReplicationStatus({ server });
        if (
          status.configured &&
          status.ioRunning &&
          status.sqlRunning &&
          status.sourcePort === src.port &&
          status.sourceHost === src.host
        ) {
          return { server, source, alreadyReplicating: true };
        }
        const errant = await errantTransactions(server, source);
        if (errant > 0) {
          throw failure(
            ErrorType.ReplicationBroken,
            `${server} has ${errant} transaction(s) that ${source} lacks (written after the failover?): rebuild it from ${source}`,
            { server, source, errant },
          );
        }
        await withConnection(server, async (conn) => {
          const flavor = await flavorOf(server, conn);
          await setHeartbeatEvent(server, conn, heartbeatEvent, false);
          await run(server, conn, 'SET GLOBAL read_only = ON');
          await run(server, conn, flavor === 'mariadb' ? 'STOP SLAVE' : 'STOP REPLICA');
          const { user: replicationUser, password } = replicationCredentials(service);
          if (flavor === 'mariadb') {
            await run(
              server,
              conn,
              'CHANGE MASTER TO MASTER_HOST = ?, MASTER_PORT = ?, MASTER_USER = ?, MASTER_PASSWORD = ?, MASTER_USE_GTID = current_pos, MASTER_CONNECT_RETRY = 1',
              [src.host, src.port, replicationUser, password],
            );
            await run(server, conn, 'START SLAVE');
          } else {
            await run(
              server,
              conn,
              'CHANGE REPLICATION SOURCE TO SOURCE_HOST = ?, SOURCE_PORT = ?, SOURCE_USER = ?, SOURCE_PASSWORD = ?, SOURCE_AUTO_POSITION = 1',
              [src.host, src.port, replicationUser, password],
            );
            await run(server, conn, 'START REPLICA');
          }
        });
        return { server, source, alreadyReplicating: false };
      })();
      return whileHeartbeating({ rebuilding: server, from: source }, rebuilt);
    },
  };
}
