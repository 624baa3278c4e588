/**
 * Checks added after the first histories were recorded (behind 'readiness-drift-checks'): what drifts while nobody
 * fails over: a critical service's Multi-AZ, the SSH hosts' pinned keys, the newest verified backup's age.
 */
import { backupTime } from '../../contract';
import { reasonOf } from '../plan';
import { check, CheckFailed, hours, type Readiness } from './checks';

/**
 * A service whose RPO its replica covers still needs last night's backup: the nightly interval plus its catch-up
 * window.
 */
const NIGHTLY_BACKUP_LIMIT_SECONDS = 30 * 3600;

export async function checkForDrift(r: Readiness): Promise<void> {
  await checkRdsMultiAz(r);
  await checkSshHostKeys(r);
  await checkBackupRecent(r);
}

async function checkRdsMultiAz(r: Readiness): Promise<void> {
  const rds = r.svc.rds;
  if (!rds || r.svc.tier !== 'critical') return;
  await check(r, 'rds-multi-az', async () => {
    const d = await r.primarySide.describeRdsInstance({ region: rds.region, instance: rds.instance });
    if (!d.multiAz)
      throw new CheckFailed(`${rds.instance} (${rds.region}) is not Multi-AZ: a critical service's must be`);
    return `${rds.instance} (${rds.region}) Multi-AZ`;
  });
}

async function checkSshHostKeys(r: Readiness): Promise<void> {
  const { vip, backup } = r.svc;
  const sshHosts = [...new Set([vip?.primaryHost, vip?.drHost, ...(backup?.paths ?? []).map((p) => p.host)])].filter(
    (h): h is string => Boolean(h),
  );
  if (!sshHosts.length) return;
  await check(r, 'ssh-host-keys-match', async () => {
    const problems: string[] = [];
    for (const host of sshHosts.sort()) {
      await r.drSide.runRemoteCommand({ host, command: 'true' }).catch((err: unknown) => {
        problems.push(reasonOf(err));
      });
    }
    if (problems.length) throw new CheckFailed(problems.join('; '));
    return `${sshHosts.join(', ')}: pinned host key presented`;
  });
}

async function checkBackupRecent(r: Readiness): Promise<void> {
  const { plan, svc } = r;
  if (!svc.backup) return;
  const replicated = Boolean(svc.database?.replica || svc.rds?.drReplica);
  const limit = replicated ? NIGHTLY_BACKUP_LIMIT_SECONDS : plan.targets.rpoSeconds;
  const why = replicated ? 'the nightly backup plus its catch-up window; the replica covers the RPO' : 'the RPO';
  await check(r, 'verified-backup-recent', async () => {
    const newest = await r.drSide.pickNewestVerifiedBackup({ service: svc.name });
    const age = Math.max(0, Math.round((Date.now() - backupTime(newest.backupId)) / 1000));
    r.backupAgeSeconds = age;
    const text = `newest verified backup ${newest.backupId} (${newest.destination}) is ${hours(age)} old`;
    if (age > limit) throw new CheckFailed(`${text}: over ${hours(limit)} (${why})`);
    return `${text}; limit ${hours(limit)} (${why})`;
  });
}
