/** The estate around the database: the primary's load balancer targets, the RDS replica, DR compute, DNS, the VIP. */
import { NETWORK_DEVICE } from '../../contract';
import { dnsRecord } from '../dns';
import { check, CheckFailed, type Readiness } from './checks';

export async function checkPrimaryTargets(r: Readiness): Promise<void> {
  const tg = r.svc.health.elbTargetGroup;
  if (!tg) return;
  await check(r, 'primary-targets-healthy', async () => {
    const h = await r.primarySide.readTargetHealth({ region: tg.region, targetGroup: tg.name });
    if (h.healthy === 0) throw new CheckFailed(`no healthy target in ${tg.name} (${h.total} registered)`);
    return `${h.healthy}/${h.total} targets healthy in ${tg.name}`;
  });
}

export async function checkRdsReplica(r: Readiness): Promise<void> {
  const replica = r.svc.rds?.drReplica;
  if (!replica) return;
  const { region, instance } = replica;
  await check(r, 'rds-dr-replica-available', async () => {
    const d = await r.drSide.describeRdsInstance({ region, instance });
    if (d.status !== 'available') throw new CheckFailed(`${instance} is ${d.status}`);
    return `${instance} (${region}) available, replica of ${d.replicaOf ?? 'nothing'}`;
  });
}

export async function checkDrCompute(r: Readiness): Promise<void> {
  const compute = r.svc.drCompute;
  if (!compute) return;
  await check(r, 'dr-instances-present', async () => {
    const found = await r.drSide.findInstancesByTags({ region: compute.region, tags: compute.tags });
    if (found.length === 0)
      throw new CheckFailed(`no instance tagged ${JSON.stringify(compute.tags)} in ${compute.region}`);
    return found.map((i) => `${i.id} ${i.state}`).join(', ');
  });
}

export async function checkDns(r: Readiness): Promise<void> {
  const dns = r.svc.dns;
  if (!dns) return;
  await check(r, 'dns-record-present', async () => {
    const rec = await r.drSide.readDnsRecord(dnsRecord(dns));
    if (!rec) throw new CheckFailed(`${dns.record} ${dns.type} is missing from ${dns.hostedZone}`);
    return `${rec.name} ${rec.type} ${rec.values.join(',')} ttl ${rec.ttl}`;
  });
}

/** The VIP on the primary's host, and the DR host reachable with its device present. */
export async function checkVip(r: Readiness): Promise<void> {
  const vip = r.svc.vip;
  if (!vip) return;
  // The device goes into a remote shell command: refuse anything but a device name (the inventory refuses it too;
  // this holds whatever produced the plan).
  const safeDevice = () => {
    if (!NETWORK_DEVICE.test(vip.device))
      throw new CheckFailed(
        `vip.device ${JSON.stringify(vip.device)} is not a network device name: ` +
          'refusing to pass it to a remote shell',
      );
  };
  await check(r, 'vip-on-primary-host', async () => {
    safeDevice();
    const out = await r.primarySide.runRemoteCommand({
      host: vip.primaryHost,
      command: `ip -o addr show dev ${vip.device}`,
    });
    if (!out.stdout.includes(` ${vip.address} `) && !out.stdout.includes(` ${vip.address}\n`)) {
      throw new CheckFailed(`${vip.address} is not on ${vip.primaryHost} ${vip.device}`);
    }
    return `${vip.address} on ${vip.primaryHost} ${vip.device}`;
  });
  await check(r, 'dr-host-reachable', async () => {
    safeDevice();
    await r.drSide.runRemoteCommand({ host: vip.drHost, command: `ip -o link show dev ${vip.device}` });
    return `${vip.drHost} reachable with its pinned host key; ${vip.device} present`;
  });
}
