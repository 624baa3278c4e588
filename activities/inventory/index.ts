/**
 * The runbooks' view of the inventory. The first step of every runbook asks for its
 * service here, so an unknown name fails before any side effect; the answer holds
 * references and names only (no secret values), so it is safe in workflow history.
 */
import { replicationAddress, targetsFor, type Inventory, ErrorType, type ServicePlan } from '../../contract';
import { failure } from '../errors';

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
