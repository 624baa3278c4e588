/**
 * The benchmarks' inventories: the stack's own, with secret references made absolute, plus generated
 * services, written to a file and loaded the way a worker loads one.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { Inventory } from '../../contract';
import { loadInventory, type LoadedInventory } from '../../config/load';

/** Secret references made absolute, so a generated inventory can live in any directory. */
export function absoluteSecrets(loaded: LoadedInventory): Inventory {
  const inv = structuredClone(loaded.inventory);
  const abs = (ref: { file: string } | { env: string }) => {
    if ('file' in ref) ref.file = path.resolve(loaded.baseDir, ref.file);
  };
  for (const s of Object.values(inv.mysqlServers)) abs(s.password);
  for (const h of Object.values(inv.sshHosts)) {
    abs(h.privateKey);
    if ('knownHostsFile' in h.hostKey)
      h.hostKey.knownHostsFile = path.resolve(loaded.baseDir, h.hostKey.knownHostsFile);
  }
  if (inv.aws.accessKeyId) abs(inv.aws.accessKeyId);
  if (inv.aws.secretAccessKey) abs(inv.aws.secretAccessKey);
  for (const svc of inv.services) {
    if (svc.database?.replication) abs(svc.database.replication.password);
    const local = svc.backup?.destinations.local;
    if (local) local.path = path.resolve(loaded.baseDir, local.path);
  }
  return inv;
}

/** A benchmark service: one database on the stack's primary, a local directory and the primary-region bucket. */
export function benchService(
  base: Inventory,
  name: string,
  database: string,
  localDir: string,
  prefix: string,
): Inventory['services'][number] {
  const shop = base.services.find((s) => s.backup?.destinations.primary)!;
  const primary = shop.database!.primary;
  return {
    name,
    tier: 'normal',
    strategy: 'cold',
    health: { ...shop.health, elbTargetGroup: undefined, httpUrl: undefined, mysqlPing: false },
    database: {
      engine: 'mariadb',
      primary,
      // Cold needs a drServer; the primary itself (not the writable scratch server: two writers would be a split).
      drServer: primary,
      heartbeatTable: 'drbook.heartbeat',
      heartbeatEvent: 'drbook.heartbeat_tick',
    },
    autoFailover: false,
    backup: {
      databases: [database],
      paths: [],
      files: { full: 'weekly', between: 'differential', stateDir: '/var/lib/drbook' },
      physical: false,
      binlogArchive: false,
      source: 'writable',
      destinations: {
        local: { path: localDir },
        primary: { ...shop.backup!.destinations.primary!, prefix },
        offsite: { ...shop.backup!.destinations.offsite!, prefix },
      },
      archive: shop.backup!.archive,
      retention: { daily: 7, weekly: 4, monthly: 12 },
    },
  };
}

/** Write an inventory to a file and load it the way a worker does (config/load.ts). */
export function writeInventory(inv: Inventory, file: string): LoadedInventory {
  writeFileSync(file, YAML.stringify(inv, { aliasDuplicateObjects: false }), { mode: 0o600 });
  return loadInventory(file);
}
