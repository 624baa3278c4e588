/** Backups: the manifests every copy is checked against, their results and compliance. */

// ------------------------------------------------------------------ nightly backup
// Layout, in every destination (a file-system root or an S3 bucket + prefix):
//   <prefix><service>/logical/<backupId>/dump.sql.zst          the dump, zstd-compressed
//   <prefix><service>/logical/<backupId>/dump.sql.zst.sha256   `sha256sum -c` format
//   <prefix><service>/logical/<backupId>/manifest.json         written last, only once every copy is verified
// A backup is verified iff its manifest.json exists: restore tests and retention trust nothing else.

export const BACKUP_DESTINATIONS = ['local', 'primary', 'offsite'] as const;
export type BackupDestinationName = (typeof BACKUP_DESTINATIONS)[number];

export interface BackupCopy {
  destination: BackupDestinationName;
  /** Media kind, for 3-2-1: the local file system and object storage are different media. */
  kind: 'file' | 's3';
  /** Region the copy lives in (null for the local file system). */
  region: string | null;
  offsite: boolean;
  /** Where the dump object is: an absolute path or s3://bucket/key. */
  location: string;
  /** The S3 object version this attempt wrote, where the bucket keeps versions (absent otherwise). */
  versionId?: string;
  /**
   * S3 Object Lock on this copy (destination `objectLock`): nobody holding the worker's credentials can delete or
   * overwrite it before `retainUntil` (GOVERNANCE: except a principal allowed to bypass; COMPLIANCE: nobody).
   */
  objectLock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; retainUntil: string };
  /** Server-side encryption of this copy (destination `encryption`): SSE-KMS with this key. */
  encryption?: { algorithm: 'aws:kms'; kmsKeyId: string };
  size: number;
  sha256: string;
  verifiedAt: string;
}

export interface BackupManifest {
  format: 'drbook-backup/1';
  id: string;
  service: string;
  /** logical: mariadb-dump; physical: mariabackup (xbstream), the whole server. */
  kind: 'logical' | 'physical';
  startedAt: string;
  endedAt: string;
  source: { server: string; engine: 'mariadb' | 'mysql'; version: string };
  /** Where the dump sits in the binlog: a replica or a point-in-time recovery starts here. */
  position: {
    gtid: string | null;
    binlogFile: string | null;
    binlogPos: number | null;
    /** When the server created binlogFile (UTC, as in the archive's keys): which of two same-named logs it is. */
    binlogCreatedAt?: string | null;
  };
  databases: string[];
  /** COUNT(*) per table, read in a snapshot taken at the dump's own binlog position (see rowCounts). */
  tables: { database: string; table: string; rows: number }[];
  rowCounts: { exact: boolean; method: string };
  /**
   * The dump object, relative to each destination's root/prefix: each attempt writes its own
   * (`<service>/<kind>/<backupId>/<attempt>/<file>`; older backups: `<service>/<kind>/<backupId>/<file>`).
   */
  object: { key: string; size: number; sha256: string; compression: 'zstd'; uncompressedSize: number };
  copies: BackupCopy[];
  tools: Record<string, string>;
  verified: true;
}

/** What a database backup tool (mariadb-dump, mariabackup) reports it wrote, as far as the manifest tells it. */
export interface WrittenBackup {
  server: string;
  engine: BackupManifest['source']['engine'];
  version: string;
  startedAt: string;
  endedAt: string;
  position: BackupManifest['position'];
  databases: string[];
  object: BackupManifest['object'];
  tools: Record<string, string>;
}

/**
 * A database backup's manifest: what the tool wrote, its copies as verified and its row counts. Written last, once
 * every copy is verified; the backup counts from then on.
 */
export function backupManifest(
  of: { id: string; service: string; kind: BackupManifest['kind'] },
  written: WrittenBackup,
  copies: BackupCopy[],
  counts: Pick<BackupManifest, 'tables' | 'rowCounts'>,
): BackupManifest {
  return {
    format: 'drbook-backup/1',
    ...of,
    startedAt: written.startedAt,
    endedAt: written.endedAt,
    source: { server: written.server, engine: written.engine, version: written.version },
    position: written.position,
    databases: written.databases,
    tables: counts.tables,
    rowCounts: counts.rowCounts,
    object: written.object,
    copies,
    tools: written.tools,
    verified: true,
  };
}

/** One entry of a file-tree backup's per-file list: the tree as it was when the backup was taken. */
export interface FileTreeEntry {
  /** Relative to the tree's root, "/"-separated. */
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  /** Permission bits in octal, as `stat -c %a` prints them ("644", "4755"). */
  mode: string;
  /**
   * Files and symlinks (a symlink's size is its target's length); not directories (their size is the file system's).
   */
  size?: number;
  sha256?: string;
  /** A symlink's target, as stored (never followed). */
  target?: string;
}

/**
 * A file-tree backup (backup.paths): one GNU tar archive of one tree at one level, compressed with zstd, with tar's
 * snapshot (.snar) file after it and the per-file list of the tree beside it. Signed and written last, like every
 * manifest; the snapshot's and the list's SHA-256 are in it, so the signature covers them too.
 */
