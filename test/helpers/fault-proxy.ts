/**
 * A fault-injecting TCP proxy for the chaos tests: the worker connects to it instead of a
 * server (MariaDB, sshd, the AWS emulator, the S3 store), and the test switches what the
 * network does at any moment:
 *
 *   pass        forward both ways (with backpressure)
 *   delay(ms)   forward both ways, every chunk held back `ms`
 *   reset       RST every open connection; new ones are accepted and RST at once (ECONNRESET)
 *   reset(n)    the same, for the next n new connections only; then pass, or the mode given (a transient fault)
 *   blackhole   accept, never forward, never answer: bytes vanish both ways (a silent partition);
 *               connections caught in it are RST when the mode changes (their streams lost bytes)
 *   cut(n)      forward n more bytes client→server, then behave as `reset` (a link dying mid-upload)
 *
 * Bound to 127.0.0.1 port 0 (the OS picks a free port); `close()` destroys every socket.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { replicationAddress, type Inventory } from '../../contract';
import { resolvePath, type LoadedInventory } from '../../config/load';
import { fingerprintOf, knownHostKeys } from '../../activities/ssh';

export type FaultMode =
  | { kind: 'pass' }
  | { kind: 'delay'; ms: number }
  | { kind: 'reset'; connections?: number; then?: FaultMode }
  | { kind: 'blackhole' }
  | { kind: 'cut'; afterBytes: number };

export const pass: FaultMode = { kind: 'pass' };
export const reset: FaultMode = { kind: 'reset' };
/** Reset the open connections and the next `connections` new ones, then pass (or go on as `then`, e.g. a delay). */
export const resetNext = (connections: number, then: FaultMode = pass): FaultMode => ({
  kind: 'reset',
  connections,
  then,
});
export const blackhole: FaultMode = { kind: 'blackhole' };
export const delay = (ms: number): FaultMode => ({ kind: 'delay', ms });
export const cut = (afterBytes: number): FaultMode => ({ kind: 'cut', afterBytes });

export interface ProxyStats {
  /** Connections accepted, in any mode. */
  accepted: number;
  /** Connections the proxy reset (open ones when `reset` began, and new ones refused in it). */
  resets: number;
  /** Bytes forwarded client→server and server→client. */
  bytesUp: number;
  bytesDown: number;
}

interface Link {
  client: net.Socket;
  server: net.Socket | null;
  /** Caught by a blackhole: never forwards again. */
  silent: boolean;
  /** Bytes `delay` still holds, per direction: a closing side waits for them to be delivered. */
  held: { up: number; down: number };
  /** Cut by `cut(n)`: the client was reset; the server gets its last bytes and a FIN, and closes in its time. */
  cut?: boolean;
}

export class FaultProxy {
  readonly host = '127.0.0.1';
  readonly stats: ProxyStats = { accepted: 0, resets: 0, bytesUp: 0, bytesDown: 0 };
  private current: FaultMode = pass;
  /** Bytes still allowed client→server in `cut` mode. */
  private cutBudget = 0;
  /** New connections `reset(n)` still has to refuse. */
  private refuseBudget = 0;
  private readonly links = new Set<Link>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly server: net.Server;

  private constructor(
    readonly target: { host: string; port: number },
    readonly name: string,
  ) {
    this.server = net.createServer((client) => this.accept(client));
  }

