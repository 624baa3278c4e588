/**
 * SSH adapter (ssh2): runs commands on inventory hosts. The host key is pinned, either by
 * SHA256 fingerprint or by a known_hosts file; a host presenting any other key is
 * refused with HostKeyMismatch and never learned on first use.
 */
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { PassThrough } from 'node:stream';
import { Client, type ConnectConfig } from 'ssh2';
import { type SshHost, ErrorType } from '../../contract';
import { driverFailure, failure } from '../errors';
import { whileHeartbeating } from '../process/heartbeat';
import { shellQuote } from '../process/quote';

export interface SshTarget {
  name: string;
  host: string;
  port: number;
  user: string;
  privateKey: string;
  /** Base64 key blobs this host may present (from known_hosts), or SHA256 fingerprints. */
  pinned: { keys: string[]; fingerprints: string[] };
  commandPrefix?: string;
}

export const fingerprintOf = (keyBlob: Buffer) =>
  `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;

/** Key blobs for host:port in an OpenSSH known_hosts text (plain, [host]:port and hashed |1| entries). */
export function knownHostKeys(text: string, host: string, port: number): string[] {
  const wanted = port === 22 ? host : `[${host}]:${port}`;
  const keys: string[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 3 || fields[0].startsWith('#') || fields[0].startsWith('@')) continue;
    const [hosts, , blob] = fields;
    const match = hosts.split(',').some((h) => {
      if (!h.startsWith('|1|')) return h === wanted;
      const [salt, hash] = h.slice(3).split('|');
      return createHmac('sha1', Buffer.from(salt, 'base64')).update(wanted).digest('base64') === hash;
    });
    if (match) keys.push(blob);
  }
  return keys;
}

export interface CommandResult {
  host: string;
  command: string;
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** The command line sent to the host: the prefix (sudo -n, ip netns exec ...) wraps the whole of it, pipes and all. */
export const remoteCommandLine = (target: SshTarget, command: string) =>
  target.commandPrefix ? `${target.commandPrefix} sh -c ${shellQuote(command)}` : command;

/** Run one command; resolves with its exit code, rejects on connection, auth or host-key failure. */
export function runOverSsh(target: SshTarget, command: string, timeoutMs = 30000): Promise<CommandResult> {
  const full = remoteCommandLine(target, command);
  return new Promise((resolve, reject) => {
    const conn = new Client();
    let presented: string | undefined;
    let settled = false;
    const done = (err: Error | null, result?: CommandResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.end();
      if (err) reject(err);
      else resolve(result!);
    };
    const timer = setTimeout(
      () => done(failure(ErrorType.SshTimeout, `${target.name}: "${command}" did not finish in ${timeoutMs} ms`)),
      timeoutMs,
    );
    conn.on('ready', () => {
      conn.exec(full, (err, stream) => {
        if (err) return done(failure(ErrorType.SshExecFailed, `${target.name}: ${err.message}`));
        let stdout = '';
        let stderr = '';
        stream.on('data', (d: Buffer) => (stdout += d.toString()));
        stream.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        stream.on('close', (code: number | null) =>
          done(null, { host: target.name, command, exitCode: code ?? -1, stdout, stderr }),
        );
      });
    });
    conn.on('error', (err: Error & { level?: string }) => done(sshFailure(target, err, presented)));
    conn.connect(
      pinnedConnectConfig(target, Math.min(timeoutMs, 15000), (fingerprint) => {
        presented = fingerprint;
      }),
    );
  });
}

/** A command running on a host with its stdin, stdout and stderr as streams (backups and restores stream through). */
export interface HostStream {
  stdin: Writable;
  stdout: Readable;
  stderr: Readable;
  exit: Promise<{ code: number | null }>;
  /** Ends the connection: the remote shell gets a HUP. */
  kill: () => void;
}

/**
 * Run `script` on the host (through its commandPrefix) over one SSH channel, streaming: large outputs (a tar or
 * mariabackup stream) flow with backpressure, and whatever the command reads (a secret, a snapshot file) goes on
 * its stdin, never on a command line. `exit` rejects when the connection is lost before the command ended.
 */
export function openHostStream(target: SshTarget, script: string): Promise<HostStream> {
  return new Promise((resolve, reject) => {
    const conn = new Client();
    let presented: string | undefined;
    let ready = false;
    let lost: Error | undefined;
    conn.on('error', (err: Error & { level?: string }) => {
      // Before the channel opens this is the step's failure; after, the channel's close reports it.
      if (ready) lost = sshFailure(target, err, presented);
      else reject(sshFailure(target, err, presented));
    });
    conn.on('ready', () => {
      ready = true;
      conn.exec(remoteCommandLine(target, script), (err, channel) => {
        if (err) {
          conn.end();
          return reject(failure(ErrorType.SshExecFailed, `${target.name}: ${err.message}`));
        }
        const stdout = new PassThrough({ highWaterMark: 1024 * 1024 });
        channel.pipe(stdout);
        const exit = new Promise<{ code: number | null }>((res, rej) =>
          channel.on('close', (code: number | null) => {
            conn.end();
            if (code === null && lost) rej(lost);
            else res({ code });
          }),
        );
        resolve({ stdin: channel, stdout, stderr: channel.stderr, exit, kill: () => conn.end() });
      });
    });
    conn.connect(
      pinnedConnectConfig(target, 15000, (fingerprint) => {
        presented = fingerprint;
      }),
    );
  });
}

/**
 * Run `script` on the host and collect its whole stdout as bytes (a per-file list, a snapshot file: decoded once,
 * never chunk by chunk), feeding `input` on its stdin. Heartbeats are the caller's (whileHeartbeating).
 */
export async function runOnHost(
  target: SshTarget,
  script: string,
  input?: Buffer | string,
): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  const run = await openHostStream(target, script);
  const out: Buffer[] = [];
  let stderr = '';
  run.stdout.on('data', (d: Buffer) => out.push(d));
  run.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  run.stdin.end(input ?? '');
  const { code } = await run.exit;
  await new Promise<void>((res) => (run.stdout.readableEnded ? res() : run.stdout.once('end', () => res())));
  return { code, stdout: Buffer.concat(out), stderr: stderr.trim() };
}

/**
 * ssh2 connect options for a target with its host key pinned: any key not pinned is refused (never learned),
 * and `refused` is told its fingerprint so the failure can name it.
 */
export function pinnedConnectConfig(
  target: SshTarget,
  readyTimeout: number,
  refused: (fingerprint: string) => void,
): ConnectConfig {
  return {
    host: target.host,
    port: target.port,
    username: target.user,
    privateKey: target.privateKey,
    readyTimeout,
    hostVerifier: (key: Buffer) => {
      const ok =
        target.pinned.keys.includes(key.toString('base64')) || target.pinned.fingerprints.includes(fingerprintOf(key));
      if (!ok) refused(fingerprintOf(key));
      return ok;
    },
  };
}

/**
 * An ssh2 client error as the failure an operator and a retry policy act on: HostKeyMismatch (a key was refused:
 * `presented` is its fingerprint), SshAuthFailed, SshTimeout (no answer in time: worth a retry), else its code.
 */
export function sshFailure(target: SshTarget, err: Error & { level?: string }, presented?: string) {
  if (presented !== undefined)
    return failure(
      ErrorType.HostKeyMismatch,
      `${target.name} (${target.host}:${target.port}) presented host key ${presented}, which is not the pinned ` +
        `key: refusing to connect`,
      { host: target.name, presented },
    );
  if (err.level === 'client-authentication')
    return failure(ErrorType.SshAuthFailed, `${target.name}: the worker's key was refused for user ${target.user}`, {
      host: target.name,
    });
  const message = `${target.name} (${target.host}:${target.port}): ${err.message}`;
  if (err.level === 'client-timeout') return failure(ErrorType.SshTimeout, message, { host: target.name });
  return driverFailure((err as NodeJS.ErrnoException).code, ErrorType.SshError, message, { host: target.name });
}

