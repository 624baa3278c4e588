/**
 * nightlyBackup({ services? }): one child `serviceBackup` per service, `concurrency` at a time;
 * a failed service never stops the others, and the summary names every failure and why.
 * Every `batchSize` services the run continues as new, so no history grows with the fleet.
 *
 * serviceBackup({ service }): the runbook for one service —
 *   dump (streamed to every destination) → verify each copy → manifest (the backup now counts)
 *   → physical copy, binlog archive, RDS settings (where configured) → file trees (backup.paths: full, differential
 *   or incremental by policy) → EBS + RDS snapshots, copied to the DR region → retention (GFS) → 3-2-1 / RPO compliance.
 * Only names, keys, sizes and checksums pass through history; the data never does.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  ChildWorkflowFailure,
  continueAsNew,
  executeChild,
  metricMeter,
  patched,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import {
  type ServicePlan,
  fileTreeId,
  ErrorType,
  nightlyBackupInput,
  parseInput,
  serviceBackupInput,
  type BackupCompliance,
  type BackupCopy,
  type BackupManifest,
  type FileTreeManifest,
  type NightlyBackupSummary,
  type ServiceBackupResult,
  type StepRecord,
  type BackupStatus,
  statusQuery,
  type NightlyBackupProgress,
  type RunbookStatus,
} from '../contract';
import { assessCompliance, backupIdAt, offlineCopiesVerified, planFileTreeLevel, planRetention } from './backup-policy';
import { recordBackupAge } from './metrics';
import { planFor, reasonOf } from './plan';
import { complianceFacts, publishStatusPage } from './page';
import {
  activities,
  backupBookkeeping,
  backupStreams,
  drActivities,
  runbookActivities,
  snapshotCopies,
} from './activity-options';
import { notifyPeople } from './steps';

// Streaming steps heartbeat every few seconds; a dead worker is noticed in two minutes, not hours.
const streaming = activities(backupStreams);
const quick = activities(backupBookkeeping);

const iso = (ms: number) => new Date(ms).toISOString();

/** Failures that mean the live estate refused the source (contract/failures.ts), alerted at once. */
const REFUSED_SOURCE: string[] = [ErrorType.SourceNotWritable, ErrorType.SplitBrain, ErrorType.TopologyUnknown];

/** Named steps with timings, for `status`; a failed step records the activity's own message. */
class Steps {
  readonly list: StepRecord[] = [];
  /** Called when a step starts or ends: the run's page is rewritten then (state changes, never a timer). */
  onChange: () => void = () => undefined;
  async run<T>(name: string, fn: () => Promise<T>, detail?: (r: T) => string): Promise<T> {
    const rec: StepRecord = { name, state: 'running', startedAt: iso(Date.now()), attempts: 1 };
    this.list.push(rec);
    this.onChange();
    try {
      const r = await fn();
      rec.state = 'succeeded';
      rec.detail = detail?.(r);
      return r;
    } catch (err) {
      rec.state = 'failed';
      rec.detail = reasonOf(err);
      throw err;
    } finally {
      rec.endedAt = iso(Date.now());
      this.onChange();
    }
  }
  skip(name: string, why: string): void {
    this.list.push({ name, state: 'skipped', attempts: 0, detail: why });
    this.onChange();
  }
}

/** The RunbookStatus fields of a run without a gate or a running RTO clock (a backup), targets until it has a plan. */
export function gateless(): Omit<RunbookStatus, 'runbook' | 'service' | 'phase' | 'steps'> {
  return {
    pendingApproval: null,
    measured: { rtoSeconds: null, rpoSeconds: null },
    targets: { rtoSeconds: 0, rpoSeconds: 0 },
    rtoClock: { startedAt: '', usedSeconds: 0, leftSeconds: 0 },
    approvals: [],
    rejectedApprovals: [],
    aborted: null,
    notes: [],
  };
}