  /** A proxy in `pass` mode in front of `target`, listening on 127.0.0.1 at a free port. */
  static async start(target: { host: string; port: number }, name = `${target.host}:${target.port}`) {
    const proxy = new FaultProxy(target, name);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, proxy.host, () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get mode(): FaultMode {
    return this.current;
  }

  /** Switch what the network does, for open connections and new ones alike. */
  set(mode: FaultMode): void {
    const leavingBlackhole = this.current.kind === 'blackhole' && mode.kind !== 'blackhole';
    this.current = mode;
    if (mode.kind === 'cut') this.cutBudget = mode.afterBytes;
    if (mode.kind === 'reset') this.refuseBudget = mode.connections ?? Number.POSITIVE_INFINITY;
    for (const link of [...this.links]) {
      if (link.cut) continue;
      if (mode.kind === 'reset' || (leavingBlackhole && link.silent)) this.resetLink(link);
      else if (mode.kind === 'blackhole') link.silent = true;
    }
    if (mode.kind === 'reset' && this.refuseBudget <= 0) this.current = mode.then ?? pass;
  }

  /** Stop listening and destroy every connection (no handle is left open). */
  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const link of this.links) {
      link.client.destroy();
      link.server?.destroy();
    }
    this.links.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    this.stats.accepted++;
    const link: Link = { client, server: null, silent: false, held: { up: 0, down: 0 } };
    this.links.add(link);
    client.on('error', () => undefined);
    client.on('close', () => {
      if (link.held.up === 0 && !link.cut) this.drop(link); // else the held bytes go first, then the end
    });
    if (this.current.kind === 'reset') {
      if (--this.refuseBudget <= 0) this.current = this.current.then ?? pass;
      return this.resetLink(link);
    }
    if (this.current.kind === 'blackhole') {
      link.silent = true;
      client.resume(); // read and drop, so the client's writes never block: the other side just never answers
      return;
    }
    const server = net.connect(this.target.port, this.target.host);
    link.server = server;
    server.on('error', () => this.resetLink(link));
    server.on('close', () => {
      // A partition hides the server's close too; held bytes still reach the client before its end.
      if (!link.silent && link.held.down === 0) this.drop(link);
    });
    this.pipe(link, client, server, 'up');
    this.pipe(link, server, client, 'down');
  }

  private pipe(link: Link, from: net.Socket, to: net.Socket, direction: 'up' | 'down'): void {
    // Chunks held by `delay` leave in arrival order, also after the mode changes; the end follows the last.
    const held: { due: number; chunk: Buffer }[] = [];
    let timer: NodeJS.Timeout | null = null;
    let ended = false;
    const write = (chunk: Buffer) => {
      if (to.destroyed || link.silent) return;
      if (direction === 'up') this.stats.bytesUp += chunk.length;
      else this.stats.bytesDown += chunk.length;
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    };
    const release = () => {
      timer = null;
      while (held.length && held[0].due <= Date.now()) write(held.shift()!.chunk);
      link.held[direction] = held.length;
      if (held.length) timer = this.later(held[0].due - Date.now(), release);
      else if (ended && !link.silent) to.end();
      if (held.length === 0 && from.destroyed && !link.silent) to.end();
    };
    from.on('data', (chunk: Buffer) => {
      if (link.silent) return;
      const mode = this.current;
      if (mode.kind === 'cut' && direction === 'up') {
        if (chunk.length >= this.cutBudget) {
          write(chunk.subarray(0, this.cutBudget));
          this.cutOff(link);
          this.set(reset);
          return;
        }
        this.cutBudget -= chunk.length;
      }
      if (mode.kind !== 'delay' && held.length === 0) return write(chunk);
      held.push({ due: Date.now() + (mode.kind === 'delay' ? mode.ms : 0), chunk });
      link.held[direction] = held.length;
      timer ??= this.later(held[0].due - Date.now(), release);
    });
    from.on('end', () => {
      ended = true;
      if (held.length === 0 && !link.silent) to.end();
    });
  }

  private later(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(
      () => {
        this.timers.delete(t);
        fn();
      },
      Math.max(0, ms),
    );
    this.timers.add(t);
    return t;
  }

  /**
   * The client is reset at once; the server still receives every byte written to it, then a FIN (no RST races them).
   */
  private cutOff(link: Link): void {
    link.cut = true;
    this.stats.resets++;
    link.client.resetAndDestroy();
    link.server?.end();
  }

  private resetLink(link: Link): void {
    if (!this.links.delete(link)) return;
    this.stats.resets++;
    // RST, not FIN: the client sees ECONNRESET, as when a firewall or a dying host resets the connection.
    if (!link.client.destroyed) link.client.resetAndDestroy();
    if (link.server && !link.server.destroyed) link.server.resetAndDestroy();
  }

  private drop(link: Link): void {
    if (!this.links.delete(link)) return;
    link.client.destroy();
    link.server?.destroy();
  }
}

