/**
 * The database's own backups: the logical dump and (backup.physical) mariabackup's copy of the whole server. Each
 * is streamed to every destination → every copy verified → its manifest. A backup counts only once its manifest is
 * written.
 */
import {
  backupManifest,
  type BackupCopy,
  type BackupManifest,
  type ServiceBackupResult,
  type WrittenBackup,
} from '../../contract';
import { bookkeeping, failed, streaming, type ServiceBackup } from './context';

const PHYSICAL_COUNTS: Pick<BackupManifest, 'tables' | 'rowCounts'> = {
  tables: [],
  rowCounts: { exact: false, method: 'not counted: a physical copy of the whole server (mariabackup)' },
};

/** dump → verify every copy → manifest; null if any of it failed (the failure is recorded). */
export async function logicalBackup(b: ServiceBackup): Promise<BackupManifest | null> {
  const { service, backupId, steps, status } = b;
  try {
    status.phase = 'dumping';
    const dump = await steps.run(
      'dumpDatabase',
      () => streaming.dumpDatabase({ service, backupId, source: b.input.source }),
      (d) =>
        `${d.object.uncompressedSize} bytes → ${d.object.size} (zstd) to ${d.copies.length} destinations; ` +
        `rows ${d.rowCounts.exact ? 'exact' : 'approximate'}`,
    );
    status.phase = 'verifying';
    const copies = await verifyCopies(b, dump, 'logical');
    const manifest = backupManifest({ id: backupId, service, kind: 'logical' }, dump, copies, dump);
    status.phase = 'writing manifest';
    await steps.run(
      'writeManifest',
      () => bookkeeping.writeManifest({ manifest }),
      (r) => r.manifestKey,
    );
    return manifest;
  } catch (err) {
    failed(b, 'logical backup', err);
    return null;
  }
}

/** mariabackup on the database host → verify every copy → manifest (backup.physical only). */
export async function physicalBackup(b: ServiceBackup): Promise<ServiceBackupResult['physical']> {
  const { service, backupId, steps } = b;
  if (!b.backup.physical) return null;
  try {
    b.status.phase = 'physical backup';
    const p = await steps.run(
      'takePhysicalBackup',
      () => streaming.takePhysicalBackup({ service, backupId, source: b.input.source }),
      (d) =>
        `${d.object.uncompressedSize} bytes → ${d.object.size} (zstd) on ${d.ranOn}, ` +
        `to ${d.copies.length} destinations`,
    );
    const copies = await verifyCopies(b, p, 'physical');
    const manifest = backupManifest({ id: backupId, service, kind: 'physical' }, p, copies, PHYSICAL_COUNTS);
    const written = await steps.run(
      'writeManifest physical',
      () => bookkeeping.writeManifest({ manifest }),
      (r) => r.manifestKey,
    );
    return { manifestKey: written.manifestKey, size: p.object.size, sha256: p.object.sha256 };
  } catch (err) {
    failed(b, 'physical backup', err);
    return null;
  }
}

/** Closed binary logs to every destination, for point-in-time recovery (backup.binlogArchive only). */
export async function archiveBinlogs(b: ServiceBackup): Promise<ServiceBackupResult['binlogs']> {
  if (!b.backup.binlogArchive) return null;
  b.status.phase = 'archiving binlogs';
  try {
    const r = await b.steps.run(
      'archiveBinlogs',
      () => streaming.archiveBinlogs({ service: b.service }),
      (r) =>
        `${r.copied.length} copied, ${r.alreadyArchived.length} already archived, newest ${r.newest ?? 'none'}, ` +
        `active ${r.active} (not archived)`,
    );
    return { copied: r.copied, newest: r.newest, newestClosedAt: r.newestClosedAt };
  } catch (err) {
    failed(b, 'binlog archive', err);
    return null;
  }
}

/** RDS automated backups: retention and window as the inventory says; drift is reported and fixed. */
export async function enforceRdsBackupSettings(b: ServiceBackup): Promise<ServiceBackupResult['rdsBackupSettings']> {
  const rds = b.svc.rds;
  if (!rds || rds.backupRetentionDays === undefined) return null;
  const retentionDays = rds.backupRetentionDays;
  try {
    const r = await b.steps.run(
      'enforceRdsBackupSettings',
      () =>
        b.primarySide.enforceRdsBackupSettings({
          region: rds.region,
          instance: rds.instance,
          retentionDays,
          window: rds.backupWindow,
          enforce: true,
        }),
      (r) => (r.drift.length ? `drift: ${r.drift.join('; ')}${r.enforced ? ' (fixed)' : ''}` : 'as the inventory says'),
    );
    return { drift: r.drift, enforced: r.enforced };
  } catch (err) {
    failed(b, 'RDS backup settings', err);
    return null;
  }
}

/** Every copy read back against the object's size and SHA-256, all at once: the copies as the manifest lists them. */
async function verifyCopies(
  b: ServiceBackup,
  written: WrittenBackup & { copies: Omit<BackupCopy, 'size' | 'sha256' | 'verifiedAt'>[] },
  kind: BackupManifest['kind'],
): Promise<BackupCopy[]> {
  const { service, backupId } = b;
  const { object } = written;
  const verified = await Promise.all(
    written.copies.map((c) =>
      b.steps.run(
        kind === 'physical' ? `verifyCopy physical ${c.destination}` : `verifyCopy ${c.destination}`,
        () =>
          streaming.verifyCopy({
            service,
            backupId,
            destination: c.destination,
            size: object.size,
            sha256: object.sha256,
            ...(kind === 'physical' ? { kind } : {}),
            key: object.key,
          }),
        (v) => `${v.location}: ${v.size} bytes, sha256 ${v.sha256.slice(0, 12)}…`,
      ),
    ),
  );
  return written.copies.map((c, i) => ({ ...c, ...verified[i] }));
}
