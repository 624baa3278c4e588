/**
 * Builds every adapter from a loaded inventory: the one place where secret references
 * become credentials. Tests call this with the sandbox inventory to get real adapters.
 */
import type { LoadedInventory } from '../config/load';
import { resolvePath, resolveSecret } from '../config/load';
import { AwsClients, awsConnectionFromInventory } from './aws/clients';
import { createAwsActivities } from './aws';
import { createAwsFailoverActivities } from './aws/failover';
import { createRdsReplicaActivities } from './aws/rds-replica';
import { createAwsFenceActivities } from './aws/fence';
import { createHealthActivities } from './health';
import { createMysqlTopologyActivities, type ReplicationCredentials } from './mysql/topology';
import { createNotifyActivities } from './notify';
import { createInventoryActivities } from './inventory';
import { createApprovalActivities } from './approvals';
import { createMysqlActivities, MysqlPools } from './mysql';
import { createSshActivities, sshTargetFromInventory, type SshTarget } from './ssh';
import { createSnapshotActivities } from './aws/snapshots';
import { createSnapshotRetentionActivities } from './aws/snapshot-retention';
import { createDumpActivities } from './mysql/dump';
import { createPhysicalBackupActivities } from './mysql/physical';
import { createBinlogArchiveActivities } from './mysql/binlogs';
import { createFileTreeActivities } from './filetree';
import { createTopologyDiscoveryActivities } from './mysql/discovery';
import { createDrillCopyActivities } from './mysql/drill-copy';
import { createScratchIsolation } from './mysql/scratch-isolation';
import { createDrillReportActivities } from './reports/drill-report';
import { createStorageActivities } from './storage';
import { BackupStores } from './storage/destinations';
import { createRestoreActivities } from './restore';
import { createColdRestoreActivities } from './restore/cold';
import { createPointInTimeActivities } from './restore/pitr';
import { createPhysicalRestoreActivities } from './restore/physical';
import { createRdsRestoreActivities } from './restore/rds';
import { createReportActivities } from './reports/restore-test';
import { createReadinessActivities } from './readiness';
import { createServiceLockActivities } from './locks';
import { failure } from './errors';
import { ErrorType } from '../contract';

export interface Adapters {
  activities: ReturnType<typeof buildActivities>;
  close(): Promise<void>;
}

function buildActivities(
  loaded: LoadedInventory,
  aws: AwsClients,
  pools: MysqlPools,
  sshTargets: (name: string) => SshTarget,
  replication: ReplicationCredentials,
) {
  const awsFailover = createAwsFailoverActivities(aws);
  const backupStores = new BackupStores(loaded.inventory, loaded.baseDir, aws.connection);
  // Scratch is never production: every restore target is read live before anything is written to it.
  const isolation = createScratchIsolation(() => loaded.inventory.services, pools);
  return {
    ...createInventoryActivities(loaded.inventory),
    // Signed approvals: ssh-keygen -Y verify against the approvers' keys in the inventory.
    ...createApprovalActivities(loaded.inventory),
    ...createAwsActivities(aws),
    ...awsFailover,
    ...createRdsReplicaActivities(aws),
    ...createAwsFenceActivities(aws),
    ...createMysqlActivities(pools),
    ...createMysqlTopologyActivities(pools, replication),
    // Live roles: who is writable now, read from the servers (every runbook acts on it, not on role names).
    ...createTopologyDiscoveryActivities((name) => serviceNamed(loaded, name), pools).activities,
    ...createSshActivities(sshTargets),
    // Nightly backup: destinations (file system, S3), the streaming dump, EBS/RDS snapshots.
    ...createStorageActivities(backupStores, loaded.inventory, aws),
    ...createDumpActivities(backupStores, pools),
    // Nightly backup options: physical (mariabackup, on the DB host) and the binlog archive (PITR).
    ...createPhysicalBackupActivities(backupStores, pools, sshTargets, loaded.inventory.mysqlServers),
    ...createBinlogArchiveActivities(backupStores, pools),
    // File trees (backup.paths): GNU tar listed-incremental levels over SSH, and their restore into scratch.
    ...createFileTreeActivities(backupStores, sshTargets),
    ...createSnapshotActivities(aws, { drKmsKeyId: loaded.inventory.regions.drKmsKeyId }),
    ...createSnapshotRetentionActivities(aws),
    ...createNotifyActivities(loaded.inventory, awsFailover, loaded.baseDir),
    ...createHealthActivities(),
    // Scheduled readiness: the previous run of the schedule, for drift alerts.
    ...createReadinessActivities(),
    // One topology change per service: who holds lock-<service> (workflows/lock.ts).
    ...createServiceLockActivities(),
    // Monthly restore test: checksum, streamed restore into scratch, validation, RDS restore in DR, reports.
    ...createRestoreActivities(backupStores, pools, isolation),
    ...createPointInTimeActivities(backupStores, pools, isolation),
    ...createPhysicalRestoreActivities(backupStores),
    ...createColdRestoreActivities(loaded.inventory, backupStores, pools, isolation),
    ...createRdsRestoreActivities(aws),
    ...createReportActivities(backupStores),
    // Quarterly drill: the isolated scope's DR data copy, and drill reports next to the backups.
    ...createDrillCopyActivities(pools, isolation),
    ...createDrillReportActivities(backupStores, loaded.inventory, drillReportsDir(loaded)),
  };
}

function serviceNamed(loaded: LoadedInventory, name: string) {
  const svc = loaded.inventory.services.find((s) => s.name === name);
  if (!svc) throw failure(ErrorType.UnknownService, `unknown service "${name}"`, { service: name });
  return svc;
}

/** Where drill reports go for a service without backup destinations: DRBOOK_REPORTS_DIR, else <data>/reports. */
function drillReportsDir(loaded: LoadedInventory): string {
  return (
    process.env.DRBOOK_REPORTS_DIR ?? resolvePath(loaded.baseDir, `${process.env.DRBOOK_DATA ?? '../.data'}/reports`)
  );
}

export function buildAdapters(loaded: LoadedInventory): Adapters {
  const { inventory, baseDir } = loaded;
  const aws = new AwsClients(awsConnectionFromInventory(inventory, baseDir));
  const pools = new MysqlPools(inventory.mysqlServers, (server) => resolveSecret(server.password, baseDir));
  // Keys and known_hosts are read when a host is first used, so a rotated key needs no restart.
  const sshTargets = (name: string): SshTarget => {
    const host = inventory.sshHosts[name];
    if (!host) throw failure(ErrorType.ResourceNotFound, `SSH host "${name}" is not in the inventory`);
    return sshTargetFromInventory(name, host, {
      secret: (ref) => resolveSecret(ref, baseDir),
      path: (p) => resolvePath(baseDir, p),
    });
  };
  const replication: ReplicationCredentials = (service) => {
    const config = inventory.services.find((s) => s.name === service)?.database?.replication;
    if (!config)
      throw failure(
        ErrorType.NotConfigured,
        `service ${service} has no database.replication credentials in the inventory`,
      );
    return { user: config.user, password: resolveSecret(config.password, baseDir) };
  };
  return {
    activities: buildActivities(loaded, aws, pools, sshTargets, replication),
    async close() {
      aws.destroy();
      await pools.end();
    },
  };
}

export type Activities = Adapters['activities'];
