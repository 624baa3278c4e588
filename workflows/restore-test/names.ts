/**
 * The names a restore test gives what it creates: scratch databases and the restored RDS instance. Each keeps the
 * run's tag, so two restore tests never drop each other's scratch.
 */
import { patched } from '@temporalio/workflow';

/**
 * A short, stable tag of a long name (FNV-1a, 32 bits, hex): tells apart names that share a cut prefix. Written
 * here because workflow code cannot use node:crypto; it identifies, it does not protect.
 */
export function nameTag(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0').slice(0, 6);
}

/**
 * `name` if it fits in `max` characters, else its head, `sep`, and a tag of the whole: distinct names stay distinct.
 */
function fit(name: string, max: number, sep: string, tagOf = name): string {
  if (name.length <= max && tagOf === name) return name;
  const head = name.slice(0, Math.max(0, max - 7)).replace(/[-_]+$/, '');
  return head ? `${head}${sep}${nameTag(tagOf)}` : nameTag(tagOf);
}

const SCRATCH_BASE = 40; // restore_<service>_<runTag>
const SCRATCH_NAME = 57; // + _<database>; SCRATCH_DATABASE in activities/restore allows 64
const RDS_INSTANCE = 60; // RESTORED_RDS_INSTANCE in activities/restore/rds.ts

/**
 * `restore_<service>_<runTag>` (+ `_<database>` when the backup holds several). The run tag is what keeps two
 * restore tests from dropping each other's scratch databases, so it is never cut: a long service name (or
 * database name) is shortened to its head plus a tag of the whole name instead.
 */
export function scratchNames(service: string, runTag: string, databases: string[]) {
  const svc = service.replace(/-/g, '_');
  const base = `restore_${fit(svc, SCRATCH_BASE - 'restore__'.length - runTag.length, '_')}_${runTag}`;
  return databases.map((source) => {
    const db = source.toLowerCase().replace(/[^a-z0-9_]/g, '_');
    // The tag covers the source name as written: Shop and shop, or a-b and a_b, are different databases.
    return {
      source,
      scratch: databases.length === 1 ? base : `${base}_${fit(db, SCRATCH_NAME - base.length - 1, '_', source)}`,
    };
  });
}

/** The names before the run tag was kept (runs started before, replayed: they must drop what they created). */
export function scratchNamesBeforeRunTagKept(service: string, runTag: string, databases: string[]) {
  const base = `restore_${service.replace(/-/g, '_')}_${runTag}`.slice(0, 40);
  return databases.map((source) => ({
    source,
    scratch: databases.length === 1 ? base : `${base}_${source.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 57),
  }));
}

/** `drbook-restore-test-<service>-<runTag>`: a valid RDS identifier (no `--`), recognisable as disposable. */
export function restoredRdsInstanceName(service: string, runTag: string): string {
  const svc = service.replace(/-+/g, '-').replace(/-$/, '');
  const room = RDS_INSTANCE - 'drbook-restore-test--'.length - runTag.length;
  return `drbook-restore-test-${fit(svc, room, '-', service)}-${runTag}`;
}

export const restoredRdsInstanceNameBeforeRunTagKept = (service: string, runTag: string) =>
  `drbook-restore-test-${service}-${runTag}`.slice(0, 60).replace(/-+$/, '');

/**
 * Names that keep the run tag. Where they differ from the old ones (long or unusual names), a run that began
 * before this change keeps its old names on replay, so its clean-up drops what it created.
 */
export function keepingRunTag<T>(current: T, before: T): T {
  if (JSON.stringify(current) === JSON.stringify(before)) return current;
  return patched('restore-names-keep-run-tag') ? current : before;
}
