/**
 * File-tree backups (inventory backup.paths), over SSH on the tree's host, in GNU tar's listed-incremental format:
 *
 *   tar --create --listed-incremental=<snapshot> (host) | zstd | SHA-256 | every destination at once (worker)
 *
 * Level 0 (full) starts from no snapshot; a differential from a copy of its chain's full's snapshot; an incremental
 * from the previous backup's. tar records in the archive which names every directory held (its "dumpdir"), so an
 * extraction in chain order with --listed-incremental=/dev/null deletes what was deleted and renamed: the restore
 * is standard tools only (docs/backup.md). Beside each archive go tar's snapshot after it (tree.snar) and the tree's
 * per-file list (files.json: path, type, mode, size, SHA-256, symlink target); the signed manifest holds their
 * SHA-256s and is written last, once every copy was read back.
 *
 * Which snapshot a backup starts from: the signed manifest of its parent names the snapshot's SHA-256. The copy in
 * the host's state directory (backup.files.stateDir) is used only when it hashes to exactly that; otherwise (lost,
 * older, another run's) the worker reads the parent's snapshot from a destination, checks it against the same
 * SHA-256, and sends it on the command's stdin. The manifest is what is trusted: it is signed, the host's file is
 * not, and a snapshot that is not the parent's would silently leave changes out of the archive.
 */
import type { SshTarget } from '../ssh';
import type { BackupStores } from '../storage/destinations';
import { createFileTreeBackupActivities } from './backup';
import { fileTreeCatalog } from './catalog';
import { createFileTreeManifestActivities } from './manifest';
import { createFileTreeRestoreActivities } from './restore';

export function createFileTreeActivities(
  stores: BackupStores,
  sshTargets: (name: string) => SshTarget,
  options: { zstdLevel?: number; zstdThreads?: number } = {},
) {
  const zstd = { level: options.zstdLevel ?? 3, threads: options.zstdThreads ?? 0 };
  const catalog = fileTreeCatalog(stores);
  return {
    ...createFileTreeBackupActivities(stores, catalog, sshTargets, zstd),
    ...createFileTreeManifestActivities(stores, catalog),
    ...createFileTreeRestoreActivities(stores, catalog, sshTargets),
  };
}

export type FileTreeActivities = ReturnType<typeof createFileTreeActivities>;