/**
 * A backup run's page in the Web UI (its current details), from its `status`: the backup id, each service's
 * copies and data-loss window once known, what failed, the steps. `outcome` is set once the run has ended.
 */
export function publishBackupPage(status: BackupStatus, outcome: string | null = null): void {
  const facts: [string, string][] = [];
  if (status.backupId) facts.push(['Backup id', status.backupId]);
  if (status.targets.rpoSeconds) facts.push(['RPO target', `${status.targets.rpoSeconds} s`]);
  publishStatusPage({
    runbook: status.runbook,
    service: status.service,
    phase: status.phase,
    outcome,
    facts: [...facts, ...status.compliance.flatMap(complianceFacts)],
    steps: status.steps,
    problems: status.failures.map((f) => `${f.service}: ${f.reason} [${f.type}]`),
    next: [
      `Step by step, as JSON: \`drctl status ${workflowInfo().workflowId}\` (or the \`status\` query)`,
      `A service's runbooks and newest verified backup: \`drctl status <service>\``,
    ],
  });
}

/** The failure type an operator reads: the activity's or child's own, not the wrapper's. */
function typeOf(err: unknown): string {
  let e = err;
  while ((e instanceof ActivityFailure || e instanceof ChildWorkflowFailure) && e.cause) e = e.cause;
  return e instanceof ApplicationFailure ? (e.type ?? 'Error') : e instanceof Error ? e.name : 'Error';
}
function messageOf(err: unknown): string {
  let e = err;
  while ((e instanceof ActivityFailure || e instanceof ChildWorkflowFailure) && e.cause) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}

/** What retention did in one destination: "deleted …; kept: locked until …" for backups under Object Lock. */
function retentionDetail(r: { deleted: string[]; locked?: { id: string; until: string }[] }): string {
  const parts = [`deleted ${r.deleted.join(', ') || 'none'}`];
  for (const l of r.locked ?? []) parts.push(`kept: locked until ${l.until} (${l.id})`);
  return parts.join('; ');
}

// ------------------------------------------------------------------ one service

