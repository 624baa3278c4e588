/** Before the gate: the live roles, then what a failover would lose (the expected RPO) and whether it can run. */
import { ApplicationFailure, patched, workflowInfo } from '@temporalio/workflow';
import type { RunbookActivities } from '../activity-options';
import { ErrorType } from '../../contract';
import { readLiveTopology } from '../topology';
import type { Failover } from './context';

type Picked = Awaited<ReturnType<RunbookActivities['reads']['pickNewestVerifiedBackup']>>;

export interface Assessment {
  primaryReachable: boolean;
  expectedRpoSeconds: number;
  detail: string;
  /** Cold: the backup the DR server is restored from. */
  backup?: { backupId: string; destination: Picked['destination']; sha256: string };
}

/** A service already on its DR side fails back; it does not fail over again. */
export async function refuseIfFailedOver(f: Failover): Promise<void> {
  const { run, plan, svc, acts } = f;
  if (!svc.database || !patched('failover-live-topology')) return;
  const live = await readLiveTopology(run, plan, acts);
  if (live.state === 'failed-over') {
    throw ApplicationFailure.create({
      type: ErrorType.AlreadyFailedOver,
      message:
        `${svc.name} is already failed over (${live.detail}): ` +
        `run failback (drctl failback ${svc.name}), not another failover`,
      nonRetryable: true,
    });
  }
}

export async function assess(f: Failover): Promise<Assessment> {
  const db = f.svc.database;
  return f.run.step(
    'assess',
    async (): Promise<Assessment> => {
      if (f.svc.strategy === 'cold' && db?.drServer) return assessCold(f, db.primary, db.drServer);
      if (!db?.replica)
        return { primaryReachable: false, expectedRpoSeconds: 0, detail: 'no database replica: DNS-only failover' };
      return assessReplica(f, db.primary, db.replica, db.heartbeatTable);
    },
    (a) => a.detail,
  );
}

/** Cold: no standby. The data loss is everything since the newest verified backup's snapshot. */
async function assessCold(f: Failover, primary: string, drServer: string): Promise<Assessment> {
  const { acts, svc } = f;
  const picked = await acts.reads.pickNewestVerifiedBackup({ service: svc.name });
  const manifest = await acts.reads.fetchManifest({
    service: svc.name,
    backupId: picked.backupId,
    destination: picked.destination,
  });
  const primaryReachable = await acts.reads.pingDatabase({ server: primary }).then(
    () => true,
    () => false,
  );
  const expectedRpoSeconds = Math.max(0, (f.incidentStartedAt - Date.parse(manifest.startedAt)) / 1000);
  return {
    primaryReachable,
    expectedRpoSeconds,
    backup: { backupId: picked.backupId, destination: picked.destination, sha256: manifest.object.sha256 },
    detail:
      `cold: restore backup ${picked.backupId} (taken ${manifest.startedAt}, ` +
      `${expectedRpoSeconds.toFixed(0)} s before the incident) into ${drServer}; ` +
      `primary ${primaryReachable ? 'reachable' : 'UNREACHABLE'}`,
  };
}

/** Warm: the replica's lag, measured by the heartbeat it holds; a replica that cannot apply is refused here. */
async function assessReplica(f: Failover, primary: string, replica: string, heartbeatTable: string) {
  const { acts, svc, input, run } = f;
  const measure = () => acts.reads.measureReplicaLag({ primary, replica, heartbeatTable });
  let lag = await measure();
  // A real failover takes precedence over an isolated drill, whose DR copy pauses the replica's SQL
  // thread: the drill is cancelled and the thread resumed, then the replica is measured again.
  if (!lag.sqlRunning && input.mode === 'real' && patched('failover-over-isolated-drill')) {
    const reason = `real failover ${workflowInfo().workflowId} takes precedence: ${input.reason}`;
    const drill = await acts.reads.cancelIsolatedDrill({ service: svc.name, reason });
    if (drill) {
      await acts.reads.resumeReplicaSqlThread({ replica });
      run.notes.push(
        `isolated drill ${drill} cancelled and ${replica}'s SQL thread resumed: a real failover comes first`,
      );
      lag = await measure();
    }
  }
  // A replica that cannot apply (SQL thread stopped), or cannot receive while the primary is up,
  // is never promoted: refuse here, before anything has changed.
  if (!lag.sqlRunning || (lag.primaryReachable && !lag.ioRunning)) {
    throw ApplicationFailure.create({
      type: ErrorType.ReplicationBroken,
      message:
        `${replica} is not replicating (IO thread ${lag.ioRunning ? 'running' : 'stopped'}, ` +
        `SQL thread ${lag.sqlRunning ? 'running' : 'stopped'}): not a promotion candidate`,
      nonRetryable: true,
    });
  }
  // With the primary gone, everything after the replica's newest heartbeat up to the incident is at risk.
  const expectedRpoSeconds = lag.primaryReachable
    ? (lag.heartbeatLagSeconds ?? Number.POSITIVE_INFINITY)
    : lag.replicaHeartbeatAt === null
      ? Number.POSITIVE_INFINITY
      : Math.max(0, (f.incidentStartedAt - lag.replicaHeartbeatAt) / 1000);
  return {
    primaryReachable: lag.primaryReachable,
    expectedRpoSeconds,
    detail:
      `primary ${lag.primaryReachable ? 'reachable' : 'UNREACHABLE'}; ` +
      `replica ${lag.transactionsBehind ?? '?'} transactions / ${expectedRpoSeconds.toFixed(1)} s behind; ` +
      `IO ${lag.ioRunning ? 'on' : 'off'}, SQL ${lag.sqlRunning ? 'on' : 'off'}`,
  };
}
