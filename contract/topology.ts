/**
 * The live topology: the inventory names a service's members and its home side (database.primary); who is
 * writable now is read from the servers by the discoverTopology activity, and every runbook acts on that.
 */

/**
 * normal: the home member is the one writer and every replica replicates from it; failed-over: a DR-side
 * member is the one writer; degraded: one writer but a replica broken or unreachable, or no writer with every
 * member answering; split: two or more writers; unknown: no writer found and a member did not answer.
 */
export type TopologyState = 'normal' | 'failed-over' | 'degraded' | 'split' | 'unknown';

/** One member and the evidence its role was read from. */
export interface TopologyMember {
  server: string;
  /** Its name in the inventory (database.primary is the home side). */
  role: 'primary' | 'replica' | 'drServer';
  home: boolean;
  reachable: boolean;
  /** Why it could not be read (reachable: false). */
  error: string | null;
  readOnly: boolean | null;
  /**
   * SHOW REPLICA STATUS; `source` is Master_Host:Master_Port, `sourceServer` the member at that replication address.
   */
  replication: {
    configured: boolean;
    ioRunning: boolean;
    sqlRunning: boolean;
    source: string | null;
    sourceServer: string | null;
    secondsBehind: number | null;
    lastError: string;
  } | null;
  /** Everything it has committed or applied (gtid_current_pos / gtid_executed). */
  gtidPosition: string | null;
}

export interface Topology {
  service: string;
  state: TopologyState;
  home: string;
  /** The one writable member (null: none, or more than one). */
  writable: string | null;
  /** Every writable member (two or more: split). */
  writers: string[];
  /** Members replicating, both threads running, from the writable member. */
  replicas: string[];
  /** Members that answer read-only and replicate from nothing: a fenced (or stopped-advancing) server. */
  fenced: string[];
  /** One line for operators, e.g. "failed over to db-replica since …, failback pending". */
  detail: string;
  /** When the service last failed over (the newest completed failover-<service> run), if known. */
  since: string | null;
  readAt: string;
  members: TopologyMember[];
}

// ------------------------------------------------------------------ readiness

/** One read-only check of a DR estate; `ok: false` names what an operator must fix. */
export interface ReadinessCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface ReadinessReport {
  service: string;
  ready: boolean;
  checks: ReadinessCheck[];
  expectedRpoSeconds: number | null;
  targets: { rtoSeconds: number; rpoSeconds: number };
  /** Scheduled runs with alertOnDrift: what changed since the schedule's previous run, and whether people were told. */
  drift?: ReadinessDrift;
  /** The live roles (services with a database). */
  topology?: Topology;
}

export interface ReadinessDrift {
  /** The run compared with (null: none before, so every failing check is new). */
  previous: string | null;
  newlyFailing: string[];
  recovered: string[];
  notified: boolean;
}