export async function serviceBackup(rawInput: unknown): Promise<ServiceBackupResult> {
  const input = parseInput(serviceBackupInput, rawInput);
  const startedMs = Date.now();
  const backupId = input.backupId ?? backupIdAt(startedMs);
  const steps = new Steps();
  const status: BackupStatus = {
    runbook: 'serviceBackup',
    service: input.service,
    phase: 'planning',
    steps: steps.list,
    ...gateless(),
    backupId,
    compliance: [],
    failures: [],
  };
  setHandler(statusQuery, () => status);
  steps.onChange = () => publishBackupPage(status);
  publishBackupPage(status);

  const plan: ServicePlan = await planFor(input.service);
  status.targets = plan.targets;
  status.rtoClock.leftSeconds = plan.targets.rtoSeconds;
  const { service: svc, regions } = plan;
  const backup = svc.backup;
  if (!backup) {
    throw ApplicationFailure.create({
      type: ErrorType.NotConfigured,
      message: `service ${svc.name} has no backup section in the inventory`,
      nonRetryable: true,
    });
  }
  const service = svc.name;
  const drSide = drActivities(plan, snapshotCopies);
  const primarySide = activities(snapshotCopies);
  const fail = (step: string, err: unknown) =>
    status.failures.push({ service, type: typeOf(err), reason: `${step}: ${messageOf(err)}` });

  // 1. Logical backup: dump → verify every copy → manifest. A backup counts only once its manifest is written.
  let manifest: BackupManifest | null = null;
  try {
    status.phase = 'dumping';
    const dump = await steps.run(
      'dumpDatabase',
      () => streaming.dumpDatabase({ service, backupId, source: input.source }),
      (d) =>
        `${d.object.uncompressedSize} bytes → ${d.object.size} (zstd) to ${d.copies.length} destinations; rows ${d.rowCounts.exact ? 'exact' : 'approximate'}`,
    );
    status.phase = 'verifying';
    const verified = await Promise.all(
      dump.copies.map((c) =>
        steps.run(
          `verifyCopy ${c.destination}`,
          () =>
            streaming.verifyCopy({
              service,
              backupId,
              destination: c.destination,
              size: dump.object.size,
              sha256: dump.object.sha256,
              key: dump.object.key,
            }),
          (v) => `${v.location}: ${v.size} bytes, sha256 ${v.sha256.slice(0, 12)}…`,
        ),
      ),
    );
    const copies: BackupCopy[] = dump.copies.map((c, i) => ({ ...c, ...verified[i] }));
    manifest = {
      format: 'drbook-backup/1',
      id: backupId,
      service,
      kind: 'logical',
      startedAt: dump.startedAt,
      endedAt: dump.endedAt,
      source: { server: dump.server, engine: dump.engine, version: dump.version },
      position: dump.position,
      databases: dump.databases,
      tables: dump.tables,
      rowCounts: dump.rowCounts,
      object: dump.object,
      copies,
      tools: dump.tools,
      verified: true,
    };
    const m = manifest;
    status.phase = 'writing manifest';
    await steps.run(
      'writeManifest',
      () => quick.writeManifest({ manifest: m }),
      (r) => r.manifestKey,
    );
  } catch (err) {
    manifest = null;
    fail('logical backup', err);
  }

  // 1b. Physical backup (backup.physical): mariabackup on the database host → verify every copy → manifest.
  let physical: ServiceBackupResult['physical'] = null;
  if (backup.physical) {
    try {
      status.phase = 'physical backup';
      const p = await steps.run(
        'takePhysicalBackup',
        () => streaming.takePhysicalBackup({ service, backupId, source: input.source }),
        (d) =>
          `${d.object.uncompressedSize} bytes → ${d.object.size} (zstd) on ${d.ranOn}, to ${d.copies.length} destinations`,
      );
      const verified = await Promise.all(
        p.copies.map((c) =>
          steps.run(
            `verifyCopy physical ${c.destination}`,
            () =>
              streaming.verifyCopy({
                service,
                backupId,
                destination: c.destination,
                size: p.object.size,
                sha256: p.object.sha256,
                kind: 'physical',
                key: p.object.key,
              }),
            (v) => `${v.location}: ${v.size} bytes, sha256 ${v.sha256.slice(0, 12)}…`,
          ),
        ),
      );
      const m: BackupManifest = {
        format: 'drbook-backup/1',
        id: backupId,
        service,
        kind: 'physical',
        startedAt: p.startedAt,
        endedAt: p.endedAt,
        source: { server: p.server, engine: p.engine, version: p.version },
        position: p.position,
        databases: p.databases,
        tables: [],
        rowCounts: { exact: false, method: 'not counted: a physical copy of the whole server (mariabackup)' },
        object: p.object,
        copies: p.copies.map((c, i) => ({ ...c, ...verified[i] })),
        tools: p.tools,
        verified: true,
      };
      const written = await steps.run(
        'writeManifest physical',
        () => quick.writeManifest({ manifest: m }),
        (r) => r.manifestKey,
      );
      physical = { manifestKey: written.manifestKey, size: p.object.size, sha256: p.object.sha256 };
    } catch (err) {
      fail('physical backup', err);
    }
  }

  // 1c. Binlog archive (backup.binlogArchive): closed binary logs to every destination, for point-in-time recovery.
  let binlogs: ServiceBackupResult['binlogs'] = null;
  if (backup.binlogArchive) {
    status.phase = 'archiving binlogs';
    try {
      const b = await steps.run(
        'archiveBinlogs',
        () => streaming.archiveBinlogs({ service }),
        (r) =>
          `${r.copied.length} copied, ${r.alreadyArchived.length} already archived, newest ${r.newest ?? 'none'}, active ${r.active} (not archived)`,
      );
      binlogs = { copied: b.copied, newest: b.newest, newestClosedAt: b.newestClosedAt };
    } catch (err) {
      fail('binlog archive', err);
    }
  }

  // 1d. RDS automated backups: retention and window as the inventory says; drift is reported and fixed.
  let rdsBackupSettings: ServiceBackupResult['rdsBackupSettings'] = null;
  const rdsConfig = svc.rds;
  if (rdsConfig && rdsConfig.backupRetentionDays !== undefined) {
    const retentionDays = rdsConfig.backupRetentionDays;
    try {
      const r = await steps.run(
        'enforceRdsBackupSettings',
        () =>
          primarySide.enforceRdsBackupSettings({
            region: rdsConfig.region,
            instance: rdsConfig.instance,
            retentionDays,
            window: rdsConfig.backupWindow,
            enforce: true,
          }),
        (r) =>
          r.drift.length ? `drift: ${r.drift.join('; ')}${r.enforced ? ' (fixed)' : ''}` : 'as the inventory says',
      );
      rdsBackupSettings = { drift: r.drift, enforced: r.enforced };
    } catch (err) {
      fail('RDS backup settings', err);
    }
  }

  // 1e. File trees (backup.paths): each tree at the level the policy says (full, differential, incremental; GNU tar
  // listed-incremental on its host) → verify every copy → manifest. One tree failing never stops the others.
  const fileTrees: NonNullable<ServiceBackupResult['fileTrees']> = [];
  if (backup.paths?.length && patched('file-tree-backup')) {
    status.phase = 'backing up file trees';
    const policy = backup.files ?? { full: 'weekly', between: 'differential' };
    for (const p of backup.paths) {
      const tree = fileTreeId(p);
      try {
        const chain = await steps.run(
          `listFileTreeChain ${tree}`,
          () => quick.listFileTreeChain({ service, tree }),
          (c) => (c.length ? `newest chain: ${c.map((b) => `${b.id} (${b.level})`).join(', ')}` : 'no backup yet'),
        );
        const level = planFileTreeLevel(chain, policy, backupId);
        const r = await steps.run(
          `backupFileTree ${tree}`,
          () =>
            streaming.backupFileTree({
              service,
              tree,
              backupId,
              level: level.level,
              parent: level.parent,
              chain: level.chain,
            }),
          (r) =>
            `${r.level} (${level.why}): ${r.files.count} entries, ${r.object.uncompressedSize} bytes → ${r.object.size} ` +
            `(zstd) to ${r.copies.length} destinations; parent snapshot from ${r.snapshotFrom}`,
        );
        const verified = await Promise.all(
          r.copies.map((c) =>
            steps.run(
              `verifyFileTreeCopy ${tree} ${c.destination}`,
              () =>
                streaming.verifyFileTreeCopy({
                  service,
                  tree,
                  backupId,
                  destination: c.destination,
                  object: r.object,
                  snapshot: r.snapshot,
                  files: r.files,
                }),
              (v) => `${v.location}: ${v.size} bytes, sha256 ${v.sha256.slice(0, 12)}…`,
            ),
          ),
        );
        const manifest: FileTreeManifest = {
          format: 'drbook-filetree/1',
          id: backupId,
          service,
          kind: 'files',
          tree,
          host: r.host,
          path: r.path,
          exclude: r.exclude,
          level: r.level,
          chain: r.chain,
          parent: r.parent,
          restoreChain: r.restoreChain,
          startedAt: r.startedAt,
          endedAt: r.endedAt,
          object: r.object,
          snapshot: r.snapshot,
          files: r.files,
          copies: r.copies.map((c, i) => ({ ...c, ...verified[i] })),
          tools: r.tools,
          verified: true,
        };
        const written = await steps.run(
          `writeFileTreeManifest ${tree}`,
          () => quick.writeFileTreeManifest({ manifest }),
          (w) => w.manifestKey,
        );
        fileTrees.push({
          tree,
          level: r.level,
          chain: r.chain,
          manifestKey: written.manifestKey,
          files: r.files.count,
          size: r.object.size,
          snapshotFrom: r.snapshotFrom,
        });
      } catch (err) {
        fail(`file tree ${p.host}:${p.path}`, err);
      }
    }
  }

  // 2. Snapshots: independent of the dump, so they are taken even when it failed.
  const snapshots: ServiceBackupResult['snapshots'] = { volumes: [], rds: null };
  if (!input.snapshots) steps.skip('snapshots', 'snapshots: false in the input');
  if (input.snapshots && backup.volumeTags) {
    status.phase = 'snapshotting volumes';
    const tags = backup.volumeTags;
    try {
      const taken = await steps.run(
        'snapshotVolumes',
        () => primarySide.snapshotVolumes({ service, backupId, region: regions.primary, tags }),
        (s) => s.map((v) => `${v.volumeId}→${v.snapshotId}`).join(', '),
      );
      snapshots.volumes = await steps.run(
        'copyVolumeSnapshotsToDr',
        () =>
          drSide.copyVolumeSnapshotsToDr({
            service,
            backupId,
            sourceRegion: regions.primary,
            drRegion: regions.dr,
            snapshots: taken,
          }),
        (c) => c.map((v) => `${v.snapshotId}→${v.drSnapshotId} (${regions.dr})`).join(', '),
      );
    } catch (err) {
      fail('EBS snapshots', err);
    }
  }
  const rds = svc.rds;
  if (input.snapshots && rds) {
    status.phase = 'snapshotting RDS';
    try {
      const snap = await steps.run(
        'snapshotRdsInstance',
        () => primarySide.snapshotRdsInstance({ service, backupId, region: rds.region, instance: rds.instance }),
        (s) => `${s.id} (${s.region}) ${s.status}`,
      );
      const copy = await steps.run(
        'copyRdsSnapshotToDr',
        () => drSide.copyRdsSnapshotToDr({ source: snap, drRegion: regions.dr }),
        (s) => `${s.id} (${s.region}) ${s.status}`,
      );
      snapshots.rds = copy.arn;
    } catch (err) {
      fail('RDS snapshot', err);
    }
  }

  // 3. Retention, per destination: each keeps its own newest verified backup whatever happened elsewhere.
  status.phase = 'retention';
  // A week's and a month's keeper is its FIRST verified backup, the one its Object Lock was set for when written
  // (gfsClass); runs recorded before that kept the newest, and replay them so.
  const anchor = patched('gfs-first-of-period') ? 'first' : 'newest';
  const retention: ServiceBackupResult['retention'] = [];
  let previousVerifiedId: string | null = null;
  let offlineCopies = 0;
  try {
    const listed = await steps.run(
      'listBackups',
      () => quick.listBackups({ service }),
      (l) => l.map((d) => `${d.destination}: ${d.backups.length}`).join(', '),
    );
    // Offline destinations count for 3-2-1-1 only with a copy verified within their period (this run's included).
    const offline = Object.fromEntries(
      Object.entries(backup.destinations).map(([name, d]) => [
        name,
        d?.offline ? { verifiedWithinSeconds: d.offline.verifiedWithin } : undefined,
      ]),
    );
    offlineCopies = offlineCopiesVerified(listed, offline, Date.now());
    previousVerifiedId =
      listed
        .flatMap((d) => d.backups)
        .filter((b) => b.verified && b.id < backupId)
        .map((b) => b.id)
        .sort()
        .pop() ?? null;
    for (const { destination, backups } of listed) {
      const decided = planRetention(backups, backup.retention, Date.now(), undefined, anchor);
      const applied = decided.remove.length
        ? await steps.run(
            `applyRetention ${destination}`,
            () => quick.deleteBackups({ service, destination, ids: decided.remove }),
            retentionDetail,
          )
        : null;
      // A backup under Object Lock is not deleted (S3 would refuse): it is kept, saying until when.
      const locked = applied?.locked ?? [];
      retention.push({
        destination,
        kept: [...decided.keep.map((k) => k.id), ...locked.map((l) => l.id)],
        deleted: applied ? applied.deleted : [],
        ...(locked.length ? { locked } : {}),
      });
    }
    // Physical backups: the same policy, over their own history (each kind keeps its own newest verified one).
    if (backup.physical) {
      const listedPhysical = await steps.run(
        'listBackups physical',
        () => quick.listBackups({ service, kind: 'physical' }),
        (l) => l.map((d) => `${d.destination}: ${d.backups.length}`).join(', '),
      );
      for (const { destination, backups } of listedPhysical) {
        const decided = planRetention(backups, backup.retention, Date.now(), undefined, anchor);
        if (!decided.remove.length) continue;
        await steps.run(
          `applyRetention physical ${destination}`,
          () => quick.deleteBackups({ service, destination, ids: decided.remove, kind: 'physical' }),
          retentionDetail,
        );
      }
    }
  } catch (err) {
    fail('retention', err);
  }

  // 3b. Snapshot retention, per region (the DR copies too): the same policy over the backup ids the snapshots carry.
  if (input.snapshots && (backup.volumeTags || rds)) {
    const sides = [
      [regions.primary, primarySide],
      [regions.dr, drSide],
    ] as const;
    for (const [region, side] of sides) {
      try {
        const listed = await steps.run(
          `listSnapshotBackups ${region}`,
          () => side.listSnapshotBackups({ service, region }),
          (l) => `${l.backupIds.length} backups: ${l.ebs.length} EBS, ${l.rds.length} RDS snapshots`,
        );
        const decided = planRetention(
          listed.backupIds.map((id) => ({ id, verified: true })),
          backup.retention,
          Date.now(),
          undefined,
          anchor,
        );
        if (decided.remove.length) {
          await steps.run(
            `applySnapshotRetention ${region}`,
            () => side.deleteSnapshotBackups({ service, region, backupIds: decided.remove }),
            (r) => `deleted ${r.deleted.join(', ')}`,
          );
        }
      } catch (err) {
        fail(`snapshot retention (${region})`, err);
      }
    }
  }

  // 4. Compliance: 3-2-1 and the data-loss window against the tier's RPO; in status, result and metrics.
  const compliance = assessCompliance({
    service,
    tier: svc.tier,
    offlineCopies,
    copies: manifest?.copies ?? [],
    backupId: manifest ? backupId : null,
    endedAtMs: manifest ? Date.parse(manifest.endedAt) : null,
    previousVerifiedId,
    nowMs: Date.now(),
    rpoSeconds: plan.targets.rpoSeconds,
    intervalSeconds: input.intervalSeconds,
    newestBinlogClosedAtMs: binlogs?.newestClosedAt ? Date.parse(binlogs.newestClosedAt) : null,
  });
  status.compliance = [compliance];
  status.measured.rpoSeconds = compliance.exposureSeconds;
  const tags = { service, tier: svc.tier };
  metricMeter.createGauge('drbook_backup_rule_321', 'int').set(compliance.rule321 ? 1 : 0, tags);
  metricMeter.createGauge('drbook_backup_rule_3211', 'int').set(compliance.rule3211 ? 1 : 0, tags);
  metricMeter.createGauge('drbook_backup_rpo_met', 'int').set(compliance.rpoMet ? 1 : 0, tags);
  if (compliance.exposureSeconds !== null)
    metricMeter.createGauge('drbook_backup_exposure_seconds', 'int').set(compliance.exposureSeconds, tags);
  metricMeter.createGauge('drbook_backup_bytes', 'int').set(manifest?.object.size ?? 0, tags);
  if (compliance.ageSeconds !== null) recordBackupAge(service, compliance.ageSeconds);
  metricMeter.createCounter('drbook_backup_failures').add(status.failures.length, tags);

  // A source refused for its live role (fenced, no writer, split) is an estate problem, not a flaky backup: say so now.
  const refused = status.failures.filter((f) => REFUSED_SOURCE.includes(f.type));
  if (refused.length && patched('backup-refused-source-alert')) {
    await notifyPeople(
      plan,
      runbookActivities(plan),
      `[drbook] ${service} backup ${backupId} REFUSED its source`,
      refused.map((f) => `${f.reason} [${f.type}]`).join('\n'),
      'backup-source-refused',
    ).catch((err: unknown) => status.failures.push({ service, type: typeOf(err), reason: `alert: ${messageOf(err)}` }));
  }

  // Any other failure (a destination that refused the copy, a failed verify, snapshot, retention) tells people now,
  // with each step and its cause; a success after a failed run tells them it recovered.
  const others = status.failures.filter((f) => !REFUSED_SOURCE.includes(f.type));
  if (others.length && patched('backup-failure-alert')) {
    await notifyPeople(
      plan,
      runbookActivities(plan),
      `[drbook] ${service} backup ${backupId} FAILED`,
      [
        ...others.map((f) => `${f.reason} [${f.type}]`),
        ...(previousVerifiedId
          ? [`The newest verified backup of ${service} before this run: ${previousVerifiedId}.`]
          : []),
      ].join('\n'),
      'backup-failed',
    ).catch((err: unknown) => status.failures.push({ service, type: typeOf(err), reason: `alert: ${messageOf(err)}` }));
  } else if (!status.failures.length && patched('backup-recovery-notice')) {
    const previous = await quick.previousServiceBackup({ service, workflowId: workflowInfo().workflowId });
    if (previous?.status === 'FAILED')
      await notifyPeople(
        plan,
        runbookActivities(plan),
        `[drbook] ${service} backup recovered: ${backupId} verified`,
        `${backupId} of ${service} is verified in ${manifest?.copies.length ?? 0} copies; the run before it ` +
          `(${previous.workflowId}, ${previous.closedAt ?? 'unknown time'}) failed: ${previous.reason ?? 'unknown cause'}.`,
        'backup-recovered',
      ).catch(() => undefined);
  }

  const result: ServiceBackupResult = {
    service,
    backupId,
    manifestKey: manifest ? `${service}/logical/${backupId}/manifest.json` : '',
    size: manifest?.object.size ?? 0,
    uncompressedSize: manifest?.object.uncompressedSize ?? 0,
    sha256: manifest?.object.sha256 ?? '',
    copies: (manifest?.copies ?? []).map((c) => ({ destination: c.destination, location: c.location })),
    snapshots,
    retention,
    compliance,
    durationSeconds: Math.round((Date.now() - startedMs) / 1000),
    physical,
    binlogs,
    rdsBackupSettings,
    ...(fileTrees.length ? { fileTrees } : {}),
  };
  if (status.failures.length) {
    status.phase = 'failed';
    publishBackupPage(status, `FAILED (${status.failures.length} failures)`);
    throw ApplicationFailure.create({
      type: ErrorType.BackupFailed,
      message: `${service} backup ${backupId} failed: ${status.failures.map((f) => `${f.reason} [${f.type}]`).join('; ')}`,
      nonRetryable: true,
      details: [result],
    });
  }
  status.phase = 'done';
  publishBackupPage(status, `done: ${backupId} verified in ${result.copies.length} copies`);
  return result;
}

