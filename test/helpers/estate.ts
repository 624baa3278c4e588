/**
 * Read the sandbox estate as it really is (databases, VIP namespaces, DNS, EC2), to check
 * what a runbook changed, and a write load that records every row it had acknowledged.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import mysql from 'mysql2/promise';
import type { LoadedInventory } from '../../config/load';
import type { Adapters } from '../../activities';
import { sql } from './stack';

export async function readEstate(loaded: LoadedInventory, adapters: Adapters) {
  const a = adapters.activities;
  const shop = loaded.inventory.services.find((s) => s.name === 'shop')!;
  const db = shop.database!;
  const server = async (name: string) => {
    const info = await a.pingDatabase({ server: name });
    const repl = await a.readReplicationStatus({ server: name });
    const c = await sql(loaded, name);
    try {
      const [rows] = await c.query<import('mysql2').RowDataPacket[]>('CHECKSUM TABLE shop.orders');
      return {
        readOnly: info.readOnly,
        replicating: repl.configured && repl.ioRunning && repl.sqlRunning,
        sourcePort: repl.sourcePort,
        ordersChecksum: String(rows[0].Checksum),
      };
    } finally {
      await c.end();
    }
  };
  const vipOn = (ns: string) =>
    execFileSync('ip', ['-n', ns, '-o', 'addr', 'show', 'dev', shop.vip!.device], { encoding: 'utf8' }).includes(
      ` ${shop.vip!.address} `,
    );
  const dns = await a.readDnsRecord({ zone: shop.dns!.hostedZone, name: shop.dns!.record, type: shop.dns!.type });
  const instances = await a.findInstancesByTags({ region: shop.drCompute!.region, tags: shop.drCompute!.tags });
  const rds = await a.describeRdsInstance({
    region: shop.rds!.drReplica!.region,
    instance: shop.rds!.drReplica!.instance,
  });
  return {
    primary: await server(db.primary),
    replica: await server(db.replica!),
    vip: { primary: vipOn(netns.primary), dr: vipOn(netns.dr) },
    dns: dns?.values,
    drInstances: instances.map((i) => i.state),
    rdsReplicaOf: rds.replicaOf,
  };
}

/** The stack's two VIP namespaces (scripts/stack.sh gives a stack with a port offset its own pair). */
export const netns = {
  primary: process.env.DRBOOK_NETNS_PRIMARY ?? 'drbook-primary',
  dr: process.env.DRBOOK_NETNS_DR ?? 'drbook-dr',
};

/** Inserts rows into shop.orders on one server as fast as it acknowledges them, until stopped. */
/** Connect as the sandbox application's user (no SUPER: read_only stops it, as it stops a real app). */
async function appConnection(loaded: LoadedInventory, server: string) {
  const s = loaded.inventory.mysqlServers[server];
  const dataDir = process.env.DRBOOK_DATA ?? path.join(loaded.baseDir, '..', '.data');
  const password = readFileSync(path.join(dataDir, 'secrets', 'app-password'), 'utf8').trim();
  return mysql.createConnection({ host: s.host, port: s.port, user: 'shop_app', password });
}

export function writeLoad(loaded: LoadedInventory, server: string, tag: string) {
  const acked: number[] = [];
  const failures: string[] = [];
  let lastAckAt = 0;
  let running = true;
  const done = (async () => {
    const c = await appConnection(loaded, server);
    try {
      while (running) {
        try {
          const [r] = await c.query<import('mysql2').ResultSetHeader>(
            "INSERT INTO shop.orders (customer, amount_cents, source) VALUES ('load', 1, ?)",
            [tag],
          );
          acked.push(r.insertId);
          lastAckAt = Date.now();
        } catch (err) {
          failures.push((err as Error).message);
          if (!running || failures.length > 1000) break;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    } finally {
      await c.end().catch(() => undefined);
    }
  })();
  return {
    acked,
    failures,
    get lastAckAt() {
      return lastAckAt;
    },
    async stop() {
      running = false;
      await done;
    },
  };
}
