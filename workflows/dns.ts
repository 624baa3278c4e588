/**
 * The service's DNS record as the Route 53 activities take it: read where it points, or point it at one side.
 * Failover points it at the DR value, failback at the primary value; readiness reads it.
 */
import type { ServicePlan } from '../contract';

type ServiceDns = NonNullable<ServicePlan['service']['dns']>;

/** The record to read: zone (and zone id, for split-horizon zones), name and type. */
export function dnsRecord(dns: ServiceDns) {
  return { zone: dns.hostedZone, zoneId: dns.hostedZoneId, name: dns.record, type: dns.type };
}

/** The switchDnsRecord input that points the record at the DR side or back at the primary side. */
export function dnsSwitch(dns: ServiceDns, side: 'dr' | 'primary') {
  return { ...dnsRecord(dns), ttl: dns.ttl, value: side === 'dr' ? dns.drValue : dns.primaryValue };
}
