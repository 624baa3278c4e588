/**
 * File trees (backup.paths): each tree's newest chain restored into a scratch directory on its host and checked
 * file by file against the backup's per-file list; the directory is removed whatever the check said.
 */
import { CancellationScope, patched } from '@temporalio/workflow';
import { fileTreeId, type RestoreTestReport } from '../../contract';
import { reasonOf } from '../plan';
import { acts, check, checked, type RestoreTest } from './context';

type FileTree = NonNullable<RestoreTestReport['fileTrees']>[number];
type TreePath = NonNullable<RestoreTest['backup']['paths']>[number];

export async function restoreFileTrees(t: RestoreTest): Promise<void> {
  if (!(t.backup.paths?.length && patched('file-tree-restore'))) return;
  const trees: FileTree[] = [];
  t.report.fileTrees = trees;
  for (const p of t.backup.paths) trees.push(await restoreFileTree(t, p));
}

async function restoreFileTree(t: RestoreTest, p: TreePath): Promise<FileTree> {
  const { run, svc } = t;
  const tree = fileTreeId(p);
  const r = await checked(
    t,
    'file-tree-restore',
    `restoreFileTree ${tree}`,
    () => acts.loading.restoreFileTree({ service: svc.name, tree }),
    (x) =>
      `${x.backupId} (chain ${x.chain.join(' → ')}) from ${x.destination} into ${x.host}:${x.into} in ` +
      `${x.seconds} s: ${x.files} entries, ${x.problems.length} differences`,
  );
  let cleanedUp = false;
  try {
    await CancellationScope.nonCancellable(() =>
      run.step(
        `removeFileTreeScratch ${tree}`,
        () => acts.cleanup.removeFileTreeScratch({ service: svc.name, tree, into: r.into }),
        (x) => `${x.host}:${x.removed} removed`,
      ),
    );
    cleanedUp = true;
  } catch (err) {
    check(t, 'cleanup', false, `could not remove ${r.host}:${r.into}: ${reasonOf(err)}`);
  }
  const { backupId, chain, files, bytes, seconds, problems } = r;
  check(
    t,
    `file-tree ${tree}`,
    problems.length === 0,
    problems.length
      ? `${problems.length} differences from the backup's file list: ${problems.slice(0, 5).join('; ')}`
      : `${p.host}:${p.path} as of ${backupId} (${chain.length} archives): ${files} entries exactly as ` +
          'backed up (type, mode, size, SHA-256, symlink target; deleted files absent)',
  );
  return { tree, host: r.host, path: p.path, backupId, chain, files, bytes, seconds, problems, cleanedUp };
}
