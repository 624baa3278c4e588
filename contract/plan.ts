/**
 * A runbook's view of its service (the describeService activity's answer): references and names only, no secret
 * values, so it is safe in workflow history.
 */
import type { Inventory, Service } from './inventory';

export interface ServicePlan {
  service: Service;
  regions: Inventory['regions'];
  targets: { rtoSeconds: number; rpoSeconds: number };
  approvers: string[];
  /** How approvals prove who sent them (inventory `approvals.policy`); absent in plans recorded before it existed. */
  approvalPolicy?: 'named' | 'signed';
  notificationTargets: string[];
  /**
   * Where the service's database servers listen for the estate (for the application webhook): their replication
   * address, not the worker's route to them. No credentials.
   */
  endpoints: Record<string, { host: string; port: number }>;
}
