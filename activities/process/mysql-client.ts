/**
 * The MySQL/MariaDB client tools as drbook runs them: a loader that never runs a client command from the SQL it
 * loads, and `mariadb-dump | mariadb` from one server into another with no temp file (re-clone, drill copy).
 */
import { execFile, spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { exitOf, collect } from './child';
import { writeClientDefaults, type ClientTarget } from './defaults-file';
import { heartbeatEvery } from './heartbeat';
import { Counter } from './streams';

const execFileAsync = promisify(execFile);
let sandboxSupported: Promise<boolean> | null = null;

/**
 * The options every `mariadb` client that loads SQL drbook did not write itself runs with (a backup
 * object, another server's dump, a binlog): client commands are refused, so `\! cmd` in a backup
 * never runs a shell on the worker (which holds every secret) and `\. file` never reads one.
 * --binary-mode turns off every client command but `\C` and DELIMITER (an unknown one ends the
 * load: "ERROR at line N: Unknown command"); --sandbox, where the client has it (MariaDB 10.5.25,
 * 10.6.18, 10.11.8 and later), also refuses the file-system ones should any be parsed.
 */
export async function loaderOptions(): Promise<string[]> {
  sandboxSupported ??= execFileAsync('mariadb', ['--help']).then(
    (r) => /^\s*--sandbox\b/m.test(r.stdout),
    () => false,
  );
  return ['--binary-mode', ...((await sandboxSupported) ? ['--sandbox'] : [])];
}

/** "ERROR at line N: Unknown command '\!'." (or refused in sandbox mode): a client command in the SQL, refused. */
export const REFUSED_CLIENT_COMMAND = /ERROR at line (\d+)[^:]*: (Unknown command '\\.'|.*sandbox mode)/i;

export interface DumpedInto {
  dump: { code: number | null };
  load: { code: number | null };
  /** The tail of each tool's stderr. */
  dumpErr: string;
  loadErr: string;
  /** Dump bytes that went through. */
  bytes: number;
}

/**
 * `mariadb-dump <dumpArgs> | mariadb <loaderOptions> <loadArgs>` from `from` into `to`, each with its own 0600
 * defaults file, heartbeating `progress(bytes)` while it runs. Returns both exits for the caller to judge (a failure
 * of either names the step's own error); a spawn failure or a broken stream with both exits clean rejects.
 */
export async function dumpInto({
  from,
  to,
  dumpArgs,
  loadArgs,
  progress,
}: {
  from: ClientTarget;
  to: ClientTarget;
  dumpArgs: string[];
  loadArgs: string[];
  progress: (bytes: number) => unknown;
}): Promise<DumpedInto> {
  const [source, target] = await Promise.all([writeClientDefaults(from), writeClientDefaults(to)]);
  // Everything awaited before the first spawn: between a spawn and its exitOf() nothing may yield to the event loop.
  const clientOptions = await loaderOptions();
  const counter = new Counter();
  const stop = heartbeatEvery(() => progress(counter.bytes));
  try {
    const dump = spawn('mariadb-dump', [`--defaults-extra-file=${source.file}`, ...dumpArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Another server's dump is SQL drbook did not write: no client command in it runs (loaderOptions).
    const load = spawn('mariadb', [`--defaults-extra-file=${target.file}`, ...clientOptions, ...loadArgs], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    const dumpErr = collect(dump.stderr);
    const loadErr = collect(load.stderr);
    load.stdin.on('error', () => undefined); // reported through the exit codes
    const [d, l, flow] = await Promise.allSettled([
      exitOf(dump, 'mariadb-dump'),
      exitOf(load, 'mariadb'),
      pipeline(dump.stdout, counter, load.stdin),
    ]);
    if (d.status === 'rejected') throw d.reason;
    if (l.status === 'rejected') throw l.reason;
    if (flow.status === 'rejected' && d.value.code === 0 && l.value.code === 0) throw flow.reason;
    return { dump: d.value, load: l.value, dumpErr: dumpErr(), loadErr: loadErr(), bytes: counter.bytes };
  } finally {
    stop();
    await Promise.all([
      rm(source.dir, { recursive: true, force: true }),
      rm(target.dir, { recursive: true, force: true }),
    ]);
  }
}
