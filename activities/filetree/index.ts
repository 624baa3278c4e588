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
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure } from '@temporalio/common';
import {
  type Service,
  fileTreeId,
  BACKUP_ID,
  ErrorType,
  type BackupCopy,
  type BackupDestinationName,
  type FileTreeEntry,
  type FileTreeManifest,
} from '../../contract';
import type { FileTreeBackupRef, FileTreeLevel } from '../../workflows/backup-policy';
import { failure } from '../errors';
import { whileHeartbeating } from '../liveness';
import { activityContext, collect, Digest, exitOf, FanOut, toolVersion } from '../mysql/dump';
import { Counter } from '../mysql/physical';
import { openHostStream, runOnHost, shellQuote, type SshTarget } from '../ssh';
import {
  checkObjectLocks,
  writtenCopies,
  type BackupStore,
  type BackupStores,
  type BackupWriter,
} from '../storage/destinations';
import {
  checksumLine,
  FILE_TREE_ARCHIVE,
  FILE_TREE_LIST,
  FILE_TREE_SNAPSHOT,
  fileTreeBackupRoot,
  fileTreeKey,
  fileTreeManifestKey,
  fileTreeRoot,
  isFileTreeObjectKey,
  MANIFEST_FILE,
  newAttempt,
  SIGNATURE_FILE,
} from '../storage/layout';
import { privateWorkDir } from '../workdirs';

const HEARTBEAT_MS = 5000;
/** Scratch directories a restore makes on the host: the only ones removeFileTreeScratch removes. */
const SCRATCH = /^\/(?:[^/\0]+\/)*drbook-filetree-restore-[A-Za-z0-9]{8}$/;

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

export interface FileTreeRestoreResult {
  service: string;
  tree: string;
  backupId: string;
  /** The archives extracted, in order (the chain's full first). */
  chain: string[];
  destination: BackupDestinationName;
  host: string;
  into: string;
  /** Entries in the manifest's per-file list, and the bytes of its files. */
  files: number;
  bytes: number;
  /** Differences between the restored tree and the list (empty: restored exactly). */
  problems: string[];
  seconds: number;
}

type TreeConfig = NonNullable<Service['backup']>['paths'][number];

/** The remote `find` expression that leaves out the excludes (the same globs tar gets), or nothing. */
function pruneExpression(exclude: string[]): string {
  if (!exclude.length) return '';
  return `\\( ${exclude.map((e) => `-path ${shellQuote(`./${e}`)}`).join(' -o ')} \\) -prune -o `;
}

/** The host script that lists a tree: type, mode, size, name and symlink target of every entry, NUL-separated. */
const listScript = (dir: string, exclude: string[]) =>
  `cd -- ${shellQuote(dir)} || exit 66\n` +
  `find . -mindepth 1 ${pruneExpression(exclude)}-printf '%y %m %s %P\\0%l\\0'`;
/** The host script that hashes every regular file of a tree: "sha256  name" records, NUL-terminated, unescaped. */
const hashScript = (dir: string, exclude: string[]) =>
  `cd -- ${shellQuote(dir)} || exit 66\n` +
  `find . -mindepth 1 ${pruneExpression(exclude)}-type f -printf '%P\\0' | xargs -0 -r sha256sum -z --`;

const TYPES: Record<string, FileTreeEntry['type']> = { f: 'file', d: 'dir', l: 'symlink' };

