/**
 * File trees (backup.paths): each tree at the level the policy says (full, differential, incremental; GNU tar
 * listed-incremental on its host) → verify every copy → manifest. One tree failing never stops the others.
 */
import { patched } from '@temporalio/workflow';
import { fileTreeId, type FileTreeManifest, type ServiceBackupResult } from '../../contract';
import { planFileTreeLevel } from '../backup-policy';
import { bookkeeping, failed, streaming, type ServiceBackup } from './context';

type FileTreeResult = NonNullable<ServiceBackupResult['fileTrees']>[number];
type FileTreeBackup = Awaited<ReturnType<typeof streaming.backupFileTree>>;
type TreePath = NonNullable<ServiceBackup['backup']['paths']>[number];

export async function backupFileTrees(b: ServiceBackup): Promise<FileTreeResult[]> {
  const fileTrees: FileTreeResult[] = [];
  if (!b.backup.paths?.length || !patched('file-tree-backup')) return fileTrees;
  b.status.phase = 'backing up file trees';
  for (const p of b.backup.paths) {
    try {
      fileTrees.push(await backupFileTree(b, p));
    } catch (err) {
      failed(b, `file tree ${p.host}:${p.path}`, err);
    }
  }
  return fileTrees;
}

/** One tree: its chain so far → the level → tar on its host, streamed out → every copy verified → manifest. */
async function backupFileTree(b: ServiceBackup, p: TreePath): Promise<FileTreeResult> {
  const { service, backupId, steps } = b;
  const policy = b.backup.files ?? { full: 'weekly', between: 'differential' };
  const tree = fileTreeId(p);
  const chain = await steps.run(
    `listFileTreeChain ${tree}`,
    () => bookkeeping.listFileTreeChain({ service, tree }),
    (c) => (c.length ? `newest chain: ${c.map((b) => `${b.id} (${b.level})`).join(', ')}` : 'no backup yet'),
  );
  const level = planFileTreeLevel(chain, policy, backupId);
  const r = await steps.run(
    `backupFileTree ${tree}`,
    () =>
      streaming.backupFileTree({
        service,
        tree,
        backupId,
        level: level.level,
        parent: level.parent,
        chain: level.chain,
      }),
    (r) =>
      `${r.level} (${level.why}): ${r.files.count} entries, ${r.object.uncompressedSize} bytes → ${r.object.size} ` +
      `(zstd) to ${r.copies.length} destinations; parent snapshot from ${r.snapshotFrom}`,
  );
  const copies = await verifyTreeCopies(b, tree, r);
  const manifest = fileTreeManifest(b, tree, r, copies);
  const written = await steps.run(
    `writeFileTreeManifest ${tree}`,
    () => bookkeeping.writeFileTreeManifest({ manifest }),
    (w) => w.manifestKey,
  );
  return {
    tree,
    level: r.level,
    chain: r.chain,
    manifestKey: written.manifestKey,
    files: r.files.count,
    size: r.object.size,
    snapshotFrom: r.snapshotFrom,
  };
}

/** Every copy of the tree's archive read back, all at once: the copies as the manifest lists them. */
async function verifyTreeCopies(
  b: ServiceBackup,
  tree: string,
  r: FileTreeBackup,
): Promise<FileTreeManifest['copies']> {
  const { service, backupId } = b;
  const verified = await Promise.all(
    r.copies.map((c) =>
      b.steps.run(
        `verifyFileTreeCopy ${tree} ${c.destination}`,
        () =>
          streaming.verifyFileTreeCopy({
            service,
            tree,
            backupId,
            destination: c.destination,
            object: r.object,
            snapshot: r.snapshot,
            files: r.files,
          }),
        (v) => `${v.location}: ${v.size} bytes, sha256 ${v.sha256.slice(0, 12)}…`,
      ),
    ),
  );
  return r.copies.map((c, i) => ({ ...c, ...verified[i] }));
}

/** The tree's manifest: what tar wrote and each copy as verified. */
function fileTreeManifest(
  b: ServiceBackup,
  tree: string,
  r: FileTreeBackup,
  copies: FileTreeManifest['copies'],
): FileTreeManifest {
  return {
    format: 'drbook-filetree/1',
    id: b.backupId,
    service: b.service,
    kind: 'files',
    tree,
    host: r.host,
    path: r.path,
    exclude: r.exclude,
    level: r.level,
    chain: r.chain,
    parent: r.parent,
    restoreChain: r.restoreChain,
    startedAt: r.startedAt,
    endedAt: r.endedAt,
    object: r.object,
    snapshot: r.snapshot,
    files: r.files,
    copies,
    tools: r.tools,
    verified: true,
  };
}
