/**
 * The physical backup, streamed end to end with no temp file:
 *
 *   mariabackup --backup --stream=xbstream | zstd | SHA-256 | every destination at once
 *
 * mariabackup copies the server's data files, so it runs where they are (contract/inventory/fields.ts dataFilesHost):
 * on the server's `sshHost` over SSH (ssh2, pinned host key) when it has one, its stdout streamed back through the
 * channel; on the worker only when the server has no sshHost and its host is the worker's own (127.0.0.1 /
 * localhost); anything else is refused by the inventory. On its host mariabackup connects through the server's
 * `socket` when the inventory gives one (what an SRE on the box does), else to host:port. Either way the credentials
 * reach it as a 0600 defaults-extra-file in a private `drbook-mariabackup-*` temp directory (also its
 * --target-dir): over SSH the file is filled from the channel's stdin, never a command line, and the directory is
 * removed when mariabackup exits (also on HUP/INT/TERM); on the worker, when the step ends.
 *
 * Restore by hand: `zstd -d < backup.xbstream.zst | mbstream -x -C dir && mariabackup --prepare
 * --target-dir=dir`, then copy back (docs/backup.md).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { RowDataPacket } from 'mysql2/promise';
import { dataFilesHost, type MysqlServer, ErrorType } from '../../contract';
import { failure } from '../errors';
import { collect, exitOf, toolVersion } from '../process/child';
import { clientDefaultsText, writeClientDefaults, type ClientTarget } from '../process/defaults-file';
import { heartbeatEvery } from '../process/heartbeat';
import { shellQuote } from '../process/quote';
import { Upload } from '../process/upload';
import { compressInto } from '../process/zstd';
import { openHostStream, type SshTarget } from '../ssh';
import type { BackupStores } from '../storage/destinations';
import { databaseBackups, type DatabaseBackupRun } from './backup-start';
import { mysqlFailure, type MysqlPools } from './index';

export interface PhysicalBackupResult extends DatabaseBackupRun {
  /** Where the copy sits in the binlog (from mariabackup's own report). */
  position: { gtid: string | null; binlogFile: string | null; binlogPos: number | null };
  /** 'local' or the SSH host it ran on. */
  ranOn: string;
}

const HEARTBEAT_MS = 5000;
/** Private to one run of mariabackup: its defaults file and --target-dir (mariabackup's own checkpoint files). */
const WORK_DIR_PREFIX = 'drbook-mariabackup-';

/**
 * mariabackup's report: "MySQL binlog position: filename 'binlog.000003', position '1234', GTID of the last change
 * '0-1-5'".
 */
