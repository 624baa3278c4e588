/**
 * What drbook knows about a service's file trees: their configuration, the verified backups of each in every
 * destination, and their signed manifests (never trusted unsigned). Shared by the backup and restore steps.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure } from '@temporalio/common';
import { type Service, BACKUP_ID, ErrorType, type FileTreeManifest, fileTreeId } from '../../contract';
import { failure } from '../errors';
import type { BackupStore, BackupStores } from '../storage/destinations';
import {
  FILE_TREE_ARCHIVE,
  FILE_TREE_LIST,
  FILE_TREE_SNAPSHOT,
  fileTreeBackupRoot,
  fileTreeManifestKey,
  fileTreeRoot,
  isFileTreeObjectKey,
  MANIFEST_FILE,
  SIGNATURE_FILE,
} from '../storage/layout';

export type TreeConfig = NonNullable<Service['backup']>['paths'][number];

/** A small object (snapshot, per-file list) written byte for byte, through the same writers as the archives. */
export async function putBytes(store: BackupStore, key: string, body: Buffer) {
  let failed: Error | undefined;
  const writer = store.openWriter(key, (err) => (failed = err));
  try {
    await pipeline(Readable.from([body]), writer.stream);
    const version = await writer.finish();
    await writer.publish();
    if (failed) throw failed;
    return version;
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

export async function readAll(store: BackupStore, key: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of await store.read(key)) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export const refuse = (type: string, message: string) =>
  ApplicationFailure.create({ type, message, nonRetryable: true });

/** A file-tree backup's manifest from one destination, its signature verified and its keys its own; else null. */
export async function readFileTreeManifest(
  stores: BackupStores,
  store: BackupStore,
  service: string,
  tree: string,
  backupId: string,
): Promise<FileTreeManifest | null> {
  const key = fileTreeManifestKey(service, tree, backupId);
  const text = await store.get(key);
  if (text === null) return null;
  const at = store.location(key);
  const signature = await store.get(`${fileTreeBackupRoot(service, tree, backupId)}${SIGNATURE_FILE}`);
  if (signature === null || !stores.keyring.verify(text, signature))
    throw refuse(
      ErrorType.ManifestUnauthenticated,
      `${at}: ` +
        (signature === null
          ? 'not signed'
          : 'the signature does not verify with any backup-signing key of this worker'),
    );
  let m: FileTreeManifest;
  try {
    m = JSON.parse(text) as FileTreeManifest;
  } catch (err) {
    throw refuse(ErrorType.ManifestInvalid, `${at}: not JSON: ${(err as Error).message}`);
  }
  const own = (k: unknown, file: string) => isFileTreeObjectKey(k, service, tree, backupId, file);
  if (m.format !== 'drbook-filetree/1' || m.id !== backupId || m.service !== service || m.tree !== tree)
    throw refuse(ErrorType.ManifestInvalid, `${at}: names ${m.service}/${m.tree}/${m.id} (${m.format})`);
  if (
    !own(m.object?.key, FILE_TREE_ARCHIVE) ||
    !own(m.snapshot?.key, FILE_TREE_SNAPSHOT) ||
    !own(m.files?.key, FILE_TREE_LIST)
  )
    throw refuse(ErrorType.ManifestInvalid, `${at}: names objects that are not this backup's`);
  if (!Array.isArray(m.restoreChain) || !m.restoreChain.every((id) => BACKUP_ID.test(id) && id < backupId))
    throw refuse(ErrorType.ManifestInvalid, `${at}: restoreChain ${JSON.stringify(m.restoreChain)}`);
  return m;
}

/** A service's file trees, read through its destinations. */
export function fileTreeCatalog(stores: BackupStores) {
  /** The tree's configuration and its state directory on the host (tar's snapshots). */
  const treeOf = (service: string, tree: string): { cfg: TreeConfig; stateDir: string } => {
    const backup = stores.service(service).backup;
    const cfg = backup.paths.find((p) => fileTreeId(p) === tree);
    if (!cfg)
      throw failure(
        ErrorType.NotConfigured,
        `service ${service} has no file tree "${tree}" in backup.paths (it ` +
          `has: ${backup.paths.map(fileTreeId).join(', ') || 'none'})`,
      );
    return { cfg, stateDir: `${backup.files.stateDir}/filetree/${tree}` };
  };

  /** Verified backup ids of a tree in each destination, newest first. */
  const listed = async (service: string, tree: string) => {
    const root = fileTreeRoot(service, tree);
    const out: { store: BackupStore; ids: string[] }[] = [];
    for (const store of stores.forService(service)) {
      const ids = (await store.list(root))
        .map((o) => o.key.slice(root.length).split('/'))
        .filter(([id, file]) => BACKUP_ID.test(id) && file === MANIFEST_FILE)
        .map(([id]) => id)
        .sort()
        .reverse();
      out.push({ store, ids });
    }
    return out;
  };

  /** A verified manifest of the tree from the first destination that has it. */
  const manifestOf = async (service: string, tree: string, backupId: string) => {
    for (const store of stores.forService(service)) {
      const m = await readFileTreeManifest(stores, store, service, tree, backupId);
      if (m) return { store, manifest: m };
    }
    throw failure(ErrorType.NoVerifiedBackup, `no manifest of file-tree backup ${service}/${tree}/${backupId}`);
  };

  return { treeOf, listed, manifestOf };
}

export type FileTreeCatalog = ReturnType<typeof fileTreeCatalog>;
