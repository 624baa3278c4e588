/**
 * File-tree backups on the real stack: a tree of its own on the sandbox's primary-host (over SSH,
 * inside its network namespace), a few thousand small files in nested directories, a symlink, several modes and an
 * excluded cache, backed up by serviceBackup of wiki: a full, then (after files were added, modified, deleted and
 * renamed) a differential, then (changed again, the policy now incremental) an incremental, then an incremental of
 * an unchanged tree. Each point restores EXACTLY (names, types, sizes, modes, content, symlink targets; deletions
 * honoured) through restoreFileTree and, for the last, by hand with the commands of docs/backup.md (zstd and tar
 * only). The parent's tar snapshot is taken from storage when the host's copy is gone or not the parent's, from the
 * host when it is. A changed archive in the chain is refused by its checksum before anything is extracted. A tree
 * that is not there fails the run at once (not retried) with an alert naming the service, the step and the cause.
 * The monthly restoreTest restores the newest chain of the tree into a scratch directory, checks it file by file,
 * reports it and removes the directory.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { fileTreeManifestKey } from '../../activities/storage/layout';
import { restoreTest, serviceBackup } from '../../workflows';
import { fileTreeId, type FileTreeManifest, type ServiceBackupResult } from '../../contract';
import { isolatedBackups } from '../helpers/backups';
import { buildAdapters, failureType, ROOT, sandbox, temporal, type TemporalHarness } from '../helpers/stack';

jest.setTimeout(900_000);

const home = path.join(
  process.env.DRBOOK_DATA ?? path.join(ROOT, '.data'),
  'hosts',
  `test-${randomUUID().slice(0, 8)}`,
);
const treeDir = path.join(home, 'uploads');
const stateDir = path.join(home, 'state');
const treeCfg = { host: 'primary-host', path: treeDir, exclude: ['cache', '*.tmp'] };
const tree = fileTreeId(treeCfg);
const iso = isolatedBackups(
  sandbox(),
  (inv) => {
    const wiki = inv.services.find((s) => s.name === 'wiki')!;
    wiki.backup!.paths = [treeCfg];
    wiki.backup!.files = { full: 'weekly', between: 'differential', stateDir };
    // The sandbox's wiki has no restore test of its own: the monthly one, into nobody's scratch server.
    wiki.restoreTest = { scratchServer: 'db-restore-scratch', queries: [], pointInTimeQueries: [] };
  },
  'drbook-files',
);
const wikiBackup = () => iso.loaded.inventory.services.find((s) => s.name === 'wiki')!.backup!;
const adapters = buildAdapters(iso.loaded);
const acts = adapters.activities;
const alerts: { subject: string; message: string }[] = [];
const activities = {
  ...acts,
  notifyTarget: async (args: Parameters<typeof acts.notifyTarget>[0]) => {
    alerts.push({ subject: args.subject, message: args.message });
    return { target: args.target, delivered: true };
  },
};
let t: TemporalHarness;

beforeAll(async () => {
  t = await temporal(iso.loaded);
});
afterAll(async () => {
  await t?.close();
  await adapters.close();
  await iso.cleanUp();
  rmSync(home, { recursive: true, force: true });
});

type Entry = { type: string; mode: string; size?: number; sha256?: string; target?: string };
/** The tree as the test sees it on disk (excludes left out): what every restore must give back exactly. */
function snapshot(dir: string, excluded = true): Record<string, Entry> {
  const out: Record<string, Entry> = {};
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (excluded && (r === 'cache' || name.endsWith('.tmp'))) continue;
      const st = lstatSync(path.join(dir, r));
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out[r] = { type: 'symlink', mode, target: readlinkSync(path.join(dir, r)) };
      else if (st.isDirectory()) {
        out[r] = { type: 'dir', mode };
        walk(r);
      } else
        out[r] = {
          type: 'file',
          mode,
          size: st.size,
          sha256: createHash('sha256')
            .update(readFileSync(path.join(dir, r)))
            .digest('hex'),
        };
    }
  };
  walk('');
  return out;
}

const file = (rel: string, body: string, mode = 0o644) => {
  mkdirSync(path.dirname(path.join(treeDir, rel)), { recursive: true });
  writeFileSync(path.join(treeDir, rel), body);
  chmodSync(path.join(treeDir, rel), mode);
};

/** ids in one ISO week (its Monday, 03:00 UTC on), so the weekly full policy makes one chain of them. */
const monday = (() => {
  const now = new Date();
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  d.setUTCDate(d.getUTCDate() - ((d.getUTCDay() + 6) % 7));
  return d.getTime() + 3 * 3600_000;
})();
const idAt = (n: number) =>
  new Date(monday + n * 60_000)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');