const POSITION = /binlog position: filename '([^']+)', position '?(\d+)'?(?:, GTID of the last change '([^']*)')?/;

/** A running backup tool: its stdout, stderr text so far, and its exit. */
interface Source {
  stdout: Readable;
  stderr: () => string;
  /** Its first line naming itself ("mariabackup based on MariaDB server 10.11.x ..."), once it printed it. */
  version: () => string | null;
  exit: Promise<{ code: number | null }>;
  kill(): void;
}

function versionTap(stderr: Readable): () => string | null {
  let version: string | null = null;
  let head = '';
  const look = (d: Buffer) => {
    head += d.toString();
    const m = /^mariabackup based on (.+)$/m.exec(head);
    if (m || head.length > 8192) {
      version = m ? `mariabackup ${m[1].trim()}` : null;
      stderr.off('data', look);
    }
  };
  stderr.on('data', look);
  return () => version;
}

/** mariabackup on the worker itself, connecting as `target` (through `socket` when given). */
async function localSource(
  args: string[],
  target: ClientTarget,
  socket: string | undefined,
  cleanups: (() => Promise<void>)[],
): Promise<Source> {
  const { dir, file } = await writeClientDefaults(target, { kind: 'mariabackup', socket });
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const child: ChildProcess = spawn('mariabackup', [`--defaults-extra-file=${file}`, ...args, `--target-dir=${dir}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exit = exitOf(child, 'mariabackup');
  return {
    stdout: child.stdout!,
    stderr: collect(child.stderr),
    version: versionTap(child.stderr!),
    exit,
    kill: () => child.kill('SIGKILL'),
  };
}

/**
 * mariabackup on the database host over SSH. The defaults file travels on the channel's stdin into a private
 * directory the remote shell removes when mariabackup exits; a signal to the shell (HUP, INT, TERM) exits it
 * through the same trap.
 */
async function sshSource(ssh: SshTarget, args: string[], defaults: string): Promise<Source> {
  const script = [
    'umask 077',
    `d=$(mktemp -d "\${TMPDIR:-/tmp}/${WORK_DIR_PREFIX}XXXXXXXX") || exit 70`,
    `trap 'rm -rf "$d"' EXIT`,
    "trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM",
    `head -c ${Buffer.byteLength(defaults)} > "$d/client.cnf" || exit 71`,
    `mariabackup --defaults-extra-file="$d/client.cnf" ${args.map(shellQuote).join(' ')} --target-dir="$d"`,
  ].join('\n');
  const run = await openHostStream(ssh, script);
  run.stdin.end(defaults);
  return {
    stdout: run.stdout,
    stderr: collect(run.stderr),
    version: versionTap(run.stderr),
    exit: run.exit,
    kill: run.kill,
  };
}

/** The server's version, data directory and databases (all but the system schemas), read before the copy. */
async function readServer(pools: MysqlPools, server: string) {
  try {
    const [v] = await pools.pool(server).query<RowDataPacket[]>('SELECT VERSION() AS v, @@datadir AS d');
    const [dbs] = await pools
      .pool(server)
      .query<RowDataPacket[]>(
        "SELECT SCHEMA_NAME AS s FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN ('information_schema', " +
          "'performance_schema', 'sys') ORDER BY 1",
      );
    return { version: String(v[0].v), datadir: String(v[0].d), databases: dbs.map((r) => String(r.s)) };
  } catch (err) {
    throw mysqlFailure(server, err);
  }
}

/** mariabackup's exit, as a failure an operator and a retry policy can act on. */
function copyFailure(where: string, server: string, code: number | null, report: string): Error {
  const auth = /Access denied|\b1045\b/i.test(report);
  return failure(
    auth ? ErrorType.DatabaseAuthFailed : ErrorType.DumpFailed,
    `mariabackup on ${where} for ${server} exited ${code}: ${report.slice(-1500) || '(no output)'}`,
    { server },
  );
}

/** Where mariabackup must run for `server`: on its sshHost, or on the worker when its files are the worker's. */
function copyHost(servers: Record<string, MysqlServer>, pools: MysqlPools, server: string): string | null {
  const config = servers[server];
  const where = config ? dataFilesHost(config) : null;
  if (where === null)
    throw failure(
      ErrorType.NotConfigured,
      `physical backup of ${server} (${pools.target(server).host}) must run on its host: give ` +
        `mysqlServers.${server}.sshHost in the inventory`,
    );
  return where === 'worker' ? null : where.ssh;
}

export function createPhysicalBackupActivities(
  stores: BackupStores,
  pools: MysqlPools,
  sshTargets: (name: string) => SshTarget,
  servers: Record<string, MysqlServer>,
  options: { zstdLevel?: number; zstdThreads?: number } = {},
) {
  const backups = databaseBackups(stores, pools, options);

  return {
    /**
     * A physical copy (the whole server) of the member writable now, or a healthy replica of it with
     * backup.source: replica, into every destination at once; a fenced source is refused.
     * Safe to retry: each attempt writes under its own `<attempt>/` directory; the manifest (after verifyCopy)
     * names the attempt that counts. A backup id that already has a manifest is refused (BackupExists).
     */
    async takePhysicalBackup({
      service,
      backupId,
      source: named,
    }: {
      service: string;
      backupId: string;
      /** A member to copy instead of the live one (refused if fenced). */
      source?: string;
    }): Promise<PhysicalBackupResult> {
      const { engine, server, targets, key, startedAt } = await backups.start({
        service,
        backupId,
        kind: 'physical',
        source: named,
      });
      if (engine !== 'mariadb')
        throw failure(
          ErrorType.NotConfigured,
          `physical backups use mariabackup; ${server} is ${engine} (xtrabackup is not wired yet)`,
        );
      const target = pools.target(server);
      const { version, datadir, databases } = await readServer(pools, server);

      // --target-dir (added where it runs: its private directory) holds mariabackup's own checkpoint files only;
      // with --stream the data goes to stdout.
      const args = ['--backup', '--stream=xbstream', `--datadir=${datadir}`];
      const sshHost = copyHost(servers, pools, server);
      const socket = servers[server]?.socket;

      const cleanups: (() => Promise<void>)[] = [];
      const upload = new Upload();
      let stopBeat = () => {};
      let source: Source | undefined;
      try {
        const fanOut = upload.open(targets, key);
        source = sshHost
          ? await sshSource(sshTargets(sshHost), args, clientDefaultsText(target, socket))
          : await localSource(args, target, socket, cleanups);
        const running = source;
        upload.onAbort(() => running.kill());
        const { zstd, counter, digest, done } = compressInto(upload, fanOut, source.stdout, backups.zstd);
        stopBeat = heartbeatEvery(
          () => ({ phase: 'physical backup', copiedBytes: counter.bytes, writtenBytes: digest.bytes }),
          HEARTBEAT_MS,
        );
        const [compressed, copied] = await Promise.all([done, source.exit]);
        const report = source.stderr();
        if (copied.code !== 0) throw copyFailure(sshHost ?? 'the worker', server, copied.code, report);
        if (compressed.code !== 0)
          throw failure(ErrorType.DumpFailed, `zstd exited ${compressed.code}: ${zstd.stderr()}`, { server });
        upload.throwIfAborted();
        const sha256 = digest.hex();
        const copies = await upload.complete(sha256);
        const m = POSITION.exec(report);
        return {
          service,
          backupId,
          server,
          engine,
          version,
          startedAt,
          endedAt: new Date().toISOString(),
          position: { binlogFile: m?.[1] ?? null, binlogPos: m ? Number(m[2]) : null, gtid: m?.[3] || null },
          databases,
          object: { key, size: digest.bytes, sha256, compression: 'zstd', uncompressedSize: counter.bytes },
          copies,
          ranOn: sshHost ?? 'local',
          tools: {
            mariabackup: source.version() ?? (sshHost ? 'unknown' : await toolVersion('mariabackup')),
            zstd: await toolVersion('zstd'),
            server: version,
          },
        };
      } catch (err) {
        return await upload.fail(err);
      } finally {
        stopBeat();
        upload.close();
        source?.kill();
        for (const c of cleanups) await c();
      }
    },
  };
}

export type PhysicalBackupActivities = ReturnType<typeof createPhysicalBackupActivities>;