export interface FileTreeManifest {
  format: 'drbook-filetree/1';
  id: string;
  service: string;
  kind: 'files';
  /** fileTreeId({ host, path }). */
  tree: string;
  host: string;
  path: string;
  exclude: string[];
  level: 'full' | 'differential' | 'incremental';
  /** The chain's full (its own id for a full). */
  chain: string;
  /** The backup whose snapshot this one started from: the full (differential) or the previous one (incremental). */
  parent: string | null;
  /** What a restore extracts before this archive, in order: [] for a full, [full] for a differential, ... */
  restoreChain: string[];
  startedAt: string;
  endedAt: string;
  object: { key: string; size: number; sha256: string; compression: 'zstd'; uncompressedSize: number };
  /** tar's --listed-incremental snapshot after this backup: the next one of the chain starts from a copy of it. */
  snapshot: { key: string; size: number; sha256: string };
  /** The per-file list (FileTreeEntry[] as JSON), a companion object: too big for the manifest on a large tree. */
  files: { key: string; size: number; sha256: string; count: number; bytes: number };
  copies: BackupCopy[];
  tools: Record<string, string>;
  verified: true;
}

export interface BackupCompliance {
  service: string;
  /** Verified copies of the newest backup, their media kinds, and whether one is off-site (3-2-1). */
  copies: number;
  mediaKinds: string[];
  offsite: boolean;
  rule321: boolean;
  /** Copies under S3 Object Lock (immutable until their retention ends), and 3-2-1-1: 3-2-1 plus one such copy. */
  immutableCopies?: number;
  /**
   * Offline destinations (`offline` in the inventory) holding a copy verified within their `verifiedWithin`: they
   * count for 3-2-1-1 like an immutable copy (absent in results recorded before offline copies were modelled).
   */
  offlineCopies?: number;
  rule3211?: boolean;
  /** Age of the newest verified backup when checked. */
  ageSeconds: number | null;
  /**
   * Data-loss window if disaster struck just before this backup: time since the previous verified one (or the schedule
   * interval).
   */
  exposureSeconds: number | null;
  rpoSeconds: number;
  rpoMet: boolean;
  problems: string[];
}

export interface ServiceBackupResult {
  service: string;
  backupId: string;
  /** Relative key of the verified manifest (the same in every destination). */
  manifestKey: string;
  size: number;
  uncompressedSize: number;
  sha256: string;
  copies: { destination: BackupDestinationName; location: string }[];
  snapshots: { volumes: { volumeId: string; snapshotId: string; drSnapshotId: string }[]; rds: string | null };
  retention: {
    destination: BackupDestinationName;
    kept: string[];
    deleted: string[];
    /** Due for deletion but under Object Lock: kept until the lock ends, then removed by a later run. */
    locked?: { id: string; until: string }[];
  }[];
  compliance: BackupCompliance;
  durationSeconds: number;
  /** Physical backup (backup.physical in the inventory): its manifest key, size and SHA-256. */
  physical?: { manifestKey: string; size: number; sha256: string } | null;
  /** Binary-log archive (backup.binlogArchive): files copied this run and the newest archived one. */
  binlogs?: { copied: string[]; newest: string | null; newestClosedAt: string | null } | null;
  /** RDS automated backups (rds.backupRetentionDays / backupWindow): drift found, and whether it was fixed. */
  rdsBackupSettings?: { drift: string[]; enforced: boolean } | null;
  /** File trees (backup.paths): each tree's backup this run, its level and chain. */
  fileTrees?: {
    tree: string;
    level: string;
    chain: string;
    manifestKey: string;
    files: number;
    size: number;
    /** Where the parent's tar snapshot came from: the host's state directory, or storage (the host's was not it). */
    snapshotFrom: string;
  }[];
}

export interface NightlyBackupSummary {
  backupId: string;
  requested: number;
  succeeded: { service: string; size: number; durationSeconds: number; rule321: boolean; rpoMet: boolean }[];
  /** Every failure and why, one entry per failed service. */
  failed: { service: string; type: string; reason: string }[];
  /** Workflow runs (continue-as-new) this night took. */
  runs: number;
}

/** What a nightly run hands to its continuation: progress so far, never data. */
export interface NightlyBackupProgress {
  backupId: string;
  /** Services not yet started (null: not yet listed). */
  remaining: string[] | null;
  requested: number;
  succeeded: NightlyBackupSummary['succeeded'];
  failed: NightlyBackupSummary['failed'];
  runs: number;
}

/**
 * A file tree's id in the destinations' keys: its host and path, every character but letters, digits, "." and "-"
 * written "_" (`primary-host:/srv/wiki/uploads` → `primary-host_srv_wiki_uploads`). The inventory refuses two trees
 * of a service with the same id.
 */
export function fileTreeId(tree: { host: string; path: string }): string {
  return `${tree.host}${tree.path.replace(/[^A-Za-z0-9.-]/g, '_')}`;
}
