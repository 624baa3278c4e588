/** A service's `backup` and `restoreTest` sections: destinations, file trees, retention, the restore test. */
import { z } from 'zod';
import { fileTreeId } from '../backup';
import { PLAIN_DATABASE_NAME } from '../names';
import { duration, name, tagFilter, region } from './fields';

/** The forms of a KMS key's name: key or alias ARN, alias/<name>, key id (mrk-: a multi-Region key). */
const KMS_KEY_FORMS = [
  /arn:aws[a-z-]*:kms:[a-z]{2}(-[a-z]+)+-\d:\d{12}:(key|alias)\/[\w/+=,.@-]+/,
  /alias\/[\w/+=,.@-]+/,
  /(mrk-)?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}/,
  /mrk-[0-9a-f]{32}/,
];

/** A KMS key: key id, key ARN, alias name or alias ARN (of the region it is used in: keys never leave theirs). */
export const kmsKeyId = z
  .string()
  .regex(
    new RegExp(`^(${KMS_KEY_FORMS.map((form) => form.source).join('|')})$`),
    'a KMS key id, key ARN, alias/<name> or alias ARN',
  );

/**
 * An offline destination: reachable only for its copy window (an air-gapped account or bucket whose access is opened
 * around the nightly backup, a disk mounted for it), so a compromised worker outside the window cannot reach it.
 * drbook does not open or close the window; it counts the destination for 3-2-1-1 only while it holds a copy verified
 * within `verifiedWithin` (a window that stopped opening stops counting). docs/backup.md.
 */
const offlineDestination = z
  .object({ verifiedWithin: duration.prefault('7d') })
  .strict()
  .optional();

const s3Destination = z
  .object({
    region,
    bucket: z.string().min(3),
    prefix: z.string().default(''),
    /** S3-compatible endpoint (the local stack's streaming store); omit for AWS. */
    endpoint: z.url().optional(),
    /**
     * Immutable copies: every object written here carries S3 Object Lock retention (mode as given, period from the
     * backup policy), so credentials that can write the bucket cannot delete or overwrite a backup before it expires.
     * The bucket must have Object Lock enabled (checked before any upload). governance: a principal granted
     * s3:BypassGovernanceRetention can still remove it; compliance: nobody can, not even the account root.
     */
    objectLock: z
      .object({ mode: z.enum(['governance', 'compliance']) })
      .strict()
      .optional(),
    /**
     * Encryption at rest: every object written here is stored with SSE-KMS under this key (of the destination's
     * region). S3 decrypts for callers allowed kms:Decrypt on it, so a restore by hand stays `aws s3 cp`.
     */
    encryption: z.object({ kmsKeyId }).strict().optional(),
    offline: offlineDestination,
  })
  .strict();

/** An absolute path on a host: no `..`, no control characters (it names a directory a remote shell cds into). */
const hostPath = z
  .string()
  .startsWith('/', 'an absolute path on the host')
  .refine((p) => ![...p].some((c) => c < ' ' || c === '\x7f'), 'no control characters')
  .refine((p) => !p.split('/').includes('..'), 'no ".." component')
  .refine((p) => p === '/' || !p.endsWith('/'), 'no trailing "/"');

/**
 * An exclude pattern, relative to the tree's root and anchored there ("cache", "tmp/*.part", "*.swp": `*` matches
 * "/" too). Given to tar as --exclude=./<pattern> and to find as -path ./<pattern>: both
 * read it with fnmatch, so what is excluded from the archive is excluded from its per-file list.
 */
const excludePattern = z
  .string()
  .min(1)
  .regex(
    /^[A-Za-z0-9_.*?+@,=~ -][A-Za-z0-9_.*?+@,=~ /-]*$/,
    'a glob relative to the tree (letters, digits, _.*?+@,=~ -/)',
  )
  .refine((p) => !p.split('/').includes('..'), 'no ".." component');

const backupPath = z.object({ host: name, path: hostPath, exclude: z.array(excludePattern).default([]) }).strict();

export const backup = z
  .object({
    // Each name reaches mariadb-dump's argument list (and names restore_* scratch databases): a plain identifier.
    databases: z
      .array(
        z
          .string()
          .regex(
            PLAIN_DATABASE_NAME,
            'a plain database name (letters, digits, _ $ -; not starting with -), 1-64 chars',
          ),
      )
      .min(1),
    volumeTags: tagFilter.optional(),
    /**
     * File trees on the service's hosts, backed up over SSH with GNU tar's listed-incremental levels (docs/backup.md).
     */
    paths: z
      .array(backupPath)
      .default([])
      .superRefine((paths, ctx) => {
        const seen = new Map<string, number>();
        paths.forEach((p, j) => {
          const id = fileTreeId(p);
          if (seen.has(id))
            ctx.addIssue({
              code: 'custom',
              path: [j, 'path'],
              message: `${p.host}:${p.path} has the same tree id "${id}" as paths.${seen.get(id)}: one tree, one chain`,
            });
          seen.set(id, j);
        });
      }),
    /**
     * When a file tree gets a full (level 0) backup: the first backup of each day, ISO week or month; the others
     * are `between`: differential (everything changed since the chain's full) or incremental (since the previous
     * backup of any level). `stateDir` on each host keeps tar's snapshot (.snar) files between runs.
     */
    files: z
      .object({
        full: z.enum(['daily', 'weekly', 'monthly']).default('weekly'),
        between: z.enum(['differential', 'incremental']).default('differential'),
        stateDir: hostPath.default('/var/lib/drbook'),
      })
      .strict()
      .prefault({}),
    destinations: z
      .object({
        local: z
          .object({ path: z.string().min(1), offline: offlineDestination })
          .strict()
          .optional(),
        primary: s3Destination.optional(),
        offsite: s3Destination.optional(),
      })
      .strict(),
    archive: z
      .object({
        standardIaAfter: duration.prefault('30d'),
        glacierAfter: duration.prefault('90d'),
        deepArchiveAfter: duration.prefault('365d'),
        expireAfter: duration.prefault('2555d'),
      })
      .strict()
      .prefault({}),
    /** Also a physical backup (mariabackup, streamed), for services whose RTO a logical restore cannot meet. */
    physical: z.boolean().default(false),
    /** Archive closed binary logs every run (point-in-time recovery; the backup RPO becomes their age). */
    binlogArchive: z.boolean().default(false),
    /**
     * Which live member the dump and the physical copy read from: the one writable now (default), or a healthy
     * replica of it (both threads running). Either way a fenced or read-only-and-stale member is refused.
     */
    source: z.enum(['writable', 'replica']).default('writable'),
    retention: z
      .object({
        daily: z.number().int().min(1).default(7),
        weekly: z.number().int().min(0).default(4),
        monthly: z.number().int().min(0).default(12),
      })
      .strict()
      .prefault({}),
  })
  .strict();

const validationQuery = z
  .object({ name: z.string().min(1).max(200), sql: z.string().min(1), expect: z.union([z.string(), z.number()]) })
  .strict();

export const restoreTest = z
  .object({
    scratchServer: name,
    /** Checked after every restore (and at the point of a point-in-time replay). */
    queries: z.array(validationQuery).default([]),
    /** Checked only at a point in time, when a restoreTest input names them (pointInTime.queries). */
    pointInTimeQueries: z.array(validationQuery).default([]),
  })
  .strict();
