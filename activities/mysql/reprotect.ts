/**
 * Re-protecting an old primary: undoing a fence, or making it a replica of the new primary from its own GTID
 * position. A server holding transactions its new source lacks is refused: it needs a re-clone (reclone.ts).
 */
import { ErrorType } from '../../contract';
import { failure } from '../errors';
import { whileHeartbeating } from '../process/heartbeat';
import type { MysqlPools } from './index';
import type { NewReplica, ReplicationCredentials, TopologySql } from './topology-sql';

export function createReprotectActivities(
  pools: MysqlPools,
  sql: TopologySql,
  replicationCredentials: ReplicationCredentials,
) {
  const { read, run, withConnection, flavorOf, setHeartbeatEvent, errantTransactions, startReplicationFrom } = sql;
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
          `${server} replicates from ${status.sourceHost}:${status.sourcePort}` +
            `${status.sourceServer ? ` (${status.sourceServer})` : ''}: refusing to make it writable`,
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
    }: NewReplica): Promise<{ server: string; source: string; alreadyReplicating: boolean }> {
      const rebuilt = (async () => {
        // The source's replication address, not the worker's route to it: replication must not run through a
        // bastion or proxy.
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
            `${server} has ${errant} transaction(s) that ${source} lacks (written after the failover?): ` +
              `rebuild it from ${source}`,
            { server, source, errant },
          );
        }
        await withConnection(server, async (conn) => {
          const flavor = await flavorOf(server, conn);
          await setHeartbeatEvent(server, conn, heartbeatEvent, false);
          await run(server, conn, 'SET GLOBAL read_only = ON');
          await run(server, conn, flavor === 'mariadb' ? 'STOP SLAVE' : 'STOP REPLICA');
          // From its own history: the errant check above says the source holds all of it.
          await startReplicationFrom(server, conn, source, replicationCredentials(service), {
            flavor,
            gtidPos: 'current_pos',
          });
        });
        return { server, source, alreadyReplicating: false };
      })();
      return whileHeartbeating({ rebuilding: server, from: source }, rebuilt);
    },
  };
}
