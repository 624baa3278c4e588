/**
 * A file-tree backup (see index.ts): tar's listed-incremental archive from the tree's host, compressed and fanned
 * out by the worker, then tar's snapshot after it and the tree's per-file list beside it.
 */
import { randomBytes } from 'node:crypto';
import {
  BACKUP_ID,
  ErrorType,
  type BackupCopy,
  type FileTreeBackupRef,
  type FileTreeLevel,
  type FileTreeManifest,
} from '../../contract';
import { failure } from '../errors';
import { collect, toolVersion } from '../process/child';
import { activityContext, heartbeatEvery, whileHeartbeating } from '../process/heartbeat';
import { shellQuote } from '../process/quote';
import { Upload } from '../process/upload';
import { compressInto } from '../process/zstd';
import { openHostStream, runOnHost, type SshTarget } from '../ssh';
import { checkObjectLocks, type BackupStore, type BackupStores } from '../storage/destinations';
import {
  FILE_TREE_ARCHIVE,
  FILE_TREE_LIST,
  FILE_TREE_SNAPSHOT,
  fileTreeKey,
  fileTreeManifestKey,
  newAttempt,
} from '../storage/layout';
import { putBytes, readAll, refuse, sha256, type FileTreeCatalog, type TreeConfig } from './catalog';
import { listTree } from './listing';

const HEARTBEAT_MS = 5000;

export interface FileTreeBackupResult {
  service: string;
  tree: string;
  backupId: string;
  host: string;
  path: string;
  exclude: string[];
  level: FileTreeLevel;
  chain: string;
  parent: string | null;
  restoreChain: string[];
  /** Where the parent's snapshot came from: the host's state directory, or a destination (the host's was not it). */
  snapshotFrom: 'none' | 'host' | 'storage';
  startedAt: string;
  endedAt: string;
  object: FileTreeManifest['object'];
  snapshot: FileTreeManifest['snapshot'];
  files: FileTreeManifest['files'];
  copies: Omit<BackupCopy, 'size' | 'sha256' | 'verifiedAt'>[];
  tools: Record<string, string>;
}

interface BackupRequest {
  service: string;
  tree: string;
  backupId: string;
  level: FileTreeLevel;
  parent: string | null;
  chain: string;
}

/** The parent's snapshot: the host's copy if it is exactly the one the signed manifest names, else storage's. */
interface ParentSnapshot {
  restoreChain: string[];
  snapshotFrom: FileTreeBackupResult['snapshotFrom'];
  /** The snapshot to send on the command's stdin (read from a destination), or null. */
  input: Buffer | null;
}

/** Level 0 starts from no snapshot; the others from the parent's, copied (tar rewrites the file it is given). */
function tarScript(cfg: TreeConfig, stateDir: string, r: BackupRequest, parent: ParentSnapshot): string {
  const q = (file: string) => shellQuote(`${stateDir}/${file}`);
  const work = q(`${r.backupId}.snar.partial`);
  return [
    'umask 077',
    "trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM",
    `mkdir -p -- ${shellQuote(stateDir)} || exit 70`,
    `rm -f -- ${work}`,
    // A tree that is not there is the inventory's problem, not a transient one: said apart, never retried.
    `[ -d ${shellQuote(cfg.path)} ] || exit 73`,
    parent.snapshotFrom === 'host' ? `cp -- ${q(`${r.parent}.snar`)} ${work} || exit 71` : '',
    parent.input ? `head -c ${parent.input.length} > ${work} || exit 71` : '',
    `tar --create --file=- --format=gnu --listed-incremental=${work} --anchored ` +
      `${cfg.exclude.map((e) => `--exclude=${shellQuote(`./${e}`)}`).join(' ')} -C ${shellQuote(cfg.path)} .`,
    'rc=$?',
    `[ $rc -eq 0 ] && mv -f -- ${work} ${q(`${r.backupId}.snar`)}`,
    'exit $rc',
  ]
    .filter(Boolean)
    .join('\n');
}

/** A backup id that already has a manifest in any destination is never rewritten. */
async function refuseExisting(targets: BackupStore[], r: BackupRequest) {
  for (const store of targets) {
    const key = fileTreeManifestKey(r.service, r.tree, r.backupId);
    if ((await store.get(key)) !== null)
      throw refuse(
        ErrorType.BackupExists,
        `${store.location(key)} exists: file-tree backup ${r.backupId} of ${r.service}/${r.tree} is never rewritten`,
      );
  }
}

