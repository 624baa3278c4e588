/** The inventory's building blocks: tiers, durations, names, ports, secret references, approvers, hosts, servers. */
import { z } from 'zod';

export const TIERS = ['critical', 'important', 'normal'] as const;
export type Tier = (typeof TIERS)[number];

/** "90s", "15m", "4h", "7d" → seconds. Plain numbers are seconds. */
export const duration = z.union([z.number().int().nonnegative(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') return value;
  const match = /^(\d+)\s*(s|m|h|d)$/.exec(value.trim());
  if (!match) {
    ctx.addIssue({ code: 'custom', message: `expected a duration like "90s", "15m", "4h" or "7d", got "${value}"` });
    return z.NEVER;
  }
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[match[2] as 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
});

export const name = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,62}$/, 'lower-case letters, digits and dashes, starting with a letter');
// A number, or digits (a quoted port); never true (1) or [22] (22), which coercion would take.
const port = z
  .union([z.number(), z.string().regex(/^\d+$/, 'a port number').transform(Number)])
  .pipe(z.number().int().min(1).max(65535));
export const region = z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'an AWS region such as us-east-1');

export const secretRef = z.union([
  z.object({ env: z.string().min(1) }).strict(),
  z.object({ file: z.string().min(1) }).strict(),
]);
export type SecretRef = z.infer<typeof secretRef>;

/**
 * A webhook's URL, as a secret reference: such URLs carry tokens (Slack, PagerDuty, a signed path), and a plain value
 * would reach workflow history (describeService's result, the webhook step's input). The activity that POSTs resolves
 * it on the worker from the target's or service's name (config/load.ts resolveWebhookUrl); no workflow sees it.
 */
export const webhookUrl = z.union(
  [z.object({ env: z.string().min(1) }).strict(), z.object({ file: z.string().min(1) }).strict()],
  {
    error: (issue) =>
      typeof issue.input === 'string'
        ? 'a secret reference ({ env: NAME } or { file: path }) holding the URL, never the URL itself: webhook URLs ' +
          'carry tokens, and an inventory value would reach workflow history'
        : undefined,
  },
);

export const tierTargets = z.object({ rto: duration, rpo: duration }).strict();

export const DEFAULT_TIER_TARGETS: Record<Tier, { rtoSeconds: number; rpoSeconds: number }> = {
  critical: { rtoSeconds: 15 * 60, rpoSeconds: 5 * 60 },
  important: { rtoSeconds: 4 * 3600, rpoSeconds: 3600 },
  normal: { rtoSeconds: 24 * 3600, rpoSeconds: 8 * 3600 },
};

/** The key types `ssh-keygen -Y sign` signs with (a FIDO key included). */
const SSH_KEY_TYPES = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
];

/**
 * "<type> <base64 body> [comment]" → "<type> <base64 body>", or null when it is not an OpenSSH public key: a known
 * type whose body decodes and names the same type (catches a truncated or pasted-wrong key at worker start).
 */
export function publicKeyBody(line: string): string | null {
  const m = /^(\S+) ([A-Za-z0-9+/]+={0,2})(?: [^\r\n]*)?$/.exec(line.trim());
  if (!m || !SSH_KEY_TYPES.includes(m[1])) return null;
  let blob: string;
  try {
    blob = atob(m[2]);
  } catch {
    return null;
  }
  // The body starts with the key type again, as an SSH string (a 4-byte length, then the name).
  const header = String.fromCharCode(0, 0, 0, m[1].length) + m[1];
  return blob.startsWith(header) && blob.length > header.length + 16 ? `${m[1]} ${m[2]}` : null;
}

const sshPublicKey = z
  .string()
  .refine((k) => publicKeyBody(k) !== null, 'an OpenSSH public key line, e.g. "ssh-ed25519 AAAAC3Nza… alice@laptop"');

export const approver = z
  .object({
    name,
    email: z.email().optional(),
    /** Under `approvals.policy: signed`, the keys whose signatures count as this approver's (one or more). */
    sshKeys: z.array(sshPublicKey).default([]),
  })
  .strict();

export const notificationTarget = z.discriminatedUnion('kind', [
  z.object({ name, kind: z.literal('webhook'), url: webhookUrl }).strict(),
  z.object({ name, kind: z.literal('sns'), region, topicArn: z.string().startsWith('arn:') }).strict(),
]);

/** A host drbook reaches over SSH; its host key is pinned, never learned on first use. */
export const sshHost = z
  .object({
    host: z.string().min(1),
    port: port.default(22),
    user: z.string().min(1),
    privateKey: secretRef,
    hostKey: z.union([
      z
        .object({ fingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'an OpenSSH SHA256 fingerprint') })
        .strict(),
      z.object({ knownHostsFile: z.string().min(1) }).strict(),
    ]),
    /** Prepended to every command, e.g. "sudo -n" or "ip netns exec dr". */
    commandPrefix: z.string().optional(),
  })
  .strict();

/** A MySQL/MariaDB server drbook connects to as its own administrative user. */
export const mysqlServer = z
  .object({
    host: z.string().min(1),
    port: port.default(3306),
    user: z.string().min(1),
    password: secretRef,
    /** The SSH host this server runs on (for the VIP and file-level work: mariabackup runs there). */
    sshHost: name.optional(),
    /**
     * The server's unix socket on its own host: tools that run on the host (mariabackup) connect through it,
     * as an SRE on the box would, instead of over TCP to `host`.
     */
    socket: z.string().startsWith('/', "an absolute path on the server's host").optional(),
    /**
     * The address OTHER servers replicate from this one at (CHANGE MASTER ... MASTER_HOST/MASTER_PORT), and what a
     * replica's Master_Host:Master_Port is matched against; also the address the application webhook is given.
     * host/port above are the worker's own route (a bastion, a proxy, an admin network); omitted fields default to
     * them.
     */
    replication: z
      .object({ host: z.string().min(1).optional(), port: port.optional() })
      .strict()
      .refine((r) => r.host !== undefined || r.port !== undefined, 'a host, a port, or both')
      .optional(),
  })
  .strict();

export const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '::1']);

/**
 * Where a tool that reads a server's data files (mariabackup) must run: on the server's `sshHost` when it has one
 * (the data files are there), on the worker itself only when the server has no sshHost and its host is the
 * worker's own (127.0.0.1 / localhost / ::1); otherwise nowhere (null).
 */
export function dataFilesHost(
  server: Pick<z.infer<typeof mysqlServer>, 'host' | 'sshHost'>,
): { ssh: string } | 'worker' | null {
  if (server.sshHost) return { ssh: server.sshHost };
  return LOCAL_HOSTS.has(server.host) ? 'worker' : null;
}

export const tagFilter = z.record(z.string().min(1), z.string());
