/**
 * A file tree restored from its chain into a scratch directory on its host, checked file by file (see index.ts).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure } from '@temporalio/common';
import {
  BACKUP_ID,
  ErrorType,
  type BackupDestinationName,
  type FileTreeEntry,
  type FileTreeManifest,
} from '../../contract';
import { failure } from '../errors';
import { collect } from '../process/child';
import { whileHeartbeating } from '../process/heartbeat';
import { shellQuote } from '../process/quote';
import { Digest } from '../process/streams';
import { openHostStream, runOnHost, type SshTarget } from '../ssh';
import type { BackupStore, BackupStores } from '../storage/destinations';
import { privateWorkDir } from '../workdirs';
import { readAll, readFileTreeManifest, refuse, sha256, type FileTreeCatalog, type TreeConfig } from './catalog';
import { compareFileTrees, listTree } from './listing';

/** Scratch directories a restore makes on the host: the only ones removeFileTreeScratch removes. */
const SCRATCH = /^\/(?:[^/\0]+\/)*drbook-filetree-restore-[A-Za-z0-9]{8}$/;

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

/** A chain fetched from one destination into the worker's private directory, every object checked. */
interface PickedChain {
  store: BackupStore;
  chain: FileTreeManifest[];
  list: FileTreeEntry[];
}

/** `into` as asked: an absolute path without "..", apart from the tree itself. */
function checkInto(intoAsked: string, cfg: TreeConfig): void {
  const inside = (a: string, b: string) => a === b || a.startsWith(`${b === '/' ? '' : b}/`);
  if (!intoAsked.startsWith('/') || intoAsked.split('/').includes('..') || [...intoAsked].some((c) => c < ' '))
    throw failure(ErrorType.InvalidInput, `into: "${intoAsked}" is not an absolute path without ".."`);
  if (inside(intoAsked, cfg.path) || inside(cfg.path, intoAsked))
    throw failure(ErrorType.InvalidInput, `into: ${intoAsked} overlaps the tree ${cfg.path} itself`);
}

/** The chain up to `backupId` from `store`, each archive spooled to `dir` and checked; null if it has none. */
async function fetchChain(
  stores: BackupStores,
  store: BackupStore,
  service: string,
  tree: string,
  backupId: string,
  dir: string,
): Promise<PickedChain | null> {
  const target = await readFileTreeManifest(stores, store, service, tree, backupId);
  if (!target) return null;
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
            `${store.location(m.object.key)}: ${digest.bytes} bytes with SHA-256 ${actual}; the signed manifest ` +
              `of ${m.id} names ${m.object.size} bytes with SHA-256 ${m.object.sha256}: nothing was extracted`,
          );
      }
    })(),
  );
  const listBody = await readAll(store, target.files.key);
  if (sha256(listBody) !== target.files.sha256)
    throw refuse(
      ErrorType.BackupCorrupt,
      `${store.location(target.files.key)}: SHA-256 ${sha256(listBody)}, the signed manifest ` +
        `names ${target.files.sha256}`,
    );
  return { store, chain, list: JSON.parse(listBody.toString('utf8')) as FileTreeEntry[] };
}

/** The whole chain from one destination (the one asked for, or the first whose copy checks out). */
async function pickChain(
  stores: BackupStores,
  service: string,
  tree: string,
  backupId: string,
  destination: BackupDestinationName | undefined,
  dir: string,
): Promise<PickedChain> {
  const refusals: string[] = [];
  for (const store of stores.forService(service)) {
    if (destination && store.name !== destination) continue;
    try {
      const picked = await fetchChain(stores, store, service, tree, backupId, dir);
      if (picked) return picked;
      refusals.push(`${store.label}: no manifest of ${backupId}`);
    } catch (err) {
      if (destination || !(err instanceof ApplicationFailure)) throw err;
      refusals.push(err.message);
    }
  }
  throw refuse(
    refusals.some((r) => /SHA-256/.test(r)) ? ErrorType.BackupCorrupt : ErrorType.NoVerifiedBackup,
    `no destination holds a whole, intact chain of ${service}/${tree}/${backupId}: ${refusals.join('; ')}`,
  );
}

/** Each archive in chain order into `into` on the host; tar applies the deletions it records. */
async function extractChain(ssh: SshTarget, cfg: TreeConfig, picked: PickedChain, dir: string, into: string) {
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
}

export function createFileTreeRestoreActivities(
  stores: BackupStores,
  { treeOf, listed }: FileTreeCatalog,
  sshTargets: (name: string) => SshTarget,
) {
  return {
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
      if (intoAsked !== undefined) checkInto(intoAsked, cfg);
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
        const picked = await pickChain(stores, service, tree, backupId, destination, dir);

        // 2. A scratch directory on the host, then each archive in chain order; tar applies the deletions it records.
        return await whileHeartbeating(
          { restoring: `${service}/${tree}/${backupId}` },
          (async () => {
            const made1 = await runOnHost(
              ssh,
              intoAsked
                ? `mkdir -p -- ${shellQuote(intoAsked)} && [ -z "$(ls -A -- ${shellQuote(intoAsked)})" ] && ` +
                    `echo ${shellQuote(intoAsked)}`
                : 'umask 077; mktemp -d "${TMPDIR:-/tmp}/drbook-filetree-restore-XXXXXXXX"',
            );
            into = made1.stdout.toString('utf8').trim();
            if (made1.code !== 0 || !into)
              throw failure(
                ErrorType.RestoreFailed,
                `${cfg.host}: ${intoAsked ? `${intoAsked} is not an empty directory` : 'mktemp -d failed'}: ` +
                  `${made1.stderr}`,
              );
            made = !intoAsked;
            await extractChain(ssh, cfg, picked, dir, into);
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