/** Which snapshot the archive starts from, and tar's version on the host. */
async function parentSnapshot({ manifestOf }: FileTreeCatalog, ssh: SshTarget, stateDir: string, r: BackupRequest) {
  const pre = await runOnHost(
    ssh,
    `tar --version | head -n1\n` +
      (r.parent ? `sha256sum < ${shellQuote(`${stateDir}/${r.parent}.snar`)} 2>/dev/null || echo none` : 'echo none'),
  );
  const [tarVersion = 'unknown', hostSnapshot = 'none'] = pre.stdout.toString('utf8').split('\n');
  const found: ParentSnapshot = { restoreChain: [], snapshotFrom: 'none', input: null };
  if (r.parent) {
    const { store, manifest: p } = await manifestOf(r.service, r.tree, r.parent);
    if (p.chain !== r.chain || (r.level === 'differential' && p.id !== r.chain))
      throw failure(ErrorType.InvalidInput, `parent ${r.parent} is of chain ${p.chain}, not ${r.chain}`);
    found.restoreChain = [...p.restoreChain, p.id];
    if (hostSnapshot.slice(0, 64) === p.snapshot.sha256) found.snapshotFrom = 'host';
    else {
      const body = await readAll(store, p.snapshot.key);
      if (sha256(body) !== p.snapshot.sha256)
        throw refuse(
          ErrorType.BackupCorrupt,
          `${store.location(p.snapshot.key)}: SHA-256 ${sha256(body)}, the signed manifest of ${r.parent} ` +
            `names ${p.snapshot.sha256}`,
        );
      found.input = body;
      found.snapshotFrom = 'storage';
    }
  }
  return { tarVersion, parent: found };
}

/** tar on the host | zstd | SHA-256 | every destination; its checksum file beside each copy. */
async function archive(
  zstdOptions: { level: number; threads: number },
  ssh: SshTarget,
  cfg: TreeConfig,
  r: BackupRequest,
  script: string,
  input: Buffer | null,
  targets: BackupStore[],
  key: string,
) {
  const upload = new Upload();
  let stopBeat = () => {};
  let kill = () => {};
  try {
    const fanOut = upload.open(targets, key);
    const run = await openHostStream(ssh, script);
    kill = run.kill;
    upload.onAbort(run.kill);
    run.stdin.end(input ?? '');
    const tarStderr = collect(run.stderr);
    const { zstd, counter, digest, done } = compressInto(upload, fanOut, run.stdout, zstdOptions);
    stopBeat = heartbeatEvery(
      () => ({ phase: `file tree ${r.tree}`, readBytes: counter.bytes, writtenBytes: digest.bytes }),
      HEARTBEAT_MS,
    );
    const [compressed, archived] = await Promise.all([done, run.exit]);
    if (archived.code === 73)
      throw failure(
        ErrorType.ResourceNotFound,
        `${cfg.host}:${cfg.path} is not a directory (services.${r.service}.backup.paths)`,
        { host: cfg.host },
      );
    if (archived.code !== 0)
      throw failure(
        ErrorType.DumpFailed,
        `tar on ${cfg.host} for ${cfg.path} exited ${archived.code}: ${tarStderr() || '(no output)'}`,
        { host: cfg.host },
      );
    if (compressed.code !== 0) throw failure(ErrorType.DumpFailed, `zstd exited ${compressed.code}: ${zstd.stderr()}`);
    upload.throwIfAborted();
    const archiveSha = digest.hex();
    const copies = await upload.complete(archiveSha);
    return { copies, sha256: archiveSha, size: digest.bytes, uncompressedSize: counter.bytes };
  } catch (err) {
    return await upload.fail(err);
  } finally {
    stopBeat();
    upload.close();
    kill();
  }
}

