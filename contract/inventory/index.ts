/**
 * The estate drbook protects, as one validated document (config/*.yaml).
 *
 * This file is pure (no I/O) so workflows may import its *types*; reading files and
 * resolving secrets happens in config/load.ts on the worker. Secrets are references
 * (`{ env }` or `{ file }`), never values: the inventory can be committed and the
 * services named in workflow inputs, while the passwords stay on the worker.
 */
import { z } from 'zod';
import {
  DEFAULT_TIER_TARGETS,
  LOCAL_HOSTS,
  approver,
  dataFilesHost,
  mysqlServer,
  name,
  notificationTarget,
  region,
  secretRef,
  sshHost,
} from './fields';
import { kmsKeyId } from './backup';
import { service, schedules } from './service';

export {
  DEFAULT_TIER_TARGETS,
  TIERS,
  dataFilesHost,
  duration,
  publicKeyBody,
  secretRef,
  type SecretRef,
  type Tier,
} from './fields';
export { SERVICE_SCHEDULE_KINDS } from './service';

export const inventorySchema = z
  .object({
    version: z.literal(1),
    regions: z
      .object({
        primary: region,
        dr: region,
        /**
         * A KMS key of the DR region: encrypted RDS and EBS snapshots are copied there re-encrypted with it (AWS
         * refuses a cross-region copy of an encrypted RDS snapshot without one).
         */
        drKmsKeyId: kmsKeyId.optional(),
      })
      .strict(),
    aws: z
      .object({
        /** Endpoint override for an AWS API emulator (the local stack's moto server). */
        endpoint: z.url().optional(),
        accessKeyId: secretRef.optional(),
        secretAccessKey: secretRef.optional(),
        /**
         * Network timeouts of every AWS call (seconds): connecting, and a connection with no byte moving
         * (an idle socket, so a long upload that keeps moving is never cut). A silent network fails the
         * call, named, instead of hanging until the activity's own timeout.
         */
        timeouts: z
          .object({ connectSeconds: z.number().positive().default(5), idleSeconds: z.number().positive().default(30) })
          .strict()
          .prefault({}),
        /**
         * Where the AWS API emulator differs from AWS in what a step checks. Only with `endpoint`: on AWS the
         * real checks always apply. `rdsKeepsReplicaSourceAfterPromote`: a plain moto keeps an instance's
         * ReadReplicaSourceDBInstanceIdentifier after PromoteReadReplica (AWS clears it, and so does the local
         * stack's moto, scripts/moto-server.py), so "no longer a replica" is also read from the
         * drbook:promote-accepted tag drbook writes once the promotion is accepted. `rdsPromotesBeforeAnswering`:
         * moto applies PromoteReadReplica before it answers (RDS takes minutes, refusing a second request
         * meanwhile), so a request found on an instance still a replica was lost and is made again at once, not
         * after the 2 minutes a request on AWS is given.
         */
        emulator: z
          .object({
            rdsKeepsReplicaSourceAfterPromote: z.boolean().default(false),
            rdsPromotesBeforeAnswering: z.boolean().default(false),
          })
          .strict()
          .optional(),
      })
      .strict()
      .refine((a) => !a.emulator || a.endpoint, {
        message: 'emulator settings need aws.endpoint (an emulator); on AWS the real checks apply',
        path: ['emulator'],
      })
      .prefault({}),
    approvers: z.array(approver).min(1),
    /**
     * How an approval proves who sent it. `named` (the default, and the sandbox's): the approver is the name in the
     * approval, trusted as far as Temporal's authorization of the client goes. `signed`: each approval carries an SSH
     * signature over its run and gate by a key listed under `approvers[].sshKeys`, checked on the worker; one key
     * counts once. docs/security.md.
     */
    approvals: z
      .object({ policy: z.enum(['named', 'signed']).default('named') })
      .strict()
      .prefault({}),
    notifications: z.array(notificationTarget).default([]),
    sshHosts: z.record(name, sshHost).default({}),
    mysqlServers: z.record(name, mysqlServer).default({}),
    /**
     * The worker's backup-signing keyring: every manifest is signed with `privateKey` (Ed25519, PEM) and
     * verified before any restore with its public key or one of `trustedPublicKeys` (keys rotated out).
     * Unsigned manifests (backups from before signing) are refused unless older than `acceptUnsignedBefore`.
     */
    backupSigning: z
      .object({
        privateKey: secretRef,
        trustedPublicKeys: z.array(secretRef).default([]),
        acceptUnsignedBefore: z
          .string()
          .regex(/^\d{8}T\d{6}Z$/, 'a backup id like 20250101T030000Z')
          .optional(),
      })
      .strict()
      .optional(),
    services: z.array(service).min(1),
    schedules,
  })
  .strict()
  // Also beside other problems (zod skips a refinement once a field failed): every problem is listed at once.
  .superRefine((inv, ctx) => crossChecks(inv, ctx), { when: (payload) => isRecord(payload.value) });