const backUp = async (backupId: string): Promise<NonNullable<ServiceBackupResult['fileTrees']>[number]> => {
  const r = await t.client.workflow.execute(serviceBackup, {
    taskQueue: t.taskQueue,
    workflowId: `backup-files-${backupId}-${randomUUID().slice(0, 6)}`,
    args: [{ service: 'wiki', backupId, snapshots: false }],
  });
  expect(r.fileTrees).toHaveLength(1);
  return r.fileTrees![0];
};

/** restoreFileTree into a scratch directory on the host; its own check and the test's tree compare, then removed. */
async function restoresExactly(backupId: string, expected: Record<string, Entry>) {
  const r = await acts.restoreFileTree({ service: 'wiki', tree, backupId });
  try {
    expect(r.problems).toEqual([]);
    expect(snapshot(r.into, false)).toEqual(expected);
    return r;
  } finally {
    await acts.removeFileTreeScratch({ service: 'wiki', tree, into: r.into });
    expect(existsSync(r.into)).toBe(false);
  }
}

/** The by-hand restore block of docs/backup.md, run as written, with its three variables set. */
function restoreByHand(backupId: string, out: string) {
  const doc = readFileSync(path.join(ROOT, 'docs', 'backup.md'), 'utf8');
  const block = /### Restore a file tree by hand[\s\S]*?```bash\n([\s\S]*?)```/.exec(doc)?.[1];
  expect(block).toBeDefined();
  const script = block!
    .split('\n')
    .filter((l) => !/^(B|ID|OUT)=/.test(l))
    .join('\n');
  execFileSync('bash', ['-euo', 'pipefail', '-c', script], {
    env: { ...process.env, B: path.join(iso.local, 'wiki', 'files', tree), ID: backupId, OUT: out },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

test('full, differential, incremental: every point restores exactly, by drbook and by hand', async () => {
  // A tree of 2,000 small files in nested directories, a symlink, an empty directory, modes; and what is excluded.
  for (let d = 0; d < 20; d++)
    for (let f = 0; f < 100; f++) file(`y${d % 4}/m${d}/f${f}.txt`, `dir ${d} file ${f}\n`.repeat(1 + (f % 7)));
  file('private/key.pem', 'not a real key\n', 0o600);
  file('bin/tool.sh', '#!/bin/sh\necho hi\n', 0o755);
  mkdirSync(path.join(treeDir, 'empty'));
  chmodSync(path.join(treeDir, 'empty'), 0o750);
  symlinkSync('y0/m0/f1.txt', path.join(treeDir, 'latest'));
  file('cache/thumb.bin', 'regenerated');
  file('y1/m1/upload.tmp', 'partial upload');
  const s0 = snapshot(treeDir);
  expect(Object.keys(s0).length).toBeGreaterThan(2000);

  const ids = [0, 1, 2, 3].map(idAt);
  await t.withWorkers(activities, async () => {
    const full = await backUp(ids[0]);
    expect(full).toMatchObject({ tree, level: 'full', chain: ids[0], snapshotFrom: 'none' });

    // Added, modified, deleted, renamed (a file and a whole directory), a mode and a symlink changed.
    for (let f = 0; f < 50; f++) file(`new/n${f}.txt`, `new ${f}`);
    for (let f = 0; f < 20; f++) file(`y0/m0/f${f}.txt`, `modified ${f}`);
    for (let f = 0; f < 30; f++) unlinkSync(path.join(treeDir, `y1/m1/f${f}.txt`));
    renameSync(path.join(treeDir, 'y2/m2'), path.join(treeDir, 'y2/m2-renamed'));
    renameSync(path.join(treeDir, 'y3/m3/f1.txt'), path.join(treeDir, 'y3/m3/f1-renamed.txt'));
    chmodSync(path.join(treeDir, 'bin/tool.sh'), 0o700);
    unlinkSync(path.join(treeDir, 'latest'));
    symlinkSync('new/n1.txt', path.join(treeDir, 'latest'));
    const s1 = snapshot(treeDir);
    // The host lost its state directory: the full's snapshot comes from storage, checked against its manifest.
    rmSync(stateDir, { recursive: true, force: true });
    const diff = await backUp(ids[1]);
    expect(diff).toMatchObject({ level: 'differential', chain: ids[0], snapshotFrom: 'storage' });

    // Changed again, and the policy is now incremental.
    wikiBackup().files.between = 'incremental';
    rmSync(path.join(treeDir, 'y2/m2-renamed'), { recursive: true });
    rmSync(path.join(treeDir, 'private'), { recursive: true });
    for (let f = 0; f < 10; f++) file(`new/n${f}.txt`, `changed again ${f}`);
    file('y3/deep/er/still/x.txt', 'deep');
    const s2 = snapshot(treeDir);
    // The host's snapshot is not the parent's (another run's, or damaged): storage's is used instead.
    writeFileSync(path.join(stateDir, 'filetree', tree, `${ids[1]}.snar`), 'not the parent snapshot');
    const inc = await backUp(ids[2]);
    expect(inc).toMatchObject({ level: 'incremental', chain: ids[0], snapshotFrom: 'storage' });
    // Nothing changed: an incremental from the host's own snapshot, the previous one's.
    const inc2 = await backUp(ids[3]);
    expect(inc2).toMatchObject({ level: 'incremental', chain: ids[0], snapshotFrom: 'host' });

    const m = JSON.parse(
      readFileSync(path.join(iso.local, fileTreeManifestKey('wiki', tree, ids[3])), 'utf8'),
    ) as FileTreeManifest;
    expect(m).toMatchObject({ level: 'incremental', parent: ids[2], restoreChain: ids.slice(0, 3) });
    expect(m.copies.map((c) => c.destination)).toEqual(['local', 'primary', 'offsite']);

    await restoresExactly(ids[0], s0);
    await restoresExactly(ids[1], s1);
    const r2 = await restoresExactly(ids[2], s2);
    expect(r2.chain).toEqual(ids.slice(0, 3));
    const r3 = await restoresExactly(ids[3], s2);
    expect(r3.chain).toEqual(ids);

    // By hand, with zstd and tar only, as docs/backup.md says: the same tree.
    const out = mkdtempSync(path.join(tmpdir(), 'drbook-files-by-hand-'));
    try {
      restoreByHand(ids[3], out);
      expect(snapshot(out, false)).toEqual(s2);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }

    // A changed archive in the chain (the differential's, same size): refused by its checksum, nothing extracted.
    const diffManifest = JSON.parse(
      readFileSync(path.join(iso.local, fileTreeManifestKey('wiki', tree, ids[1])), 'utf8'),
    ) as FileTreeManifest;
    const archive = path.join(iso.local, diffManifest.object.key);
    const bytes = readFileSync(archive);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    writeFileSync(archive, bytes);
    const scratchBefore = readdirSync(tmpdir()).filter((n) => n.startsWith('drbook-filetree-restore-'));
    const refused = await acts.restoreFileTree({ service: 'wiki', tree, backupId: ids[3], destination: 'local' }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(failureType(refused)).toBe('BackupCorrupt');
    expect((refused as Error).message).toContain(archive);
    expect((refused as Error).message).toContain('nothing was extracted');
    expect(readdirSync(tmpdir()).filter((n) => n.startsWith('drbook-filetree-restore-'))).toEqual(scratchBefore);
    // Without a destination named, the next one whose whole chain checks out is used: still exact.
    const fallback = await restoresExactly(ids[3], s2);
    expect(fallback.destination).toBe('primary');
  });
});

test('a tree that is not there fails the backup at once and alerts with the service, step and cause', async () => {
  const missing = path.join(home, 'not-there');
  wikiBackup().paths = [treeCfg, { host: 'primary-host', path: missing, exclude: [] }];
  try {
    await t.withWorkers(activities, async () => {
      const err = await t.client.workflow
        .execute(serviceBackup, {
          taskQueue: t.taskQueue,
          workflowId: `backup-files-missing-${randomUUID().slice(0, 6)}`,
          args: [{ service: 'wiki', backupId: idAt(10), snapshots: false }],
        })
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const failed = alerts.filter((a) => a.subject.includes('wiki backup') && a.subject.includes('FAILED'));
      expect(failed.length).toBeGreaterThan(0);
      expect(failed[0].message).toContain(`file tree primary-host:${missing}`);
      expect(failed[0].message).toContain(`primary-host:${missing} is not a directory (services.wiki.backup.paths)`);
      expect(failed[0].message).toContain('[ResourceNotFound]');
    });
  } finally {
    wikiBackup().paths = [treeCfg];
  }
});

test(
  'the monthly restore test restores the newest file-tree chain, ' + 'checks it file by file, removes the scratch',
  async () => {
    const scratchBefore = readdirSync(tmpdir()).filter((n) => n.startsWith('drbook-filetree-restore-'));
    const result = await t.withWorkers(activities, () =>
      t.client.workflow.execute(restoreTest, {
        taskQueue: t.taskQueue,
        workflowId: `restore-test-files-${randomUUID().slice(0, 6)}`,
        args: [{ service: 'wiki' }],
      }),
    );
    expect(result.outcome).toBe('passed');
    const report = JSON.parse(
      (await iso.stores.store('wiki', 'primary').get(`wiki/reports/restore-test/${result.testId}.json`)) ?? '{}',
    ) as { fileTrees?: { tree: string; backupId: string; chain: string[]; problems: string[]; cleanedUp: boolean }[] };
    expect(report.fileTrees).toEqual([
      expect.objectContaining({
        tree,
        backupId: idAt(10),
        chain: [0, 1, 2, 3, 10].map(idAt),
        problems: [],
        cleanedUp: true,
      }),
    ]);
    expect(readdirSync(tmpdir()).filter((n) => n.startsWith('drbook-filetree-restore-'))).toEqual(scratchBefore);
  },
);
