/**
 * Where a backup's objects live inside a destination. One layout for the file system and
 * S3, so a restore by hand finds the same three files everywhere (docs/backup.md).
 */
export const DUMP_FILE = 'dump.sql.zst';
export const CHECKSUM_FILE = `${DUMP_FILE}.sha256`;
export const MANIFEST_FILE = 'manifest.json';

/** `<service>/logical/` : every logical backup of a service, relative to the destination's root. */
export const serviceRoot = (service: string) => `${service}/logical/`;
export const backupRoot = (service: string, backupId: string) => `${serviceRoot(service)}${backupId}/`;
export const dumpKey = (service: string, backupId: string) => `${backupRoot(service, backupId)}${DUMP_FILE}`;
export const checksumKey = (service: string, backupId: string) => `${backupRoot(service, backupId)}${CHECKSUM_FILE}`;
export const manifestKey = (service: string, backupId: string) => `${backupRoot(service, backupId)}${MANIFEST_FILE}`;

/** The `.sha256` file: the format `sha256sum -c` reads, naming the file beside it. */
export const checksumLine = (sha256: string) => `${sha256}  ${DUMP_FILE}\n`;
