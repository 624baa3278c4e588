/**
 * Re-cloning a diverged old primary from its new source: its own databases and binlog discarded, the source's
 * streamed in with `mariadb-dump | mariadb` (process/mysql-client.ts: no temp file, passwords in 0600 defaults
 * files), then replicating from the position the dump was taken at.
 */
import { ErrorType, PLAIN_DATABASE_NAME } from '../../contract';
import { failure } from '../errors';
import { dumpInto, REFUSED_CLIENT_COMMAND } from '../process/mysql-client';
import { quoteIdentifier } from '../process/quote';
import type { MysqlPools } from './index';
import type { NewReplica, ReplicationCredentials, TopologySql } from './topology-sql';

/** A database name a re-clone passes to mariadb-dump: a plain identifier, never one that reads as an option. */
export const CLONEABLE_DATABASE = PLAIN_DATABASE_NAME;

/** A server's own databases: everything but the system schemas. */
const USER_DATABASES =
  'SELECT schema_name AS d FROM information_schema.schemata ' +
  "WHERE schema_name NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')";

export function createRecloneActivities(
  pools: MysqlPools,
  { run, withConnection, setHeartbeatEvent, startReplicationFrom }: TopologySql,
  replicationCredentials: ReplicationCredentials,
) {
  return {
    /**
     * Rebuild a diverged old primary as a fresh copy of `source`: its own databases and binlog
     * are discarded (RESET MASTER), the source's databases are streamed in with
     * mariadb-dump | mariadb (no temp file, passwords in 0600 defaults files), and it then
     * replicates from the GTID position the dump was taken at. Only after an approval that
     * says the divergent transactions may be discarded (failback asks for it).
     */
    async recloneFromSource({
      service,
      server,
      source,
      heartbeatEvent,
    }: NewReplica): Promise<{ server: string; source: string; databases: string[]; bytes: number }> {
      const databases = (await withConnection(source, (conn) => run(source, conn, USER_DATABASES))).map((r) =>
        String(r.d),
      );
      // The names come from the source server and become mariadb-dump arguments: a database named
      // "--no-data" would be an option. Refused before anything on the target changes.
      const unsafe = databases.filter((d) => !CLONEABLE_DATABASE.test(d));
      if (unsafe.length)
        throw failure(
          ErrorType.InvalidInput,
          `${source} holds database(s) ${unsafe.map((d) => JSON.stringify(d)).join(', ')}: not a plain name ` +
            `(letters, digits, _ $ -, not starting with -); refusing to re-clone ${server} from it`,
          { server, source },
        );
      // A private session: sql_log_bin = 0 must not go back to the pool with the connection.
      await pools.withPrivateSession(server, async (conn) => {
        await setHeartbeatEvent(server, conn, heartbeatEvent, false);
        await run(server, conn, 'SET GLOBAL read_only = ON');
        await run(server, conn, 'STOP SLAVE');
        await run(server, conn, 'RESET SLAVE ALL');
        await run(server, conn, 'SET SESSION sql_log_bin = 0');
        const mine = await run(server, conn, USER_DATABASES);
        for (const r of mine) await run(server, conn, `DROP DATABASE ${quoteIdentifier(String(r.d))}`);
        await run(server, conn, 'RESET MASTER');
      });
      // Loaded with sql_log_bin=0: the copy's binlog stays empty, so it holds no transactions of its own.
      const copied = await dumpInto({
        from: pools.target(source),
        to: pools.target(server),
        dumpArgs: [
          '--single-transaction',
          '--gtid',
          '--master-data=1',
          '--routines',
          '--events',
          '--triggers',
          '--databases',
          '--', // names only from here on
          ...databases,
        ],
        loadArgs: ['--init-command=SET SESSION sql_log_bin=0'],
        progress: (bytes) => ({ bytes }),
      });
      if (copied.dump.code !== 0)
        throw failure(
          ErrorType.RecloneFailed,
          `mariadb-dump on ${source} exited ${copied.dump.code}: ${copied.dumpErr}`,
          { server, source },
        );
      if (copied.load.code !== 0)
        throw failure(
          REFUSED_CLIENT_COMMAND.test(copied.loadErr) ? ErrorType.RestoreRefused : ErrorType.RecloneFailed,
          `mariadb into ${server} exited ${copied.load.code}: ${copied.loadErr}`,
          { server, source },
        );
      // The dump set gtid_slave_pos to where it was taken: replicate from there. mariadb-dump --gtid is MariaDB's.
      await withConnection(server, async (conn) => {
        await setHeartbeatEvent(server, conn, heartbeatEvent, false);
        await startReplicationFrom(server, conn, source, replicationCredentials(service), {
          flavor: 'mariadb',
          gtidPos: 'slave_pos',
        });
      });
      return { server, source, databases, bytes: copied.bytes };
    },
  };
}