/** What to put behind proxies: MySQL servers and SSH hosts by inventory name, the AWS API, S3 destinations. */
export interface ProxyPlan {
  mysql?: string[];
  ssh?: string[];
  /** The AWS API endpoint (moto): EC2, ELBv2, RDS, Route 53, SNS. */
  aws?: boolean;
  /** S3 backup destinations, as "<service>/<primary|offsite>". */
  s3?: string[];
  /** The AWS SDK's connect/idle timeouts for this worker (short, so a blackhole fails a step in seconds). */
  awsTimeouts?: { connectSeconds: number; idleSeconds: number };
}

export interface ProxiedEstate {
  /** The inventory a worker uses: the same estate, reached through the proxies. */
  loaded: LoadedInventory;
  /** One proxy per resource, keyed "mysql:db-replica", "ssh:dr-host", "aws", "s3:shop/primary". */
  proxies: Record<string, FaultProxy>;
  /** Set every proxy to one mode. */
  setAll(mode: FaultMode): void;
  close(): Promise<void>;
}

/**
 * The sandbox inventory with the worker's connections routed through fault proxies. Only the worker's
 * own connections move: a proxied MySQL server keeps its real address as its replication address
 * (mysqlServers.<name>.replication), so a step that re-points replication (failback, re-clone) writes
 * the real address, never the proxy's. SSH hosts are pinned by the fingerprint of their real key, so the
 * proxy changes nothing about host-key checking.
 */
export async function proxyEstate(loaded: LoadedInventory, plan: ProxyPlan): Promise<ProxiedEstate> {
  const inv: Inventory = structuredClone(loaded.inventory);
  const proxies: Record<string, FaultProxy> = {};
  const front = async (key: string, target: { host: string; port: number }) => {
    proxies[key] = await FaultProxy.start(target, key);
    return proxies[key];
  };
  for (const name of plan.mysql ?? []) {
    const server = inv.mysqlServers[name];
    const p = await front(`mysql:${name}`, server);
    inv.mysqlServers[name] = { ...server, host: p.host, port: p.port, replication: replicationAddress(server) };
  }
  for (const name of plan.ssh ?? []) {
    const host = inv.sshHosts[name];
    const p = await front(`ssh:${name}`, host);
    const hostKey =
      'fingerprint' in host.hostKey
        ? host.hostKey
        : {
            fingerprint: fingerprintOf(
              Buffer.from(
                knownHostKeys(
                  readFileSync(resolvePath(loaded.baseDir, host.hostKey.knownHostsFile), 'utf8'),
                  host.host,
                  host.port,
                )[0],
                'base64',
              ),
            ),
          };
    inv.sshHosts[name] = { ...host, host: p.host, port: p.port, hostKey };
  }
  if (plan.aws) {
    const endpoint = new URL(inv.aws.endpoint!);
    const p = await front('aws', { host: endpoint.hostname, port: Number(endpoint.port) });
    inv.aws = { ...inv.aws, endpoint: `http://${p.host}:${p.port}` };
  }
  if (plan.awsTimeouts) inv.aws = { ...inv.aws, timeouts: plan.awsTimeouts };
  for (const ref of plan.s3 ?? []) {
    const [service, which] = ref.split('/') as [string, 'primary' | 'offsite'];
    const dest = inv.services.find((s) => s.name === service)!.backup!.destinations[which]!;
    const endpoint = new URL(dest.endpoint!);
    const p = await front(`s3:${ref}`, { host: endpoint.hostname, port: Number(endpoint.port) });
    dest.endpoint = `http://${p.host}:${p.port}`;
  }
  const all = () => Object.values(proxies);
  return {
    loaded: { ...loaded, inventory: inv },
    proxies,
    setAll: (mode) => all().forEach((p) => p.set(mode)),
    close: async () => {
      await Promise.all(all().map((p) => p.close()));
    },
  };
}
