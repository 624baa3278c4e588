/**
 * drbook's own gauges, next to Temporal's on the worker's Prometheus endpoint
 * (DRBOOK_METRICS_PORT), each labelled with the service. Set by the runbooks that know the
 * values; the SDK does not emit them while a history is replayed.
 */
import { metricMeter } from '@temporalio/workflow';

/** Gauges take non-negative numbers only: a value from a skewed clock is left out rather than fail the run. */
const gaugeable = (v: number | null): v is number => v !== null && Number.isFinite(v) && v >= 0;

/** The RTO and RPO the latest run of a runbook measured (failover, drill). */
export function recordMeasured(
  runbook: string,
  service: string,
  measured: { rtoSeconds: number | null; rpoSeconds: number | null },
): void {
  const tags = { service, runbook };
  if (gaugeable(measured.rtoSeconds))
    metricMeter
      .createGauge('drbook_rto_seconds', 'float', 'RTO measured by the latest run')
      .set(measured.rtoSeconds, tags);
  if (gaugeable(measured.rpoSeconds))
    metricMeter
      .createGauge('drbook_rpo_seconds', 'float', 'RPO measured by the latest run')
      .set(measured.rpoSeconds, tags);
}

/** 1 when the latest restore test of the service passed, 0 when it failed. */
export function recordRestoreTest(service: string, passed: boolean): void {
  metricMeter
    .createGauge('drbook_restore_test_ok', 'int', 'latest restore test passed (1) or failed (0)')
    .set(passed ? 1 : 0, { service });
}

/** Age of the service's newest verified backup (set by the backup itself and refreshed by readiness). */
export function recordBackupAge(service: string, ageSeconds: number): void {
  if (!gaugeable(ageSeconds)) return;
  metricMeter
    .createGauge('drbook_backup_age_seconds', 'int', "age of the service's newest verified backup")
    .set(ageSeconds, { service });
}
