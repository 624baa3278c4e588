/**
 * Where a backup's objects live inside a destination. One layout for the file system and
 * S3, so a restore by hand finds the same three files everywhere (docs/backup.md).
 *
 *   <service>/logical/<backupId>/dump.sql.zst (+ .sha256, manifest.json)       mariadb-dump, zstd
 *   <service>/physical/<backupId>/backup.xbstream.zst (+ .sha256, manifest.json) mariabackup, zstd
 *   <service>/binlog/<server>/<binlog file> (+ .sha256)                          closed binary logs, as they are
 */
export const DUMP_FILE = 'dump.sql.zst';
export const PHYSICAL_FILE = 'backup.xbstream.zst';
export const CHECKSUM_FILE = `${DUMP_FILE}.sha256`;
export const MANIFEST_FILE = 'manifest.json';

/** Backups with a manifest, each kind under its own root so retention and listing never mix them. */
export type BackupKind = 'logical' | 'physical';
export const BACKUP_FILE: Record<BackupKind, string> = { logical: DUMP_FILE, physical: PHYSICAL_FILE };

/** `<service>/<kind>/` : every backup of one kind of a service, relative to the destination's root. */
export const serviceRoot = (service: string, kind: BackupKind = 'logical') => `${service}/${kind}/`;
export const backupRoot = (service: string, backupId: string, kind: BackupKind = 'logical') =>
  `${serviceRoot(service, kind)}${backupId}/`;
export const backupKey = (service: string, backupId: string, kind: BackupKind = 'logical') =>
  `${backupRoot(service, backupId, kind)}${BACKUP_FILE[kind]}`;
export const dumpKey = (service: string, backupId: string) => backupKey(service, backupId, 'logical');
export const checksumKey = (service: string, backupId: string, kind: BackupKind = 'logical') =>
  `${backupKey(service, backupId, kind)}.sha256`;
export const manifestKey = (service: string, backupId: string, kind: BackupKind = 'logical') =>
  `${backupRoot(service, backupId, kind)}${MANIFEST_FILE}`;

/** The `.sha256` file: the format `sha256sum -c` reads, naming the file beside it. */
export const checksumLine = (sha256: string, file: string = DUMP_FILE) => `${sha256}  ${file}\n`;

/** Archived binary logs of one server: `<service>/binlog/<server>/`. */
export const binlogRoot = (service: string, server: string) => `${service}/binlog/${server}/`;
export const binlogKey = (service: string, server: string, file: string) => `${binlogRoot(service, server)}${file}`;