/** Resolve an inventory host into a connectable target (reads key and known_hosts on the worker). */
export function sshTargetFromInventory(
  name: string,
  host: SshHost,
  resolve: { secret(ref: SshHost['privateKey']): string; path(p: string): string },
): SshTarget {
  const pinned = { keys: [] as string[], fingerprints: [] as string[] };
  if ('fingerprint' in host.hostKey) pinned.fingerprints.push(host.hostKey.fingerprint);
  else
    pinned.keys.push(
      ...knownHostKeys(readFileSync(resolve.path(host.hostKey.knownHostsFile), 'utf8'), host.host, host.port),
    );
  return {
    name,
    host: host.host,
    port: host.port,
    user: host.user,
    privateKey: resolve.secret(host.privateKey),
    pinned,
    commandPrefix: host.commandPrefix,
  };
}

export function createSshActivities(targets: (name: string) => SshTarget) {
  return {
    /** Run a command on an inventory host; a non-zero exit is a CommandFailed failure with its stderr. */
    async runRemoteCommand({
      host,
      command,
      allowFailure = false,
    }: {
      host: string;
      command: string;
      allowFailure?: boolean;
    }): Promise<CommandResult> {
      const result = await runOverSsh(targets(host), command);
      if (result.exitCode !== 0 && !allowFailure) {
        throw failure(
          ErrorType.CommandFailed,
          `${host}: "${command}" exited ${result.exitCode}: ${result.stderr.trim()}`,
          {
            host,
            exitCode: result.exitCode,
          },
        );
      }
      return result;
    },

    /** Whether `address` (CIDR form) is configured on `device` of `host`. */
    async hasVip({ host, address, device }: VipOnHost): Promise<boolean> {
      return vipPresent(targets(host), address, device);
    },

    /** Take the VIP off a host (fencing). Already absent is a success; the result says which. */
    async removeVip({ host, address, device }: VipOnHost): Promise<{ host: string; removed: boolean }> {
      const target = targets(host);
      return whileHeartbeating(
        { removingVipFrom: host },
        (async () => {
          if (!(await vipPresent(target, address, device))) return { host, removed: false };
          await mustSucceed(target, `ip addr del ${address} dev ${device}`);
          return { host, removed: true };
        })(),
      );
    },

    /**
     * Put the VIP on a host. Already present is a success. (On a real L2 network follow with a
     * gratuitous ARP, e.g. `arping -U -c 3 -I <device> <ip>`, via the host's commandPrefix.)
     */
    async addVip({ host, address, device }: VipOnHost): Promise<{ host: string; added: boolean }> {
      const target = targets(host);
      return whileHeartbeating(
        { addingVipTo: host },
        (async () => {
          if (await vipPresent(target, address, device)) return { host, added: false };
          await mustSucceed(target, `ip addr add ${address} dev ${device}`);
          return { host, added: true };
        })(),
      );
    },
  };
}

interface VipOnHost {
  host: string;
  address: string;
  device: string;
}

const SAFE_ARG = /^[A-Za-z0-9_.:/@-]+$/;

async function vipPresent(target: SshTarget, address: string, device: string): Promise<boolean> {
  for (const arg of [address, device]) {
    if (!SAFE_ARG.test(arg)) throw failure(ErrorType.InvalidInput, `refusing to pass "${arg}" to a remote shell`);
  }
  const r = await mustSucceed(target, `ip -o addr show dev ${device}`);
  return r.stdout.split('\n').some((line) => line.split(/\s+/).includes(address));
}

async function mustSucceed(target: SshTarget, command: string): Promise<CommandResult> {
  const r = await runOverSsh(target, command);
  if (r.exitCode !== 0) {
    throw failure(ErrorType.CommandFailed, `${target.name}: "${command}" exited ${r.exitCode}: ${r.stderr.trim()}`, {
      host: target.name,
    });
  }
  return r;
}

export type SshActivities = ReturnType<typeof createSshActivities>;
