/** The monthly restore test: its checks, report and result. */
import type { BackupManifest } from './backup';
import type { StepRecord } from './status';

// ------------------------------------------------------------------ monthly restore test
// Reports, in the service's primary backup destination (or its first one):
//   <prefix><service>/reports/restore-test/<testId>.{json,md,html}
// History = the earlier JSON reports listed from there.

/**
 * One check of a restore test. `gate: true` checks decide pass/fail; `gate: false` ones are
 * evidence (RTO/RPO of a hot or warm service, whose recovery does not depend on this restore).
 */
export interface RestoreCheck {
  name: string;
  ok: boolean;
  gate: boolean;
  detail: string;
}

export interface RestoreTestReport {
  format: 'drbook-restore-test/1';
  id: string;
  service: string;
  tier: string;
  strategy: string;
  outcome: 'passed' | 'failed' | 'cancelled';
  /** The first failed gating check (what the alert names), or null. */
  failedCheck: string | null;
  startedAt: string;
  endedAt: string;
  backup: {
    id: string | null;
    source: string | null;
    startedAt: string | null;
    size: number | null;
    sha256: string | null;
    position: BackupManifest['position'] | null;
  };
  scratch: { server: string; databases: { source: string; scratch: string }[] } | null;
  measured: {
    /** Fetch + checksum-checked stream + decompress + load. */
    restoreSeconds: number | null;
    /** Restore plus validation: how long recovering from this backup takes (RTO evidence). */
    rtoSeconds: number | null;
    /** Age of the backup's data when the test ran (RPO evidence). */
    backupAgeSeconds: number | null;
    checksumSeconds: number | null;
    bytesRestored: number | null;
  };
  targets: { rtoSeconds: number; rpoSeconds: number };
  checks: RestoreCheck[];
  rds: {
    snapshot: string;
    region: string;
    instance: string;
    status: string;
    seconds: number;
    deleted: boolean;
  } | null;
  /** Point-in-time recovery (services with the binlog archive): the archived logs replayed onto the restore. */
  pitr?: {
    target: { kind: 'gtid' | 'time' | 'end'; value: string | null };
    logs: string[];
    transactions: number;
    lastGtid: string | null;
    lastEventAt: string | null;
    archiveEndsAt: string | null;
    reached: boolean;
    seconds: number;
  } | null;
  /** Physical backup (backup.physical): restored into a scratch instance of its own, checked, removed. */
  physical?: {
    backupId: string;
    startedAt: string;
    seconds: { extract: number; prepare: number; start: number; validate: number; total: number };
    rows: number;
    cleanedUp: boolean;
  } | null;
  /** File trees (backup.paths): each tree's newest chain restored into a scratch directory, checked, removed. */
  fileTrees?: {
    tree: string;
    host: string;
    path: string;
    backupId: string;
    chain: string[];
    files: number;
    bytes: number;
    seconds: number;
    /** Differences from the backup's per-file list (empty: restored exactly). */
    problems: string[];
    cleanedUp: boolean;
  }[];
  cleanup: { done: boolean; detail: string }[];
  steps: StepRecord[];
  /** Where the report was stored (filled in when published). */
  links: { json: string; markdown: string; html: string } | null;
}

export interface RestoreTestResult {
  service: string;
  testId: string;
  outcome: RestoreTestReport['outcome'];
  backupId: string | null;
  failedCheck: string | null;
  measured: RestoreTestReport['measured'];
  targets: RestoreTestReport['targets'];
  /** Locations of the stored report (JSON, Markdown, HTML). */
  report: { json: string; markdown: string; html: string } | null;
}
