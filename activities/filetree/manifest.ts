/** A file-tree backup's copies read back and checked, then its signed manifest written last (see index.ts). */
import { createHash } from 'node:crypto';
import { ErrorType, type BackupDestinationName, type FileTreeManifest } from '../../contract';
import { failure } from '../errors';
import { whileHeartbeating } from '../process/heartbeat';
import type { BackupStores } from '../storage/destinations';
import {
  checksumLine,
  FILE_TREE_ARCHIVE,
  FILE_TREE_LIST,
  FILE_TREE_SNAPSHOT,
  fileTreeBackupRoot,
  fileTreeManifestKey,
  isFileTreeObjectKey,
  SIGNATURE_FILE,
} from '../storage/layout';
import { refuse, type FileTreeCatalog } from './catalog';

export function createFileTreeManifestActivities(stores: BackupStores, { treeOf }: FileTreeCatalog) {
  return {
    /** Read one destination's copy of a file-tree backup back: archive, snapshot and list, each size and SHA-256. */
    async verifyFileTreeCopy({
      service,
      tree,
      backupId,
      destination,
      object,
      snapshot,
      files,
    }: {
      service: string;
      tree: string;
      backupId: string;
      destination: BackupDestinationName;
      object: { key: string; size: number; sha256: string };
      snapshot: { key: string; size: number; sha256: string };
      files: { key: string; size: number; sha256: string };
    }): Promise<{
      destination: BackupDestinationName;
      location: string;
      size: number;
      sha256: string;
      verifiedAt: string;
    }> {
      const store = stores.store(service, destination);
      return whileHeartbeating(
        { verifying: store.label },
        (async () => {
          for (const [o, file] of [
            [object, FILE_TREE_ARCHIVE],
            [snapshot, FILE_TREE_SNAPSHOT],
            [files, FILE_TREE_LIST],
          ] as const) {
            if (!isFileTreeObjectKey(o.key, service, tree, backupId, file))
              throw failure(ErrorType.InvalidInput, `${o.key} is not an object of file-tree backup ${backupId}`);
            const hash = createHash('sha256');
            let bytes = 0;
            for await (const chunk of await store.read(o.key)) {
              hash.update(chunk as Buffer);
              bytes += (chunk as Buffer).length;
            }
            const actual = hash.digest('hex');
            if (bytes !== o.size || actual !== o.sha256)
              throw refuse(
                ErrorType.BackupCorrupt,
                `${store.location(o.key)}: read back ${bytes} bytes with SHA-256 ${actual}; written ${o.size} ` +
                  `bytes with SHA-256 ${o.sha256}`,
              );
          }
          const line = await store.get(`${object.key}.sha256`);
          if (line !== checksumLine(object.sha256, FILE_TREE_ARCHIVE))
            throw refuse(
              ErrorType.BackupCorrupt,
              `${store.location(`${object.key}.sha256`)} does not hold ${object.sha256}`,
            );
          return {
            destination,
            location: store.location(object.key),
            size: object.size,
            sha256: object.sha256,
            verifiedAt: new Date().toISOString(),
          };
        })(),
      );
    },

    /** The last write of a file-tree backup: its manifest, signed, in every destination that holds a verified copy. */
    async writeFileTreeManifest({ manifest }: { manifest: FileTreeManifest }): Promise<{ manifestKey: string }> {
      const { service, tree, id } = manifest;
      treeOf(service, tree);
      for (const [o, file] of [
        [manifest.object, FILE_TREE_ARCHIVE],
        [manifest.snapshot, FILE_TREE_SNAPSHOT],
        [manifest.files, FILE_TREE_LIST],
      ] as const)
        if (!isFileTreeObjectKey(o.key, service, tree, id, file))
          throw failure(ErrorType.InvalidInput, `manifest names ${o.key}, not an object of this backup`);
      const key = fileTreeManifestKey(service, tree, id);
      const sigKey = `${fileTreeBackupRoot(service, tree, id)}${SIGNATURE_FILE}`;
      const body = `${JSON.stringify(manifest, null, 2)}\n`;
      const signature = stores.keyring.sign(body);
      for (const copy of manifest.copies) {
        const store = stores.store(service, copy.destination);
        const existing = await store.get(key);
        if (existing !== null && existing !== body)
          throw refuse(ErrorType.BackupExists, `${store.location(key)} already holds another manifest`);
        if (existing === body && (await store.get(sigKey)) === signature) continue;
        await store.put(sigKey, signature);
        await store.put(key, body);
        if ((await store.get(key)) !== body)
          throw failure(ErrorType.ManifestNotStored, `${store.location(key)} did not read back as written`);
      }
      return { manifestKey: key };
    },
  };
}
