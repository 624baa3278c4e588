/** The backup under test: the newest verified one (or the one asked for), its manifest, its checksum. */
import type { BackupManifest } from '../../contract';
import { round1 } from '../steps';
import { acts, check, checked, type RestoreTest } from './context';

type Picked = Awaited<ReturnType<typeof acts.quick.pickNewestVerifiedBackup>>;

export interface PickedBackup {
  backupId: string;
  destination: Picked['destination'];
  manifest: BackupManifest;
  /** How old its data was when the test began using it (RPO evidence). */
  ageSeconds: number;
}

/** Pick the backup and read its manifest. */
export async function pickBackup(t: RestoreTest): Promise<PickedBackup> {
  const { run, svc, input, report } = t;
  const picked = await checked(
    t,
    'backup-available',
    'pickNewestVerifiedBackup',
    () => acts.quick.pickNewestVerifiedBackup({ service: svc.name, backupId: input.backupId }),
    (p) => `${p.backupId} from ${p.destination} (${p.verifiedCount} verified there)`,
  );
  report.backup.id = picked.backupId;
  report.backup.source = picked.location;
  const manifest: BackupManifest = await checked(
    t,
    'manifest',
    'fetchManifest',
    () => acts.quick.fetchManifest({ service: svc.name, backupId: picked.backupId, destination: picked.destination }),
    (m) => `${m.tables.length} tables in ${m.databases.join(', ')}, ${m.object.size} bytes`,
  );
  Object.assign(report.backup, {
    startedAt: manifest.startedAt,
    size: manifest.object.size,
    sha256: manifest.object.sha256,
    position: manifest.position,
  });
  check(t, 'backup-available', true, `${picked.backupId}, taken ${manifest.startedAt}, read from ${picked.location}`);
  // The data is as old as the dump's snapshot (its start), measured when the test begins using it.
  const ageSeconds = Math.max(0, Math.round((Date.now() - Date.parse(manifest.startedAt)) / 1000));
  report.measured.backupAgeSeconds = ageSeconds;
  run.measured.rpoSeconds = ageSeconds;
  return { backupId: picked.backupId, destination: picked.destination, manifest, ageSeconds };
}

/** Prove the object is the one the manifest describes, before restoring anything. Returns the seconds it took. */
export async function verifyChecksum(t: RestoreTest, b: PickedBackup): Promise<number> {
  const sum = await checked(
    t,
    'checksum',
    'verifyBackupChecksum',
    () =>
      acts.reading.verifyBackupChecksum({
        service: t.svc.name,
        backupId: b.backupId,
        destination: b.destination,
        size: b.manifest.object.size,
        sha256: b.manifest.object.sha256,
      }),
    (c) => `${c.bytes} bytes, SHA-256 ${c.sha256.slice(0, 12)}… matches the manifest`,
  );
  t.report.measured.checksumSeconds = round1(sum.seconds);
  check(t, 'checksum', true, `${sum.bytes} bytes, SHA-256 ${sum.sha256} equals the manifest's`);
  return sum.seconds;
}