// ------------------------------------------------------------------ the fleet

export async function nightlyBackup(rawInput: unknown, carried?: NightlyBackupProgress): Promise<NightlyBackupSummary> {
  const input = parseInput(nightlyBackupInput, rawInput);
  const progress: NightlyBackupProgress = carried
    ? { ...carried, runs: carried.runs + 1 }
    : { backupId: backupIdAt(Date.now()), remaining: null, requested: 0, succeeded: [], failed: [], runs: 1 };
  const steps = new Steps();
  const compliance: BackupCompliance[] = [];
  const status: BackupStatus = {
    runbook: 'nightlyBackup',
    service: input.services?.join(',') ?? '*',
    phase: 'listing services',
    steps: steps.list,
    ...gateless(),
    backupId: progress.backupId,
    compliance,
    failures: progress.failed,
  };
  setHandler(statusQuery, () => status);
  steps.onChange = () => publishBackupPage(status);
  publishBackupPage(status);

  if (progress.remaining === null) {
    try {
      progress.remaining = await quick.listBackedUpServices({ services: input.services });
    } catch (err) {
      // An unknown service fails the run itself, before anything is backed up.
      if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) throw err.cause;
      throw err;
    }
    progress.requested = progress.remaining.length;
    // Once per night, before the fan-out: one call per bucket, so services sharing a bucket never race.
    try {
      await steps.run(
        'applyArchiveLifecycles',
        () => quick.applyArchiveLifecycles(),
        (r) => r.map((b) => `${b.bucket} (${b.region}) ${b.changed ? 'updated' : 'unchanged'}`).join(', '),
      );
    } catch (err) {
      progress.failed.push({ service: '(buckets)', type: typeOf(err), reason: `archive lifecycle: ${messageOf(err)}` });
    }
  }

  const batch = progress.remaining.slice(0, input.batchSize);
  const rest = progress.remaining.slice(input.batchSize);
  status.phase = `backing up ${batch.length} services, ${input.concurrency} at a time`;

  const queue = [...batch];
  const running = new Set<Promise<void>>();
  const backUp = async (service: string) => {
    const rec: StepRecord = { name: service, state: 'running', startedAt: iso(Date.now()), attempts: 1 };
    steps.list.push(rec);
    steps.onChange();
    try {
      const r = await executeChild(serviceBackup, {
        args: [
          { service, backupId: progress.backupId, snapshots: input.snapshots, intervalSeconds: input.intervalSeconds },
        ],
        workflowId: `backup-${service}-${progress.backupId}`,
        staticSummary: `backup ${service} ${progress.backupId}: part of ${workflowInfo().workflowId}`,
      });
      rec.state = 'succeeded';
      rec.detail = `${r.size} bytes, ${r.copies.length} copies, 3-2-1 ${r.compliance.rule321 ? 'yes' : 'no'}, RPO ${r.compliance.rpoMet ? 'met' : 'missed'}`;
      compliance.push(r.compliance);
      progress.succeeded.push({
        service,
        size: r.size,
        durationSeconds: r.durationSeconds,
        rule321: r.compliance.rule321,
        rpoMet: r.compliance.rpoMet,
      });
    } catch (err) {
      rec.state = 'failed';
      rec.detail = messageOf(err);
      progress.failed.push({ service, type: typeOf(err), reason: messageOf(err) });
    } finally {
      rec.endedAt = iso(Date.now());
      steps.onChange();
    }
  };
  while (queue.length || running.size) {
    while (queue.length && running.size < input.concurrency) {
      const p: Promise<void> = backUp(queue.shift()!).finally(() => running.delete(p));
      running.add(p);
    }
    await Promise.race(running);
  }

  if (rest.length) {
    status.phase = `continuing with ${rest.length} more services`;
    publishBackupPage(status);
    await continueAsNew<typeof nightlyBackup>(rawInput, { ...progress, remaining: rest });
  }
  status.phase = progress.failed.length ? `done, ${progress.failed.length} failed` : 'done';
  publishBackupPage(
    status,
    `${progress.succeeded.length} of ${progress.requested} services backed up` +
      (progress.failed.length ? `, ${progress.failed.length} FAILED` : ''),
  );
  return {
    backupId: progress.backupId,
    requested: progress.requested,
    succeeded: progress.succeeded,
    failed: progress.failed,
    runs: progress.runs,
  };
}
