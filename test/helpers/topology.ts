/**
 * Put the sandbox back in its normal topology, whatever an earlier test left: no runbook holding a service's
 * id; shop's db-primary writable, db-replica read-only and replicating from it, the VIP on the primary host
 * only, the DR fleet stopped, the RDS DR instance a read replica of the primary; every service's DNS record
 * at its primary value. Every chaos file calls it before it starts (and network-db-failover after it ends),
 * so one failed file cannot make the next ones fail. Each part reads first and changes only what is not as
 * it should be; it returns what it changed. It works through adapters of its own, never a test's proxies.
 */
import type { LoadedInventory } from '../../config/load';
import type { Adapters } from '../../activities';
import { workflowIdFor } from '../../contract';
import { approvedFailback } from './drive';
import { readEstate } from './estate';
import { buildAdapters, sandbox, type TemporalHarness } from './stack';

/** `t` runs the failback when one is needed (its own task queue; workers with direct adapters). */
export async function restoreSandboxTopology(t: TemporalHarness, loaded = sandbox()): Promise<string[]> {
  const adapters = buildAdapters(loaded);
  try {
    return await restore(loaded, adapters, t);
  } finally {
    await adapters.close();
  }
}

async function restore(loaded: LoadedInventory, adapters: Adapters, t: TemporalHarness): Promise<string[]> {
  const a = adapters.activities;
  const services = loaded.inventory.services;
  const shop = services.find((s) => s.name === 'shop')!;
  const db = shop.database!;
  const changed: string[] = [];
  await t.terminate(services.flatMap((s) => ['failover', 'failback', 'drill'].map((r) => workflowIdFor(r, s.name))));

  // First: readEstate needs the DR instance, which a failed failback may have left deleted.
  const rds = shop.rds!;
  const replica = await a.recreateRdsReplica({
    region: rds.drReplica!.region,
    instance: rds.drReplica!.instance,
    source: { region: rds.region, instance: rds.instance },
  });
  if (replica.recreated) changed.push(`RDS ${replica.instance} re-created as a read replica`);
  const e = await readEstate(loaded, adapters);
  if (!e.primary.readOnly && !e.replica.readOnly) {
    throw new Error(`both ${db.primary} and ${db.replica} are writable (split): not guessing which one to keep`);
  }
  if (!e.replica.readOnly) {
    // Failed over (or half-way back): the failback runbook is how the sandbox's data goes home.
    const report = await t.withWorkers(a, () => approvedFailback(t, 'shop'));
    changed.push(`failed back (${report.outcome})`);
  } else {
    if (e.primary.readOnly) {
      await a.unfencePrimary({ server: db.primary, heartbeatEvent: db.heartbeatEvent });
      changed.push(`${db.primary} unfenced`);
    }
    if (!e.replica.replicating) {
      await a.rebuildAsReplica({
        service: shop.name,
        server: db.replica!,
        source: db.primary,
        heartbeatEvent: db.heartbeatEvent,
      });
      changed.push(`${db.replica} replicating from ${db.primary}`);
    }
  }
  const vip = shop.vip!;
  if ((await a.removeVip({ host: vip.drHost, address: vip.address, device: vip.device })).removed)
    changed.push(`VIP removed from ${vip.drHost}`);
  if ((await a.addVip({ host: vip.primaryHost, address: vip.address, device: vip.device })).added)
    changed.push(`VIP added to ${vip.primaryHost}`);
  for (const { dns } of services) {
    if (!dns) continue;
    const record = await a.switchDnsRecord({
      zone: dns.hostedZone,
      name: dns.record,
      type: dns.type,
      ttl: dns.ttl,
      value: dns.primaryValue,
    });
    if (record.changed) changed.push(`${dns.record} → ${dns.primaryValue}`);
  }
  const compute = shop.drCompute!;
  const stopped = await a.stopDrInstances({ region: compute.region, tags: compute.tags });
  if (stopped.stopped.length) changed.push(`DR instances stopped: ${stopped.stopped.join(', ')}`);
  if (changed.length) console.warn(`sandbox topology restored before this file: ${changed.join('; ')}`);
  return changed;
}
