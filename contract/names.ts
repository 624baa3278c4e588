/**
 * Names that cross the wire: service names, network devices and databases as they reach a command line, backup
 * ids, and the task queues workers poll.
 */
import { z } from 'zod';

/**
 * A network device name (Linux allows 15 characters), as it may appear in a command run by a remote
 * shell: nothing the shell or `ip` would read as more than a name (no spaces, quotes, ;, $, leading -).
 */
export const NETWORK_DEVICE = /^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,14}$/;

/**
 * A database name as it may reach a client tool's argument list (mariadb-dump, mariadb-binlog --database): a plain
 * identifier, never one that reads as an option (no leading -), quotes a way out (` ' "), or ends a line.
 */
export const PLAIN_DATABASE_NAME = /^[A-Za-z0-9_$][A-Za-z0-9_$-]{0,63}$/;

export const TASK_QUEUE = 'drbook';
/**
 * DR-side steps run on a queue served by workers in the DR region: in a regional outage the
 * primary's workers are gone. Derived from the run's own queue, so test queues stay apart.
 */
export const drTaskQueue = (baseQueue: string, drRegion: string) => `${baseQueue}-${drRegion}`;

export const serviceName = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'a service name from the inventory');

/** Backup ids are the run's start time, so they sort by age and name the night they belong to. */
export const BACKUP_ID = /^\d{8}T\d{6}Z$/;
export const backupId = z.string().regex(BACKUP_ID, 'a backup id like 20250101T030000Z');

/**
 * The workflow-id rule: one runbook of a kind per service at a time, because Temporal refuses a second run with the
 * same id. Workflows enforce it (workflows/workflow-ids.ts); the CLI, activities and tests build ids with it.
 */
export function workflowIdFor(runbook: string, service: string): string {
  return `${runbook}-${service}`;
}
