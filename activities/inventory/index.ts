/**
 * The runbooks' view of the inventory. The first step of every runbook asks for its
 * service here, so an unknown name fails before any side effect; the answer holds
 * references and names only (no secret values), so it is safe in workflow history.
 */
import { replicationAddress, targetsFor, type Inventory, type Service } from '../../config/inventory';
import { ErrorType } from '../../workflows/contract';
import { failure } from '../errors';

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

export function createInventoryActivities(inventory: Inventory) {
  return {
    // async: Temporal's activity typing requires a promise, even from a look-up.
    async describeService({ service }: { service: string }): Promise<ServicePlan> {
      const svc = inventory.services.find((s) => s.name === service);
      if (!svc) {
        const known = inventory.services.map((s) => s.name).join(', ');
        throw failure(ErrorType.UnknownService, `unknown service "${service}"; the inventory has: ${known}`, {
          service,
        });
      }
      return {
        service: svc,
        regions: inventory.regions,
        targets: targetsFor(svc),
        approvers: inventory.approvers.map((a) => a.name),
        approvalPolicy: inventory.approvals.policy,
        notificationTargets: inventory.notifications.map((n) => n.name),
        endpoints: Object.fromEntries(
          [svc.database?.primary, svc.database?.replica, svc.database?.drServer]
            .filter((n): n is string => Boolean(n))
            .map((n) => [n, replicationAddress(inventory.mysqlServers[n])]),
        ),
      };
    },
  };
}

export type InventoryActivities = ReturnType<typeof createInventoryActivities>;
