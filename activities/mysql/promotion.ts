/**
 * Catching a replica up to the fenced primary's final position, and promoting it. Each step checks the server's state
 * first, so a retried call is a success, not a second change.
 */
import { ErrorType } from '../../contract';
import { failure } from '../errors';
import { heartbeat, whileHeartbeating } from '../process/heartbeat';
import { quoteName } from '../process/quote';
import { transactionsBehind } from './gtid';
import type { MysqlPools } from './index';
import { executedSql, type TopologySql } from './topology-sql';

export interface CatchUpResult {
  replica: string;
  waitedFor: string;
  caughtUp: boolean;
  transactionsBehind: number | null;
  replicaHeartbeatAt: number | null;
}

export interface PromoteResult {
  server: string;
  alreadyPrimary: boolean;
  gtids: string;
}

export function createPromotionActivities(pools: MysqlPools, sql: TopologySql) {
  const { read, run, withConnection, flavorOf, setHeartbeatEvent } = sql;
  return {
    /**
     * Wait until the replica has applied `gtids` (the fenced primary's final position), or, with
     * the primary gone, everything it already received. Heartbeats while it waits.
     */
    async waitForCatchUp({
      replica,
      gtids,
      heartbeatTable,
      timeoutSeconds,
    }: {
      replica: string;
      gtids: string | null;
      heartbeatTable: string;
      timeoutSeconds: number;
    }): Promise<CatchUpResult> {
      const status = await read.readReplicationStatus({ server: replica });
      if (status.configured && !status.sqlRunning) {
        throw failure(
          ErrorType.ReplicationBroken,
          `${replica}: SQL thread stopped: ${status.lastSqlError || 'no error recorded'}`,
          { replica },
        );
      }
      // With the primary up (gtids known), a stopped IO thread means the replica will never get there.
      if (gtids !== null && status.configured && !status.ioRunning) {
        throw failure(
          ErrorType.ReplicationBroken,
          `${replica}: IO thread not running: ${status.lastIoError || 'no error recorded'}`,
          { replica },
        );
      }
      const target = gtids ?? status.receivedGtids;
      const deadline = Date.now() + timeoutSeconds * 1000;
      const caughtUp = await withConnection(replica, async (conn) => {
        const flavor = await flavorOf(replica, conn);
        const waitSql =
          flavor === 'mariadb' ? 'SELECT MASTER_GTID_WAIT(?, ?) AS r' : 'SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?) AS r';
        for (;;) {
          const left = Math.max(1, Math.min(5, Math.ceil((deadline - Date.now()) / 1000)));
          const rows = await run(replica, conn, waitSql, [target, left]);
          if (Number(rows[0].r) === 0) return true;
          heartbeat({ waitingFor: target });
          if (Date.now() >= deadline) return false;
        }
      });
      const lagNow = await withConnection(replica, async (conn) => {
        const flavor = await flavorOf(replica, conn);
        const have = String((await run(replica, conn, executedSql(flavor)))[0].g);
        return target ? transactionsBehind(flavor, target, have) : 0;
      });
      const hb = await withConnection(replica, async (conn) => {
        const rows = await run(replica, conn, `SELECT UNIX_TIMESTAMP(MAX(ts)) AS t FROM ${quoteName(heartbeatTable)}`);
        return rows[0].t === null ? null : Math.round(Number(rows[0].t) * 1000);
      });
      if (!caughtUp) {
        throw failure(
          ErrorType.ReplicaLagTooHigh,
          `${replica} did not apply ${target} within ${timeoutSeconds} s (${lagNow} transactions behind)`,
          {
            replica,
            transactionsBehind: lagNow,
          },
        );
      }
      return { replica, waitedFor: target, caughtUp, transactionsBehind: lagNow, replicaHeartbeatAt: hb };
    },

    /**
     * Stop replication for good, give the server the heartbeat and make it writable. Idempotent. The
     * statements that cannot be taken back come last (forgetting the source, then read_only = OFF): a promotion
     * that fails before them leaves a read-only server that still knows its source, which compensation can
     * simply re-protect; once read_only is OFF the server may have taken writes, and compensation fences it again
     * before the old primary is reopened.
     */
    async promoteReplica({
      server,
      heartbeatEvent,
    }: {
      server: string;
      heartbeatEvent: string;
    }): Promise<PromoteResult> {
      const promoted = pools.withPrivateSession(server, async (conn) => {
        const flavor = await flavorOf(server, conn);
        const before = await read.readReplicationStatus({ server });
        const ro = await run(server, conn, 'SELECT @@read_only AS ro');
        const alreadyPrimary = !before.configured && Number(ro[0].ro) === 0;
        if (before.configured) await run(server, conn, flavor === 'mariadb' ? 'STOP SLAVE' : 'STOP REPLICA');
        // The event only stamps while the server is writable (its body checks read_only): harmless until then.
        await setHeartbeatEvent(server, conn, heartbeatEvent, true);
        const gtids = String((await run(server, conn, executedSql(flavor)))[0].g);
        if (before.configured) await run(server, conn, flavor === 'mariadb' ? 'RESET SLAVE ALL' : 'RESET REPLICA ALL');
        if (flavor === 'mysql') await run(server, conn, 'SET GLOBAL super_read_only = OFF');
        await run(server, conn, 'SET GLOBAL read_only = OFF');
        return { server, alreadyPrimary, gtids };
      });
      return whileHeartbeating({ promoting: server }, promoted);
    },
  };
}