/** The tree as it is on the host now (excludes left out), sorted by path. */
async function listTree(ssh: SshTarget, dir: string, exclude: string[]): Promise<FileTreeEntry[]> {
  const [listed, hashed] = [
    await runOnHost(ssh, listScript(dir, exclude)),
    await runOnHost(ssh, hashScript(dir, exclude)),
  ];
  for (const r of [listed, hashed])
    if (r.code !== 0)
      throw failure(ErrorType.CommandFailed, `${ssh.name}: listing ${dir} exited ${r.code}: ${r.stderr}`, {
        host: ssh.name,
      });
  const hashes = new Map<string, string>();
  for (const rec of hashed.stdout.toString('utf8').split('\0')) {
    if (!rec) continue;
    hashes.set(rec.slice(66), rec.slice(0, 64));
  }
  const fields = listed.stdout.toString('utf8').split('\0');
  const entries: FileTreeEntry[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const m = /^(\S) (\d+) (\d+) ([\s\S]*)$/.exec(fields[i]);
    if (!m) throw failure(ErrorType.CommandFailed, `${ssh.name}: unreadable listing of ${dir}: ${fields[i]}`);
    const [, y, mode, size, name] = m;
    const type = TYPES[y] ?? 'other';
    const entry: FileTreeEntry = { path: name, type, mode };
    if (type === 'file') Object.assign(entry, { size: Number(size), sha256: hashes.get(name) ?? '' });
    if (type === 'symlink') Object.assign(entry, { size: Number(size), target: fields[i + 1] });
    entries.push(entry);
  }
  return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * The differences between a restored tree and the per-file list of the backup it came from: missing and extra
 * entries (a deleted file present again is one), and type, mode, size, content or symlink target that differ.
 */
export function compareFileTrees(expected: FileTreeEntry[], actual: FileTreeEntry[], limit = 50): string[] {
  const problems: string[] = [];
  const got = new Map(actual.map((e) => [e.path, e]));
  for (const want of expected) {
    const have = got.get(want.path);
    got.delete(want.path);
    if (!have) problems.push(`${want.path}: missing (a ${want.type} in the backup)`);
    else
      for (const k of ['type', 'mode', 'size', 'sha256', 'target'] as const)
        if (want[k] !== have[k])
          problems.push(`${want.path}: ${k} ${String(have[k])}, the backup has ${String(want[k])}`);
  }
  for (const extra of got.keys()) problems.push(`${extra}: present, not in the backup (deleted before it was taken)`);
  return problems.length > limit
    ? [...problems.slice(0, limit), `... and ${problems.length - limit} more differences`]
    : problems;
}

/** A small object (snapshot, per-file list) written byte for byte, through the same writers as the archives. */
async function putBytes(store: BackupStore, key: string, body: Buffer) {
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

async function readAll(store: BackupStore, key: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of await store.read(key)) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const refuse = (type: string, message: string) => ApplicationFailure.create({ type, message, nonRetryable: true });

/** A file-tree backup's manifest from one destination, its signature verified and its keys its own; else null. */
async function readFileTreeManifest(
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
      `${at}: ${signature === null ? 'not signed' : 'the signature does not verify with any backup-signing key of this worker'}`,
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

export function createFileTreeActivities(
  stores: BackupStores,
  sshTargets: (name: string) => SshTarget,
  options: { zstdLevel?: number; zstdThreads?: number } = {},
) {
  const zstdLevel = options.zstdLevel ?? 3;
  const zstdThreads = options.zstdThreads ?? 0;

  const treeOf = (service: string, tree: string): { cfg: TreeConfig; stateDir: string } => {
    const backup = stores.service(service).backup;
    const cfg = backup.paths.find((p) => fileTreeId(p) === tree);
    if (!cfg)
      throw failure(
        ErrorType.NotConfigured,
        `service ${service} has no file tree "${tree}" in backup.paths (it has: ${backup.paths.map(fileTreeId).join(', ') || 'none'})`,
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
    async backupFileTree(args: {
      service: string;
      tree: string;
      backupId: string;
      level: FileTreeLevel;
      parent: string | null;
      chain: string;
    }): Promise<FileTreeBackupResult> {
      const { service, tree, backupId, level, parent, chain } = args;
      const { cfg, stateDir } = treeOf(service, tree);
      if (!BACKUP_ID.test(backupId))
        throw failure(ErrorType.InvalidInput, `backupId: "${backupId}" is not a backup id`);
      if ((level === 'full') !== (parent === null) || (level === 'full' && chain !== backupId))
        throw failure(ErrorType.InvalidInput, `level ${level} with parent ${parent} and chain ${chain}`);
      const targets = stores.forService(service);
      await checkObjectLocks(targets);
      for (const store of targets) {
        const key = fileTreeManifestKey(service, tree, backupId);
        if ((await store.get(key)) !== null)
          throw refuse(
            ErrorType.BackupExists,
            `${store.location(key)} exists: file-tree backup ${backupId} of ${service}/${tree} is never rewritten`,
          );
      }
      const ssh = sshTargets(cfg.host);
      const ctx = activityContext();
      const startedAt = new Date().toISOString();
      const attempt = newAttempt(ctx?.info.attempt ?? 1, randomBytes(4).toString('hex'));
      const key = (file: string) => fileTreeKey(service, tree, backupId, attempt, file);

      // The parent's snapshot: the host's copy if it is exactly the one the signed manifest names, else storage's.
      let restoreChain: string[] = [];
      let snapshotFrom: FileTreeBackupResult['snapshotFrom'] = 'none';
      let snapshotInput: Buffer | null = null;
      const q = (file: string) => shellQuote(`${stateDir}/${file}`);
      const pre = await runOnHost(
        ssh,
        `tar --version | head -n1\n${parent ? `sha256sum < ${q(`${parent}.snar`)} 2>/dev/null || echo none` : 'echo none'}`,
      );
      const [tarVersion = 'unknown', hostSnapshot = 'none'] = pre.stdout.toString('utf8').split('\n');
      if (parent) {
        const { store, manifest: p } = await manifestOf(service, tree, parent);
        if (p.chain !== chain || (level === 'differential' && p.id !== chain))
          throw failure(ErrorType.InvalidInput, `parent ${parent} is of chain ${p.chain}, not ${chain}`);
        restoreChain = [...p.restoreChain, p.id];
        if (hostSnapshot.slice(0, 64) === p.snapshot.sha256) snapshotFrom = 'host';
        else {
          const body = await readAll(store, p.snapshot.key);
          if (sha256(body) !== p.snapshot.sha256)
            throw refuse(
              ErrorType.BackupCorrupt,
              `${store.location(p.snapshot.key)}: SHA-256 ${sha256(body)}, the signed manifest of ${parent} names ${p.snapshot.sha256}`,
            );
          snapshotInput = body;
          snapshotFrom = 'storage';
        }
      }

      // Level 0 starts from no snapshot; the others from the parent's, copied (tar rewrites the file it is given).
      const work = q(`${backupId}.snar.partial`);
      const script = [
        'umask 077',
        "trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM",
        `mkdir -p -- ${shellQuote(stateDir)} || exit 70`,
        `rm -f -- ${work}`,
        // A tree that is not there is the inventory's problem, not a transient one: said apart, never retried.
        `[ -d ${shellQuote(cfg.path)} ] || exit 73`,
        snapshotFrom === 'host' ? `cp -- ${q(`${parent}.snar`)} ${work} || exit 71` : '',
        snapshotInput ? `head -c ${snapshotInput.length} > ${work} || exit 71` : '',
        `tar --create --file=- --format=gnu --listed-incremental=${work} --anchored ` +
          `${cfg.exclude.map((e) => `--exclude=${shellQuote(`./${e}`)}`).join(' ')} -C ${shellQuote(cfg.path)} .`,
        'rc=$?',
        `[ $rc -eq 0 ] && mv -f -- ${work} ${q(`${backupId}.snar`)}`,
        'exit $rc',
      ]
        .filter(Boolean)
        .join('\n');

      const writers: { store: BackupStore; writer: BackupWriter }[] = [];
      const abort = new AbortController();
      const onCancel = () => abort.abort(new Error('cancelled'));
      ctx?.cancellationSignal.addEventListener('abort', onCancel);
      if (ctx?.cancellationSignal.aborted) onCancel();
      const counter = new Counter();
      const digest = new Digest();
      let heartbeat: NodeJS.Timeout | undefined;
      let zstd: ChildProcess | undefined;
      let kill = () => {};
      try {
        heartbeat = setInterval(
          () => ctx?.heartbeat({ phase: `file tree ${tree}`, readBytes: counter.bytes, writtenBytes: digest.bytes }),
          HEARTBEAT_MS,
        );
        for (const store of targets)
          writers.push({ store, writer: store.openWriter(key(FILE_TREE_ARCHIVE), (err) => abort.abort(err)) });
        const run = await openHostStream(ssh, script);
        kill = run.kill;
        run.stdin.end(snapshotInput ?? '');
        const tarStderr = collect(run.stderr);
        zstd = spawn('zstd', ['-q', `-${zstdLevel}`, `-T${zstdThreads}`, '-c'], { stdio: ['pipe', 'pipe', 'pipe'] });
        const zstdStderr = collect(zstd.stderr);
        const z = zstd;
        abort.signal.addEventListener('abort', () => {
          run.kill();
          z.kill('SIGKILL');
        });
        const [, , archived, compressed] = await Promise.all([
          pipeline(run.stdout, counter, zstd.stdin!, { signal: abort.signal }),
          pipeline(zstd.stdout!, digest, new FanOut(writers.map((w) => w.writer.stream)), { signal: abort.signal }),
          run.exit,
          exitOf(zstd, 'zstd'),
        ]);
        if (archived.code === 73)
          throw failure(
            ErrorType.ResourceNotFound,
            `${cfg.host}:${cfg.path} is not a directory (services.${service}.backup.paths)`,
            { host: cfg.host },
          );
        if (archived.code !== 0)
          throw failure(
            ErrorType.DumpFailed,
            `tar on ${cfg.host} for ${cfg.path} exited ${archived.code}: ${tarStderr() || '(no output)'}`,
            { host: cfg.host },
          );
        if (compressed.code !== 0)
          throw failure(ErrorType.DumpFailed, `zstd exited ${compressed.code}: ${zstdStderr()}`);
        if (abort.signal.aborted) throw abort.signal.reason;
        const archiveSha = digest.hex();
        const versions = await Promise.all(writers.map((w) => w.writer.finish()));
        const locations = await Promise.all(writers.map((w) => w.writer.publish()));
        await Promise.all(
          targets.map((s) => s.put(`${key(FILE_TREE_ARCHIVE)}.sha256`, checksumLine(archiveSha, FILE_TREE_ARCHIVE))),
        );

        return await whileHeartbeating(
          { phase: `file tree ${tree}: snapshot and per-file list` },
          (async () => {
            // tar's snapshot after this backup; the host keeps it and the chain's full's, older ones go.
            const snap = await runOnHost(
              ssh,
              `cat -- ${q(`${backupId}.snar`)} || exit 72\n` +
                `find ${shellQuote(stateDir)} -maxdepth 1 -name '*.snar' ! -name ${shellQuote(`${backupId}.snar`)} ` +
                `! -name ${shellQuote(`${chain}.snar`)} -delete`,
            );
            if (snap.code !== 0)
              throw failure(
                ErrorType.DumpFailed,
                `${cfg.host}: reading tar's snapshot exited ${snap.code}: ${snap.stderr}`,
              );
            const entries = await listTree(ssh, cfg.path, cfg.exclude);
            const list = Buffer.from(`${JSON.stringify(entries)}\n`);
            for (const store of targets) {
              await putBytes(store, key(FILE_TREE_SNAPSHOT), snap.stdout);
              await putBytes(store, key(FILE_TREE_LIST), list);
            }
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
              restoreChain,
              snapshotFrom,
              startedAt,
              endedAt: new Date().toISOString(),
              object: {
                key: key(FILE_TREE_ARCHIVE),
                size: digest.bytes,
                sha256: archiveSha,
                compression: 'zstd' as const,
                uncompressedSize: counter.bytes,
              },
              snapshot: { key: key(FILE_TREE_SNAPSHOT), size: snap.stdout.length, sha256: sha256(snap.stdout) },
              files: {
                key: key(FILE_TREE_LIST),
                size: list.length,
                sha256: sha256(list),
                count: entries.length,
                bytes: entries.reduce((n, e) => n + (e.type === 'file' ? (e.size ?? 0) : 0), 0),
              },
              copies: writtenCopies(targets, locations, versions),
              tools: { tar: tarVersion.trim(), zstd: await toolVersion('zstd') },
            };
          })(),
        );
      } catch (err) {
        const reason = abort.signal.aborted && abort.signal.reason instanceof Error ? abort.signal.reason : err;
        abort.abort(reason);
        await Promise.all(writers.map((w) => w.writer.abort()));
        throw reason;
      } finally {
        clearInterval(heartbeat);
        ctx?.cancellationSignal.removeEventListener('abort', onCancel);
        kill();
        if (zstd && zstd.exitCode === null) zstd.kill('SIGKILL');
      }
    },

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
                `${store.location(o.key)}: read back ${bytes} bytes with SHA-256 ${actual}; written ${o.size} bytes with SHA-256 ${o.sha256}`,
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

    /**
     * Restore a tree's chain up to `backupId` (default: the newest verified) into a scratch directory on the host,
     * then check it file by file against the backup's per-file list. Every object of the chain is read from one
     * destination and checked against its signed manifest BEFORE anything is extracted: a changed object is refused
     * (BackupCorrupt) with nothing written. Never over the tree itself (a restore over production is not this step).
     */
    async restoreFileTree({
      service,
      tree,
      backupId: asked,
      destination,
      into: intoAsked,
    }: {
      service: string;
      tree: string;
      backupId?: string;
      /** Read from this destination only (default: the first whose copy of the whole chain checks out). */
      destination?: BackupDestinationName;
      /** An empty or new directory on the host (default: a fresh drbook-filetree-restore-* under its TMPDIR). */
      into?: string;
    }): Promise<FileTreeRestoreResult> {
      const started = Date.now();
      const { cfg } = treeOf(service, tree);
      if (asked !== undefined && !BACKUP_ID.test(asked))
        throw failure(ErrorType.InvalidInput, `backupId: "${asked}" is not a backup id`);
      if (intoAsked !== undefined) {
        const inside = (a: string, b: string) => a === b || a.startsWith(`${b === '/' ? '' : b}/`);
        if (!intoAsked.startsWith('/') || intoAsked.split('/').includes('..') || [...intoAsked].some((c) => c < ' '))
          throw failure(ErrorType.InvalidInput, `into: "${intoAsked}" is not an absolute path without ".."`);
        if (inside(intoAsked, cfg.path) || inside(cfg.path, intoAsked))
          throw failure(ErrorType.InvalidInput, `into: ${intoAsked} overlaps the tree ${cfg.path} itself`);
      }
      const all = await listed(service, tree);
      const backupId =
        asked ??
        all
          .flatMap((l) => l.ids)
          .sort()
          .pop();
      if (!backupId) throw failure(ErrorType.NoVerifiedBackup, `no verified backup of file tree ${service}/${tree}`);
      const ssh = sshTargets(cfg.host);
      const dir = await privateWorkDir('filetree-restore');
      let into: string | null = null;
      let made = false;
      try {
        // 1. The whole chain from one destination, every object checked against its signed manifest.
        const refusals: string[] = [];
        let picked: { store: BackupStore; chain: FileTreeManifest[]; list: FileTreeEntry[] } | null = null;
        for (const store of stores.forService(service)) {
          if (destination && store.name !== destination) continue;
          try {
            const target = await readFileTreeManifest(stores, store, service, tree, backupId);
            if (!target) {
              refusals.push(`${store.label}: no manifest of ${backupId}`);
              continue;
            }
            const chain: FileTreeManifest[] = [];
            for (const id of target.restoreChain) {
              const m = await readFileTreeManifest(stores, store, service, tree, id);
              if (!m || m.chain !== target.chain)
                throw refuse(
                  ErrorType.ManifestInvalid,
                  `${store.label}: ${id} of chain ${target.chain} is ${m ? `of chain ${m.chain}` : 'missing'}`,
                );
              chain.push(m);
            }
            chain.push(target);
            await whileHeartbeating(
              { fetching: store.label },
              (async () => {
                for (const m of chain) {
                  const file = path.join(dir, `${m.id}.tar.zst`);
                  const digest = new Digest();
                  await pipeline(await store.read(m.object.key), digest, createWriteStream(file, { mode: 0o600 }));
                  const actual = digest.hex();
                  if (digest.bytes !== m.object.size || actual !== m.object.sha256)
                    throw refuse(
                      ErrorType.BackupCorrupt,
                      `${store.location(m.object.key)}: ${digest.bytes} bytes with SHA-256 ${actual}; the signed manifest of ${m.id} names ${m.object.size} bytes with SHA-256 ${m.object.sha256}: nothing was extracted`,
                    );
                }
              })(),
            );
            const listBody = await readAll(store, target.files.key);
            if (sha256(listBody) !== target.files.sha256)
              throw refuse(
                ErrorType.BackupCorrupt,
                `${store.location(target.files.key)}: SHA-256 ${sha256(listBody)}, the signed manifest names ${target.files.sha256}`,
              );
            picked = { store, chain, list: JSON.parse(listBody.toString('utf8')) as FileTreeEntry[] };
            break;
          } catch (err) {
            if (destination || !(err instanceof ApplicationFailure)) throw err;
            refusals.push(err.message);
          }
        }
        if (!picked)
          throw refuse(
            refusals.some((r) => /SHA-256/.test(r)) ? ErrorType.BackupCorrupt : ErrorType.NoVerifiedBackup,
            `no destination holds a whole, intact chain of ${service}/${tree}/${backupId}: ${refusals.join('; ')}`,
          );

        // 2. A scratch directory on the host, then each archive in chain order; tar applies the deletions it records.
        return await whileHeartbeating(
          { restoring: `${service}/${tree}/${backupId}` },
          (async () => {
            const made1 = await runOnHost(
              ssh,
              intoAsked
                ? `mkdir -p -- ${shellQuote(intoAsked)} && [ -z "$(ls -A -- ${shellQuote(intoAsked)})" ] && echo ${shellQuote(intoAsked)}`
                : 'umask 077; mktemp -d "${TMPDIR:-/tmp}/drbook-filetree-restore-XXXXXXXX"',
            );
            into = made1.stdout.toString('utf8').trim();
            if (made1.code !== 0 || !into)
              throw failure(
                ErrorType.RestoreFailed,
                `${cfg.host}: ${intoAsked ? `${intoAsked} is not an empty directory` : 'mktemp -d failed'}: ${made1.stderr}`,
              );
            made = !intoAsked;
            for (const m of picked.chain) {
              const run = await openHostStream(
                ssh,
                `zstd -dc | tar --extract --file=- --listed-incremental=/dev/null --preserve-permissions -C ${shellQuote(into)}`,
              );
              const stderr = collect(run.stderr);
              run.stdout.resume();
              const [, done] = await Promise.all([
                pipeline(createReadStream(path.join(dir, `${m.id}.tar.zst`)), run.stdin),
                run.exit,
              ]);
              if (done.code !== 0)
                throw failure(
                  ErrorType.RestoreFailed,
                  `${cfg.host}: extracting ${m.id} (${m.level}) into ${into} exited ${done.code}: ${stderr()}`,
                );
            }
            // 3. The restored tree against the backup's list: names, types, modes, sizes, content, symlink targets.
            const problems = compareFileTrees(picked.list, await listTree(ssh, into, []));
            return {
              service,
              tree,
              backupId,
              chain: picked.chain.map((m) => m.id),
              destination: picked.store.name,
              host: cfg.host,
              into,
              files: picked.list.length,
              bytes: picked.chain.at(-1)!.files.bytes,
              problems,
              seconds: Math.round((Date.now() - started) / 1000),
            };
          })(),
        );
      } catch (err) {
        // A scratch directory this step made is removed when it fails; a result hands it to removeFileTreeScratch.
        if (made && into) await runOnHost(ssh, `rm -rf -- ${shellQuote(into)}`).catch(() => undefined);
        throw err;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },

    /** Remove a scratch directory restoreFileTree made (only those: drbook-filetree-restore-XXXXXXXX). */
    async removeFileTreeScratch({ service, tree, into }: { service: string; tree: string; into: string }) {
      const { cfg } = treeOf(service, tree);
      if (!SCRATCH.test(into))
        throw failure(ErrorType.InvalidInput, `into: ${into} is not a scratch directory of a file-tree restore`);
      const r = await runOnHost(sshTargets(cfg.host), `rm -rf -- ${shellQuote(into)}`);
      if (r.code !== 0)
        throw failure(ErrorType.CommandFailed, `${cfg.host}: rm -rf ${into} exited ${r.code}: ${r.stderr}`);
      return { host: cfg.host, removed: into };
    },
  };
}

export type FileTreeActivities = ReturnType<typeof createFileTreeActivities>;