/** tar's snapshot after this backup (the host keeps it and the chain's full's) and the per-file list, stored. */
async function snapshotAndList(
  ssh: SshTarget,
  cfg: TreeConfig,
  stateDir: string,
  r: BackupRequest,
  targets: BackupStore[],
  key: (file: string) => string,
) {
  const q = (file: string) => shellQuote(`${stateDir}/${file}`);
  const snap = await runOnHost(
    ssh,
    `cat -- ${q(`${r.backupId}.snar`)} || exit 72\n` +
      `find ${shellQuote(stateDir)} -maxdepth 1 -name '*.snar' ! -name ${shellQuote(`${r.backupId}.snar`)} ` +
      `! -name ${shellQuote(`${r.chain}.snar`)} -delete`,
  );
  if (snap.code !== 0)
    throw failure(ErrorType.DumpFailed, `${cfg.host}: reading tar's snapshot exited ${snap.code}: ${snap.stderr}`);
  const entries = await listTree(ssh, cfg.path, cfg.exclude);
  const list = Buffer.from(`${JSON.stringify(entries)}\n`);
  for (const store of targets) {
    await putBytes(store, key(FILE_TREE_SNAPSHOT), snap.stdout);
    await putBytes(store, key(FILE_TREE_LIST), list);
  }
  return {
    snapshot: { key: key(FILE_TREE_SNAPSHOT), size: snap.stdout.length, sha256: sha256(snap.stdout) },
    files: {
      key: key(FILE_TREE_LIST),
      size: list.length,
      sha256: sha256(list),
      count: entries.length,
      bytes: entries.reduce((n, e) => n + (e.type === 'file' ? (e.size ?? 0) : 0), 0),
    },
  };
}

export function createFileTreeBackupActivities(
  stores: BackupStores,
  catalog: FileTreeCatalog,
  sshTargets: (name: string) => SshTarget,
  zstdOptions: { level: number; threads: number },
) {
  const { treeOf, listed, manifestOf } = catalog;

  return {
    /**
     * The newest chain of a tree, newest first down to its full: what the level policy decides from
     * (workflows/backup-policy.ts planFileTreeLevel). Every manifest read is signature-checked.
     */
    async listFileTreeChain({ service, tree }: { service: string; tree: string }): Promise<FileTreeBackupRef[]> {
      treeOf(service, tree);
      const ids = [...new Set((await listed(service, tree)).flatMap((l) => l.ids))].sort().reverse();
      const chain: FileTreeBackupRef[] = [];
      for (const id of ids) {
        const { manifest } = await manifestOf(service, tree, id);
        chain.push({ id, level: manifest.level, chain: manifest.chain });
        if (manifest.level === 'full') break;
      }
      return chain;
    },

    /**
     * One tree at one level (the workflow decides which), streamed into every destination; its per-file list and
     * tar's snapshot after it beside the archive. Safe to retry: each attempt writes under its own directory, and a
     * backup id that already has a manifest is refused (BackupExists).
     */
    async backupFileTree(r: BackupRequest): Promise<FileTreeBackupResult> {
      const { service, tree, backupId, level, parent, chain } = r;
      const { cfg, stateDir } = treeOf(service, tree);
      if (!BACKUP_ID.test(backupId))
        throw failure(ErrorType.InvalidInput, `backupId: "${backupId}" is not a backup id`);
      if ((level === 'full') !== (parent === null) || (level === 'full' && chain !== backupId))
        throw failure(ErrorType.InvalidInput, `level ${level} with parent ${parent} and chain ${chain}`);
      const targets = stores.forService(service);
      await checkObjectLocks(targets);
      await refuseExisting(targets, r);
      const ssh = sshTargets(cfg.host);
      const startedAt = new Date().toISOString();
      const attempt = newAttempt(activityContext()?.info.attempt ?? 1, randomBytes(4).toString('hex'));
      const key = (file: string) => fileTreeKey(service, tree, backupId, attempt, file);
      const { tarVersion, parent: from } = await parentSnapshot(catalog, ssh, stateDir, r);
      const script = tarScript(cfg, stateDir, r, from);
      const written = await archive(zstdOptions, ssh, cfg, r, script, from.input, targets, key(FILE_TREE_ARCHIVE));
      const stored = await whileHeartbeating(
        { phase: `file tree ${tree}: snapshot and per-file list` },
        snapshotAndList(ssh, cfg, stateDir, r, targets, key),
      );
      return {
        service,
        tree,
        backupId,
        host: cfg.host,
        path: cfg.path,
        exclude: cfg.exclude,
        level,
        chain,
        parent,
        restoreChain: from.restoreChain,
        snapshotFrom: from.snapshotFrom,
        startedAt,
        endedAt: new Date().toISOString(),
        object: {
          key: key(FILE_TREE_ARCHIVE),
          size: written.size,
          sha256: written.sha256,
          compression: 'zstd' as const,
          uncompressedSize: written.uncompressedSize,
        },
        snapshot: stored.snapshot,
        files: stored.files,
        copies: written.copies,
        tools: { tar: tarVersion.trim(), zstd: await toolVersion('zstd') },
      };
    },
  };
}
