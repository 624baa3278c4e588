/**
 * How a database backup (the logical dump, the physical copy) starts: the member to read from (the one writable
 * now, or a healthy replica of it with backup.source: replica; a fenced one is refused), the destinations it
 * goes to, each checked before anything is written (Object Lock as configured, no manifest under this backup id
 * yet), and this attempt's own object key, so a retry never writes over another attempt's.
 */
import { randomBytes } from 'node:crypto';
import { ErrorType, type BackupDestinationName, type BackupManifest } from '../../contract';
import { failure } from '../errors';
import { activityContext } from '../process/heartbeat';
import { checkObjectLocks, type BackupStores } from '../storage/destinations';
import type { WrittenCopy } from '../storage/store';
import { backupKey, newAttempt, type BackupKind } from '../storage/layout';
import { refuseExistingBackup } from '../storage/manifest';
import { createTopologyDiscoveryActivities } from './discovery';
import type { MysqlPools } from './index';

/** What a database backup run (the dump, the physical copy) reports: its manifest before the copies are verified. */
export interface DatabaseBackupRun {
  service: string;
  backupId: string;
  server: string;
  engine: 'mariadb' | 'mysql';
  version: string;
  startedAt: string;
  endedAt: string;
  databases: string[];
  object: BackupManifest['object'];
  /** Copies written (not yet verified: verifyCopy reads each back). */
  copies: WrittenCopy[];
  tools: Record<string, string>;
}

async function startDatabaseBackup(
  stores: BackupStores,
  live: ReturnType<typeof createTopologyDiscoveryActivities>,
  {
    service,
    backupId,
    kind,
    source,
    destinations,
  }: {
    service: string;
    backupId: string;
    kind: BackupKind;
    /** A member to read from instead of the live one (refused if fenced). */
    source?: string;
    /** Default: every destination of the service. */
    destinations?: BackupDestinationName[];
  },
) {
  const svc = stores.service(service);
  const database = svc.database;
  if (!database) throw failure(ErrorType.NotConfigured, `service ${service} has no database to back up`, { service });
  const { server, topology } = await live.backupSource(service, {
    named: source,
    preferReplica: svc.backup.source === 'replica',
  });
  const targets = stores.forService(service).filter((s) => !destinations || destinations.includes(s.name));
  if (targets.length === 0) throw failure(ErrorType.NotConfigured, `service ${service} has no backup destination`);
  await checkObjectLocks(targets);
  await refuseExistingBackup(targets, service, backupId, kind);
  const attempt = newAttempt(activityContext()?.info.attempt ?? 1, randomBytes(4).toString('hex'));
  return {
    backup: svc.backup,
    engine: database.engine,
    server,
    topology,
    targets,
    key: backupKey(service, backupId, kind, attempt),
    startedAt: new Date().toISOString(),
  };
}

/**
 * The start of every backup of a service's database, and its zstd settings: level 1 by default (on mariadb-dump
 * output it used half the CPU of level 3 and compressed as well or better, docs/benchmarks.md), threads 0 (one
 * per core).
 */
export function databaseBackups(
  stores: BackupStores,
  pools: MysqlPools,
  options: { zstdLevel?: number; zstdThreads?: number },
) {
  const live = createTopologyDiscoveryActivities((name) => stores.service(name), pools);
  return {
    zstd: { level: options.zstdLevel ?? 1, threads: options.zstdThreads ?? 0 },
    start: (args: Parameters<typeof startDatabaseBackup>[2]) => startDatabaseBackup(stores, live, args),
  };
}