/** The checks across sections, each run where the sections it reads are readable (the rest may be half valid). */
function crossChecks(inv: Inventory, ctx: ReferenceIssues): void {
  const doc: unknown = inv;
  if (serversReadable(doc)) checkServerHosts(inv, ctx);
  checkSignedApprovers(inv, ctx);
  if (referencesReadable(doc)) checkReferences(inv, ctx);
}

function serversReadable(v: unknown): boolean {
  return (
    isRecord(v) && isRecord(v.sshHosts) && isRecord(v.mysqlServers) && Object.values(v.mysqlServers).every(isRecord)
  );
}

/** Every MySQL server's SSH host exists. */
function checkServerHosts(inv: Inventory, ctx: ReferenceIssues): void {
  for (const [name, server] of Object.entries(inv.mysqlServers)) {
    if (server.sshHost !== undefined && !(server.sshHost in inv.sshHosts))
      ctx.addIssue({
        code: 'custom',
        path: ['mysqlServers', name, 'sshHost'],
        message: `unknown SSH host "${server.sshHost}"`,
      });
  }
}

/** The signed approval policy needs a key for every approver. Read defensively: the rest may be half valid. */
function checkSignedApprovers(inv: Inventory, ctx: ReferenceIssues): void {
  const policy: unknown = isRecord(inv.approvals) ? inv.approvals.policy : undefined;
  if (policy !== 'signed' || !Array.isArray(inv.approvers)) return;
  inv.approvers.forEach((a: unknown, i) => {
    if (isRecord(a) && !(Array.isArray(a.sshKeys) && a.sshKeys.length))
      ctx.addIssue({
        code: 'custom',
        path: ['approvers', i, 'sshKeys'],
        message: `the signed approval policy needs at least one SSH public key for ${String(a.name)}`,
      });
  });
}

interface ReferenceIssues {
  addIssue(issue: { code: 'custom'; path: (string | number)[]; message: string }): void;
}

