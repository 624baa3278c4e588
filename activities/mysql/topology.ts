/**
 * Topology changes: fence a primary, wait for a replica to catch up, promote it, and
 * rebuild an old primary as a replica of the new one. Each one checks the server's
 * state first, so a retried or repeated call is a success, not a second change.
 *
 * MariaDB is exercised by the test suite; the MySQL 8 spellings are chosen by flavour
 * (VERSION()) and follow the MySQL manual, but no MySQL server runs in the local stack.
 */
import { createFenceActivities, createFenceCheckActivities } from './fence';
import type { MysqlPools } from './index';
import { createPromotionActivities } from './promotion';
import { createRecloneActivities } from './reclone';
import { createReprotectActivities } from './reprotect';
import { topologySql, type ReplicationCredentials } from './topology-sql';

export type { ReplicationCredentials } from './topology-sql';

/** Fence, catch up, promote, re-protect and re-clone, on the servers named in the inventory. */
export function createMysqlTopologyActivities(pools: MysqlPools, replicationCredentials: ReplicationCredentials) {
  const sql = topologySql(pools);
  return {
    ...createFenceActivities(pools, sql),
    ...createFenceCheckActivities(pools, sql),
    ...createPromotionActivities(pools, sql),
    ...createReprotectActivities(pools, sql, replicationCredentials),
    ...createRecloneActivities(pools, sql, replicationCredentials),
  };
}

export type MysqlTopologyActivities = ReturnType<typeof createMysqlTopologyActivities>;
