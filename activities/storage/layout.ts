/**
 * Where a backup's objects live inside a destination. One layout for the file system and
 * S3, so a restore by hand finds the same three files everywhere (docs/backup.md).
 *
 *   <service>/logical/<backupId>/manifest.json (+ manifest.json.sig)          the backup counts: signed, written last
 *   <service>/logical/<backupId>/<attempt>/dump.sql.zst (+ .sha256)             mariadb-dump, zstd; one per attempt
 *   <service>/physical/<backupId>/<attempt>/backup.xbstream.zst (+ .sha256)     mariabackup, zstd; one per attempt
 *   <service>/binlog/<server>/<binlog file>@<created> (+ .sha256)               closed binary logs, as they are
 *   <service>/files/<tree>/<backupId>/manifest.json (+ .sig)                      a file tree's backup (backup.paths)
 *   <service>/files/<tree>/<backupId>/<attempt>/tree.tar.zst (+ .sha256)         GNU tar (listed-incremental), zstd
 *   <service>/files/<tree>/<backupId>/<attempt>/tree.snar                        tar's snapshot after this backup
 *   <service>/files/<tree>/<backupId>/<attempt>/files.json                       the per-file list of the tree
 *
 * Each attempt at a backup writes under its own `<attempt>` directory, and the manifest names the one
 * that was verified: an attempt that was superseded (timed out, still running) can never overwrite or
 * delete the copy a later attempt verified. Backups taken before attempts had directories keep their
 * files directly under `<backupId>/`; their manifests name those keys.
 */
export const DUMP_FILE = 'dump.sql.zst';
export const PHYSICAL_FILE = 'backup.xbstream.zst';
export const CHECKSUM_FILE = `${DUMP_FILE}.sha256`;
export const MANIFEST_FILE = 'manifest.json';
/** The manifest's Ed25519 signature (base64), over manifest.json's exact bytes. */
export const SIGNATURE_FILE = `${MANIFEST_FILE}.sig`;
/** An attempt's directory name: `a<attempt number>-<8 hex>`. */
export const ATTEMPT = /^a\d{1,6}-[0-9a-f]{8}$/;

/** Backups with a manifest, each kind under its own root so retention and listing never mix them. */
export type BackupKind = 'logical' | 'physical';
export const BACKUP_FILE: Record<BackupKind, string> = { logical: DUMP_FILE, physical: PHYSICAL_FILE };

/** `<service>/<kind>/` : every backup of one kind of a service, relative to the destination's root. */
export const serviceRoot = (service: string, kind: BackupKind = 'logical') => `${service}/${kind}/`;
export const backupRoot = (service: string, backupId: string, kind: BackupKind = 'logical') =>
  `${serviceRoot(service, kind)}${backupId}/`;
/** The backup object of one attempt (without `attempt`: the single key of backups taken before attempts). */
export const backupKey = (service: string, backupId: string, kind: BackupKind = 'logical', attempt?: string) =>
  `${backupRoot(service, backupId, kind)}${attempt ? `${attempt}/` : ''}${BACKUP_FILE[kind]}`;
export const dumpKey = (service: string, backupId: string, attempt?: string) =>
  backupKey(service, backupId, 'logical', attempt);
export const checksumKey = (service: string, backupId: string, kind: BackupKind = 'logical', attempt?: string) =>
  `${backupKey(service, backupId, kind, attempt)}.sha256`;
export const manifestKey = (service: string, backupId: string, kind: BackupKind = 'logical') =>
  `${backupRoot(service, backupId, kind)}${MANIFEST_FILE}`;
export const signatureKey = (service: string, backupId: string, kind: BackupKind = 'logical') =>
  `${backupRoot(service, backupId, kind)}${SIGNATURE_FILE}`;

/** A new attempt's directory name: unique, so no two attempts ever share a key. */
export function newAttempt(attemptNumber: number, random: string): string {
  return `a${Math.max(1, Math.min(999999, Math.trunc(attemptNumber)))}-${random}`;
}

/**
 * The object key a manifest names, if it is one of this backup's own: an attempt's file or the pre-attempt
 * single key, nothing else (a manifest can never point a restore at another backup's or service's object).
 */
export function isBackupObjectKey(key: unknown, service: string, backupId: string, kind: BackupKind): boolean {
  if (typeof key !== 'string') return false;
  if (key === backupKey(service, backupId, kind)) return true;
  const root = backupRoot(service, backupId, kind);
  if (!key.startsWith(root) || !key.endsWith(`/${BACKUP_FILE[kind]}`)) return false;
  return ATTEMPT.test(key.slice(root.length, key.length - BACKUP_FILE[kind].length - 1));
}

/** The `.sha256` file: the format `sha256sum -c` reads, naming the file beside it. */
export const checksumLine = (sha256: string, file: string = DUMP_FILE) => `${sha256}  ${file}\n`;

/** Archived binary logs of one server: `<service>/binlog/<server>/`. */
export const binlogRoot = (service: string, server: string) => `${service}/binlog/${server}/`;
export const binlogKey = (service: string, server: string, file: string) => `${binlogRoot(service, server)}${file}`;
/**
 * An archived log's file name: `binlog.000042@20250101T030000Z`, its name and when the server created it. RESET
 * MASTER starts the numbering again; the creation time keeps the new `binlog.000001` apart from the old one.
 */
export const archivedBinlogName = (log: string, createdAt: string) => `${log}@${createdAt}`;

/** A file tree's backups: `<service>/files/<tree>/` (tree: fileTreeId in contract/backup.ts). */
export const FILE_TREE_ARCHIVE = 'tree.tar.zst';
export const FILE_TREE_SNAPSHOT = 'tree.snar';
export const FILE_TREE_LIST = 'files.json';
export const fileTreeRoot = (service: string, tree: string) => `${service}/files/${tree}/`;
export const fileTreeBackupRoot = (service: string, tree: string, backupId: string) =>
  `${fileTreeRoot(service, tree)}${backupId}/`;
export const fileTreeKey = (service: string, tree: string, backupId: string, attempt: string, file: string) =>
  `${fileTreeBackupRoot(service, tree, backupId)}${attempt}/${file}`;
export const fileTreeManifestKey = (service: string, tree: string, backupId: string) =>
  `${fileTreeBackupRoot(service, tree, backupId)}${MANIFEST_FILE}`;

/** Whether `key` is one attempt's `file` of this file-tree backup (a manifest never points anywhere else). */
export function isFileTreeObjectKey(key: unknown, service: string, tree: string, backupId: string, file: string) {
  if (typeof key !== 'string') return false;
  const root = fileTreeBackupRoot(service, tree, backupId);
  if (!key.startsWith(root) || !key.endsWith(`/${file}`)) return false;
  return ATTEMPT.test(key.slice(root.length, key.length - file.length - 1));
}
