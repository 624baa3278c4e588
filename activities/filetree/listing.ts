/**
 * A file tree as it is on its host, listed over SSH (type, mode, size, SHA-256, symlink target of every entry,
 * excludes left out), and a restored tree compared with the list its backup recorded.
 */
import { type FileTreeEntry, ErrorType } from '../../contract';
import { failure } from '../errors';
import { shellQuote } from '../process/quote';
import { runOnHost, type SshTarget } from '../ssh';

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
export async function listTree(ssh: SshTarget, dir: string, exclude: string[]): Promise<FileTreeEntry[]> {
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
