/** Traffic to the DR side: RDS, DR compute, VIP and DNS together; then exactly one writer, read again. */
import { ApplicationFailure, patched } from '@temporalio/workflow';
import { ErrorType } from '../../contract';
import { dnsSwitch } from '../dns';
import { allSteps, notifyPeople } from '../steps';
import type { Failover } from './context';

/**
 * Independent of one another once the new primary is writable: they run together, each its own step, and all of
 * them finish (or fail) before the run goes on or reports.
 */
export async function cutOver(f: Failover, newPrimary: string | null): Promise<void> {
  const { run, svc, acts } = f;
  const rdsReplica = svc.rds?.drReplica;
  const compute = svc.drCompute;
  const vip = svc.vip;
  const dns = svc.dns;
  await allSteps([
    rdsReplica && svc.strategy === 'warm'
      ? run.step(
          'promote-rds',
          () => acts.longWaits.promoteRdsReplica({ region: rdsReplica.region, instance: rdsReplica.instance }),
          (r) => (r.alreadyPromoted ? `${r.instance} was already standalone` : `${r.instance} promoted and available`),
        )
      : null,
    compute
      ? run.step(
          'start-dr-compute',
          () => acts.longWaits.startDrInstances({ region: compute.region, tags: compute.tags }),
          (r) => `${r.running.length} running (${r.started.length} started)`,
        )
      : run.skip('start-dr-compute', 'no DR compute in the inventory'),
    vip && newPrimary
      ? run.step(
          'move-vip',
          () => acts.topologyChanges.addVip({ host: vip.drHost, address: vip.address, device: vip.device }),
          (r) => `${vip.address} ${r.added ? 'added to' : 'already on'} ${vip.drHost} ${vip.device}`,
        )
      : run.skip('move-vip', vip ? 'no promotion' : 'no VIP in the inventory'),
    dns
      ? run.step(
          'switch-dns',
          () => acts.longWaits.switchDnsRecord(dnsSwitch(dns, 'dr')),
          (r) => `${r.name} → ${r.value} (${r.changed ? `was ${r.previous.join(',')}` : 'already set'}), INSYNC`,
        )
      : run.skip('switch-dns', 'no DNS record in the inventory'),
  ]);
}

/** Exactly one writer after cut-over: any other writable member is a split, alerted at once. */
export async function verifySingleWriter(f: Failover, newPrimary: string | null): Promise<void> {
  const { run, plan, svc, acts } = f;
  const db = svc.database;
  if (!newPrimary || !db || !patched('single-writer-verified')) return;
  const members = [...new Set([db.primary, db.replica, db.drServer, newPrimary])].filter(
    (m): m is string => typeof m === 'string',
  );
  await run.step(
    'verify-single-writer',
    async () => {
      const w = await acts.reads.readWritableMembers({ servers: members });
      const others = w.writable.filter((m) => m !== newPrimary);
      if (others.length > 0) {
        const detail =
          `${svc.name} is SPLIT after cut-over: ${w.writable.join(' and ')} all take writes (${w.detail}); ` +
          `fence ${others.join(', ')} and reconcile before anything else runs`;
        run.notes.push(detail);
        await notifyPeople(plan, acts, `SPLIT BRAIN: ${svc.name}`, detail, 'split').catch(() =>
          run.notes.push('the split-brain alert could not be sent'),
        );
        throw ApplicationFailure.create({ type: ErrorType.SplitBrain, message: detail, nonRetryable: true });
      }
      return w;
    },
    (w) => `one writer: ${newPrimary} (${w.detail})`,
  );
}