/** Cross-references: every name a service uses must exist, so a typo fails at worker start, not at 3 a.m. */
function checkReferences(inv: Inventory, ctx: ReferenceIssues): void {
  const ref = (kind: 'sshHosts' | 'mysqlServers', value: string | undefined, path: (string | number)[]) => {
    if (value !== undefined && !(value in inv[kind])) {
      ctx.addIssue({
        code: 'custom',
        path,
        message: `unknown ${kind === 'sshHosts' ? 'SSH host' : 'MySQL server'} "${value}"`,
      });
    }
  };
  const backedUp = inv.services.filter((s) => s.backup).map((s) => s.name);
  if (backedUp.length && !inv.backupSigning)
    ctx.addIssue({
      code: 'custom',
      path: ['backupSigning'],
      message:
        `services with backups (${backedUp.join(', ')}) need a backup-signing key: manifests are signed and ` +
        `verified before any restore`,
    });
  const seen = new Set<string>();
  inv.services.forEach((svc, i) => {
    const at = (...rest: (string | number)[]) => ['services', i, ...rest];
    if (seen.has(svc.name))
      ctx.addIssue({ code: 'custom', path: at('name'), message: `duplicate service "${svc.name}"` });
    seen.add(svc.name);
    if (svc.database) {
      ref('mysqlServers', svc.database.primary, at('database', 'primary'));
      ref('mysqlServers', svc.database.replica, at('database', 'replica'));
      ref('mysqlServers', svc.database.drServer, at('database', 'drServer'));
      if (svc.strategy === 'cold' && !svc.database.drServer && !svc.database.replica) {
        ctx.addIssue({
          code: 'custom',
          path: at('database', 'drServer'),
          message: 'a cold service needs a drServer to restore into',
        });
      }
      if (svc.strategy !== 'cold' && !svc.database.replica && !svc.rds?.drReplica) {
        ctx.addIssue({
          code: 'custom',
          path: at('database', 'replica'),
          message: `a ${svc.strategy} service needs a replica`,
        });
      }
    }
    if (svc.backup?.physical === true && svc.database) {
      const server = inv.mysqlServers[svc.database.primary] as MysqlServer | undefined;
      if (svc.database.engine === 'mysql')
        ctx.addIssue({
          code: 'custom',
          path: at('backup', 'physical'),
          message: 'physical backups need MariaDB (mariabackup); xtrabackup for MySQL is not supported',
        });
      else if (server && isRecord(server) && typeof server.host === 'string' && dataFilesHost(server) === null)
        ctx.addIssue({
          code: 'custom',
          path: at('backup', 'physical'),
          message:
            `mariabackup must run where ${svc.database.primary}'s data files are: give ` +
            `mysqlServers.${svc.database.primary}.sshHost (its host ${server.host} is not the worker's)`,
        });
    }
    if (svc.backup && !svc.database) {
      ctx.addIssue({
        code: 'custom',
        path: at('backup', 'databases'),
        message: 'backing up databases needs a database.primary to dump',
      });
    }
    if (svc.vip) {
      ref('sshHosts', svc.vip.primaryHost, at('vip', 'primaryHost'));
      ref('sshHosts', svc.vip.drHost, at('vip', 'drHost'));
    }
    svc.backup?.paths?.forEach((p, j) => ref('sshHosts', p.host, at('backup', 'paths', j, 'host')));
    if (svc.restoreTest) {
      ref('mysqlServers', svc.restoreTest.scratchServer, at('restoreTest', 'scratchServer'));
      const clash = productionClash(inv, svc.restoreTest.scratchServer);
      if (clash)
        ctx.addIssue({
          code: 'custom',
          path: at('restoreTest', 'scratchServer'),
          message:
            `${clash}: a restore writes restore_* databases there with sql_log_bin = 0 (and a point-in-time ` +
            `replay applies binlog events); name a server that is no service's primary, replica or drServer`,
        });
      // A restoreTest input names its point-in-time queries: one name, one query.
      const names = new Set<string>();
      (['queries', 'pointInTimeQueries'] as const).forEach((list) =>
        (Array.isArray(svc.restoreTest![list]) ? svc.restoreTest![list] : []).forEach((q, j) => {
          if (!isRecord(q) || typeof q.name !== 'string') return;
          if (names.has(q.name))
            ctx.addIssue({
              code: 'custom',
              path: at('restoreTest', list, j, 'name'),
              message: `duplicate query name "${q.name}"`,
            });
          names.add(q.name);
        }),
      );
    }
    if (svc.drCompute && inv.regions && svc.drCompute.region !== inv.regions.dr) {
      ctx.addIssue({
        code: 'custom',
        path: at('drCompute', 'region'),
        message: `DR compute must be in the DR region ${inv.regions.dr}`,
      });
    }
  });
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every production member of every service (its primary, replica and drServer), as the inventory names them. */
export function productionMembers(
  services: readonly Pick<Service, 'name' | 'database'>[],
): { server: string; role: 'primary' | 'replica' | 'drServer'; service: string }[] {
  return services.flatMap((svc) =>
    (['primary', 'replica', 'drServer'] as const).flatMap((role) => {
      const server: unknown = isRecord(svc.database) ? svc.database[role] : undefined;
      return typeof server === 'string' ? [{ server, role, service: svc.name }] : [];
    }),
  );
}

/** The addresses a server is reached at (the worker's route and its replication address), local names as one host. */
function addressesOf(server: unknown): string[] {
  if (!isRecord(server) || typeof server.host !== 'string') return [];
  const port = server.port === undefined ? 3306 : Number(server.port);
  if (!Number.isInteger(port)) return [];
  const at = (host: string, p: number) => `${LOCAL_HOSTS.has(host) ? 'localhost' : host.toLowerCase()}:${p}`;
  const r = isRecord(server.replication) ? server.replication : {};
  const rPort = r.port === undefined ? port : Number(r.port);
  return [at(server.host, port), at(typeof r.host === 'string' ? r.host : server.host, rPort)];
}

/**
 * Why `scratch` is a production member (the same name, or the same host:port as one), or null. A scratch server
 * takes restore_* databases written with sql_log_bin = 0 and point-in-time replays: on a member they would be
 * writes no replica sees (or errant transactions), beside the real databases.
 */
export function productionClash(inv: Pick<Inventory, 'services' | 'mysqlServers'>, scratch: string): string | null {
  const servers: Record<string, unknown> = inv.mysqlServers;
  const mine = addressesOf(servers[scratch]);
  for (const m of productionMembers(inv.services)) {
    if (m.server === scratch) return `${scratch} is the ${m.role} of ${m.service}`;
    const same = addressesOf(servers[m.server]).find((a) => mine.includes(a));
    if (same) return `${scratch} is at ${same}, the address of ${m.server}, the ${m.role} of ${m.service}`;
  }
  return null;
}

/** The cross-reference check reads these shapes; wherever they hold it can run, whatever else is wrong. */
function referencesReadable(v: unknown): boolean {
  if (!isRecord(v) || !isRecord(v.mysqlServers) || !isRecord(v.sshHosts)) return false;
  if (v.regions !== undefined && !isRecord(v.regions)) return false;
  if (!Array.isArray(v.services) || !Object.values(v.mysqlServers).every(isRecord)) return false;
  return v.services.every(
    (svc) =>
      isRecord(svc) &&
      ['database', 'vip', 'restoreTest', 'drCompute', 'rds', 'backup'].every(
        (k) => svc[k] === undefined || isRecord(svc[k]),
      ) &&
      (!isRecord(svc.backup) ||
        svc.backup.paths === undefined ||
        (Array.isArray(svc.backup.paths) && svc.backup.paths.every(isRecord))),
  );
}

export type Inventory = z.infer<typeof inventorySchema>;
export type Service = Inventory['services'][number];
export type MysqlServer = Inventory['mysqlServers'][string];
export type SshHost = Inventory['sshHosts'][string];

/** Where other servers (and the application) reach `server`: its replication address, else the worker's host/port. */
export function replicationAddress(server: Pick<MysqlServer, 'host' | 'port' | 'replication'>): {
  host: string;
  port: number;
} {
  return { host: server.replication?.host ?? server.host, port: server.replication?.port ?? server.port };
}

/** The RTO/RPO a service is held to: its tier's defaults unless the inventory overrides them. */
export function targetsFor(svc: Pick<Service, 'tier' | 'targets'>): { rtoSeconds: number; rpoSeconds: number } {
  const defaults = DEFAULT_TIER_TARGETS[svc.tier];
  return svc.targets ? { rtoSeconds: svc.targets.rto, rpoSeconds: svc.targets.rpo } : defaults;
}

/** Every problem in a candidate inventory, one line each, named by path ("services.0.dns.ttl: ..."). */
export function inventoryProblems(error: z.ZodError): string[] {
  return error.issues.map((issue) => `${issue.path.length ? issue.path.join('.') : '(root)'}: ${issue.message}`);
}

export class InventoryError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: ${problems.length} problem(s) in the inventory:\n  - ${problems.join('\n  - ')}`);
    this.name = 'InventoryError';
  }
}

/** Validate an already-parsed document. Throws InventoryError listing every problem. */
export function parseInventory(doc: unknown, source = 'inventory'): Inventory {
  const result = inventorySchema.safeParse(doc);
  if (!result.success) {
    const problems = inventoryProblems(result.error);
    // An int or format failure stops zod's refinements: run the cross-checks on the document itself, each where
    // the sections it reads are readable.
    const issues: ReferenceIssues = {
      addIssue({ path, message }) {
        const line = `${path.join('.')}: ${message}`;
        if (!problems.includes(line)) problems.push(line);
      },
    };
    if (isRecord(doc)) crossChecks(doc as Inventory, issues);
    throw new InventoryError(source, problems);
  }
  return result.data;
}
