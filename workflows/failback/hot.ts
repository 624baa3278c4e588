/** Hot: both sides serve; failing back is pointing DNS at the primary side again, with the same gate. */
import { ApplicationFailure } from '@temporalio/workflow';
import { ErrorType } from '../../contract';
import { dnsSwitch } from '../dns';
import { round1 } from '../steps';
import type { FailbackReport } from '../../contract';
import { finish, type Failback } from './context';
import { approveSwitchBack, verifyHealth } from './warm';

export async function failBackHot(fb: Failback): Promise<FailbackReport> {
  const { run, svc, acts } = fb;
  const dns = svc.dns;
  if (!dns) {
    throw ApplicationFailure.create({
      type: ErrorType.NotConfigured,
      message: `${svc.name} is hot but has no DNS record to switch back`,
      nonRetryable: true,
    });
  }
  const startedAt = await approveSwitchBack(fb, `point ${dns.record} back at ${dns.primaryValue}`);
  await run.step(
    'switch-dns-back',
    () => acts.longWaits.switchDnsRecord(dnsSwitch(dns, 'primary')),
    (r) => `${r.name} → ${r.value}`,
  );
  const recoveredAt = (await verifyHealth(fb)) ?? Date.now();
  run.measured.rtoSeconds = round1((recoveredAt - startedAt) / 1000);
  run.measured.rpoSeconds = 0;
  return finish(fb, 'completed');
}
