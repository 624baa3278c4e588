/**
 * Backup destinations as one interface over two media: a file-system directory and an S3
 * bucket (AWS, or the local stack's streaming store). Writers stream: nothing is buffered
 * beyond an S3 part or two, and nothing looks complete until it is (a `.partial` file is
 * renamed on commit; a multipart upload only becomes an object when it completes).
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
  type ObjectLockMode,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { type Inventory, type SecretRef, type Service, ErrorType, type BackupDestinationName } from '../../contract';
import { resolvePath, resolveSecret } from '../../config/load';
import { gfsClass, gfsLockDays, type RetentionPolicy } from '../../workflows/backup-policy';
import { s3ClientFor, type AwsConnection } from '../aws/clients';
import { aws, awsFailure, driverFailure, failure } from '../errors';
import { ATTEMPT, MANIFEST_FILE } from './layout';
import { ManifestKeyring } from './manifest';

/** S3 multipart: 8 MiB parts, two in flight per destination, so memory stays flat however big the dump. */
export const PART_SIZE = 8 * 1024 * 1024;
export const QUEUE_SIZE = 2;

/** S3 Object Lock on a copy: who may shorten it (GOVERNANCE: holders of the bypass permission; COMPLIANCE: nobody). */
export interface CopyLock {
  mode: ObjectLockMode;
  /** ISO 8601, UTC: the object version cannot be deleted or overwritten before this. */
  retainUntil: string;
}

/** Server-side encryption of a copy (destination `encryption`): SSE-KMS under the destination's key. */
export interface CopyEncryption {
  algorithm: 'aws:kms';
  kmsKeyId: string;
}

/**
 * How a destination locks what it writes: the mode, and how many days from the write. An object of a backup is
 * locked for its GFS class's period under `retention` (a weekly for the weekly span, a monthly for the monthly one);
 * anything else (archived binlogs) for `days`.
 */
export interface LockPolicy {
  mode: ObjectLockMode;
  days: number;
  retention?: RetentionPolicy;
}

/** `<service>/<kind>/<backupId>/…` → that backup's kind root and id; null for objects of no backup (binlogs). */
function backupOf(key: string): { root: string; id: string } | null {
  const m = /^([^/]+\/(?:logical|physical)\/)(\d{8}T\d{6}Z)\//.exec(key);
  return m ? { root: m[1], id: m[2] } : null;
}

/**
 * When a lock taken now for `days` ends: at the UTC midnight after now + days, so every object of one backup
 * written the same day shares one date (and a retry on the same day sets the same one).
 */
export function retainUntil(nowMs: number, days: number): string {
  const end = new Date(nowMs + days * 86400_000);
  return new Date(Date.UTC(end.getUTCFullYear(), end.getUTCMonth(), end.getUTCDate() + 1)).toISOString();
}

export interface BackupWriter {
  /** Where the bytes go; backpressure is honoured. */
  readonly stream: Writable;
  /**
   * End the stream and make the bytes durable (an S3 object is complete; a file is fsynced but still .partial).
   * Resolves to the S3 object version written, where the bucket keeps versions, and its Object Lock, if any.
   */
  finish(): Promise<{ versionId?: string; objectLock?: CopyLock; encryption?: CopyEncryption }>;
  /** Make the object visible under its key, once every destination has finished. Returns its location. */
  publish(): Promise<string>;
  /** Throw away whatever was written (a partial file, an unfinished multipart upload). */
  abort(): Promise<void>;
}

/**
 * The copies one upload wrote, as the manifest records them: each destination, where the object landed, and what
 * its writer's finish() reported (S3 version, Object Lock, encryption). `locations` and `finished` follow `targets`.
 */
export function writtenCopies(
  targets: BackupStore[],
  locations: string[],
  finished: Awaited<ReturnType<BackupWriter['finish']>>[],
) {
  return targets.map((s, i) => ({
    destination: s.name,
    kind: s.kind,
    region: s.region,
    offsite: s.offsite,
    location: locations[i],
    ...finished[i],
  }));
}

export interface StoredObject {
  key: string;
  size: number;
}

export interface BackupStore {
  readonly name: BackupDestinationName;
  readonly kind: 'file' | 's3';
  readonly region: string | null;
  readonly offsite: boolean;
  /** "s3://bucket/prefix (us-west-2)" or the directory: how failures name the destination. */
  readonly label: string;
  /** Object Lock on what this destination writes (null: none; the local file system never has one). */
  readonly lock: LockPolicy | null;
  location(key: string): string;
  /** `onError` fires if the destination fails while the writer is still being fed. */
  openWriter(key: string, onError: (err: Error) => void): BackupWriter;
  read(key: string): Promise<Readable>;
  /** Small objects (checksum, manifest), written atomically. */
  put(key: string, body: string): Promise<void>;
  get(key: string): Promise<string | null>;
  list(prefix: string): Promise<StoredObject[]>;
  remove(keys: string[]): Promise<void>;
  /** The latest date until which any version of `keys` is locked, if that is still in the future; else null. */
  lockedUntil(keys: string[], nowMs: number): Promise<string | null>;
  /** Refuse (before anything is written) a destination configured with Object Lock whose bucket has none. */
  checkObjectLock(): Promise<void>;
}

export class FileStore implements BackupStore {
  readonly kind = 'file' as const;
  readonly region = null;
  readonly offsite = false;
  readonly lock = null;
  readonly label: string;

  constructor(
    readonly name: BackupDestinationName,
    private readonly root: string,
  ) {
    this.label = root;
  }

  private file(key: string): string {
    return path.join(this.root, ...key.split('/'));
  }

  location(key: string): string {
    return this.file(key);
  }

  openWriter(key: string, onError: (err: Error) => void): BackupWriter {
    const file = this.file(key);
    const partial = `${file}.partial`;
    const pass = new PassThrough({ highWaterMark: 1024 * 1024 });
    let out: WriteStream | undefined;
    // The directory is created before the first byte arrives; the pass-through holds bytes meanwhile.
    const written = (async () => {
      await mkdir(path.dirname(file), { recursive: true });
      if (pass.destroyed) return; // aborted before the file was opened
      out = createWriteStream(partial);
      pass.pipe(out);
      await once(out, 'close');
      if (out.errored) throw out.errored;
    })();
    written.catch((err: Error) => onError(fileFailure(this.label, err)));
    return {
      stream: pass,
      finish: async () => {
        pass.end();
        await written;
        // Durable before visible: fsync now, rename in publish().
        const fh = await open(partial, 'r+');
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
        return {};
      },
      publish: async () => {
        await rename(partial, file);
        return file;
      },
      abort: async () => {
        pass.destroy();
        // pipe() does not close the file when its source is destroyed.
        out?.destroy();
        await written.catch(() => undefined);
        await rm(partial, { force: true });
      },
    };
  }

  async read(key: string): Promise<Readable> {
    const file = this.file(key);
    try {
      await stat(file);
    } catch {
      throw failure(ErrorType.ResourceNotFound, `${file} does not exist`, { destination: this.name });
    }
    return createReadStream(file, { highWaterMark: 1024 * 1024 });
  }

  async put(key: string, body: string): Promise<void> {
    const file = this.file(key);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(`${file}.partial`, body);
    await rename(`${file}.partial`, file);
  }

  async get(key: string): Promise<string | null> {
    try {
      return await readFile(this.file(key), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async list(prefix: string): Promise<StoredObject[]> {
    const dir = this.file(prefix);
    const out: StoredObject[] = [];
    const walk = async (abs: string, rel: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(abs, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      for (const e of entries) {
        const childRel = `${rel}${e.name}`;
        if (e.isDirectory()) await walk(path.join(abs, e.name), `${childRel}/`);
        else out.push({ key: childRel, size: (await stat(path.join(abs, e.name))).size });
      }
    };
    await walk(dir, prefix.endsWith('/') ? prefix : `${prefix}/`);
    return out.sort((a, b) => a.key.localeCompare(b.key));
  }

  async remove(keys: string[]): Promise<void> {
    const dirs = new Set<string>();
    for (const key of keys) {
      await rm(this.file(key), { force: true });
      dirs.add(path.dirname(this.file(key)));
    }
    // Empty backup directories go too, so the tree lists only backups that exist.
    // Deepest first, then each parent once it is empty (an attempt's directory, then its backup's).
    const all = new Set<string>();
    for (const dir of dirs)
      for (let d = dir; d.startsWith(this.root) && d !== this.root; d = path.dirname(d)) all.add(d);
    for (const dir of [...all].sort((a, b) => b.length - a.length)) await rmdir(dir).catch(() => undefined);
  }

  lockedUntil(): Promise<string | null> {
    return Promise.resolve(null);
  }

  checkObjectLock(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * The backup folder of an attempt's object (`<backup>/a<n>-<hex>/<file>` → `<backup>/`), where the uploads of
 * the same backup's earlier attempts live; null for any other key (binlogs, manifests), whose folder other
 * runbooks may be uploading into at the same time.
 */
function earlierAttemptsFolder(key: string): string | null {
  const attemptDir = path.posix.dirname(key);
  if (!ATTEMPT.test(path.posix.basename(attemptDir))) return null;
  return `${path.posix.dirname(attemptDir)}/`;
}

function fileFailure(label: string, err: Error): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const message = `local destination ${label}: ${err.message}`;
  if (code === 'EACCES' || code === 'EPERM') return failure(ErrorType.AccessDenied, message, { destination: label });
  return driverFailure(code, ErrorType.FileSystemError, message, { destination: label });
}

export class S3Store implements BackupStore {
  readonly kind = 's3' as const;
  readonly label: string;

  constructor(
    readonly name: BackupDestinationName,
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly prefix: string,
    readonly region: string,
    readonly offsite: boolean,
    readonly lock: LockPolicy | null = null,
    private readonly kmsKeyId: string | null = null,
  ) {
    this.label = `s3://${bucket}/${prefix} (${region})`;
  }

  /**
   * The Object Lock parameters of a write, and the explicit checksum S3 demands with them (the client otherwise
   * sends checksums only when required, for the S3-compatible stores).
   */
  private async lockParams(key: string): Promise<{
    ObjectLockMode?: ObjectLockMode;
    ObjectLockRetainUntilDate?: Date;
    ChecksumAlgorithm?: 'CRC32';
  }> {
    if (!this.lock) return {};
    const until = retainUntil(Date.now(), await this.lockDays(key));
    return { ObjectLockMode: this.lock.mode, ObjectLockRetainUntilDate: new Date(until), ChecksumAlgorithm: 'CRC32' };
  }

  private readonly classDays = new Map<string, Promise<number>>();

  /**
   * How long `key` is locked: for an object of a backup, its GFS class's period in THIS destination (the class
   * retention keeps it as: the first verified backup of its month or week here), read once per backup; else the
   * daily period. Decided at the first write, since S3 lets a lock be extended but never shortened.
   */
  private lockDays(key: string): Promise<number> {
    const { days, retention } = this.lock!;
    const backup = backupOf(key);
    if (!backup || !retention) return Promise.resolve(days);
    const id = backup.root + backup.id;
    let classed = this.classDays.get(id);
    if (!classed) {
      classed = this.list(backup.root).then((objects) => {
        const verified = objects
          .filter((o) => o.key.endsWith(`/${MANIFEST_FILE}`))
          .map((o) => o.key.slice(backup.root.length).split('/')[0]);
        return gfsLockDays(gfsClass(backup.id, verified, retention), retention);
      });
      classed.catch(() => this.classDays.delete(id));
      this.classDays.set(id, classed);
    }
    return classed;
  }

  /** SSE-KMS parameters of every write to an encrypting destination. */
  private encryptionParams(): { ServerSideEncryption?: 'aws:kms'; SSEKMSKeyId?: string } {
    return this.kmsKeyId ? { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: this.kmsKeyId } : {};
  }

  async checkObjectLock(): Promise<void> {
    if (!this.lock) return;
    const resource = `S3 bucket ${this.bucket} (${this.region}) Object Lock configuration`;
    let enabled: string | undefined;
    try {
      const out = await this.client.send(new GetObjectLockConfigurationCommand({ Bucket: this.bucket }));
      enabled = out.ObjectLockConfiguration?.ObjectLockEnabled;
    } catch (err) {
      if ((err as Error).name !== 'ObjectLockConfigurationNotFoundError') throw awsFailure(err, resource);
    }
    if (enabled !== 'Enabled')
      throw failure(
        ErrorType.NotConfigured,
        `${this.name} backup destination ${this.label} is configured with objectLock (${this.lock.mode.toLowerCase()}), ` +
          `but bucket ${this.bucket} has no Object Lock enabled: nothing was uploaded (create the bucket with ` +
          'Object Lock, or remove objectLock from the destination)',
        { destination: this.name, bucket: this.bucket },
      );
  }

  async lockedUntil(keys: string[], nowMs: number): Promise<string | null> {
    if (!this.lock) return null;
    let latest: string | null = null;
    for (const key of keys) {
      for (const versionId of await this.versions(key)) {
        const head = await aws(this.location(key), () =>
          this.client.send(
            new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, VersionId: versionId }),
          ),
        );
        const until = head.ObjectLockRetainUntilDate?.toISOString();
        if (until && Date.parse(until) > nowMs && (!latest || until > latest)) latest = until;
      }
    }
    return latest;
  }

  /** Every version id of exactly `key` (delete markers aside): a locked bucket always keeps versions. */
  private async versions(key: string): Promise<string[]> {
    const out: string[] = [];
    let keyMarker: string | undefined;
    let versionMarker: string | undefined;
    do {
      const page = await aws(this.location(key), () =>
        this.client.send(
          new ListObjectVersionsCommand({
            Bucket: this.bucket,
            Prefix: this.prefix + key,
            KeyMarker: keyMarker,
            VersionIdMarker: versionMarker,
          }),
        ),
      );
      for (const v of page.Versions ?? []) if (v.Key === this.prefix + key && v.VersionId) out.push(v.VersionId);
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      versionMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
    } while (keyMarker);
    return out;
  }

  location(key: string): string {
    return `s3://${this.bucket}/${this.prefix}${key}`;
  }

  openWriter(key: string, onError: (err: Error) => void): BackupWriter {
    const body = new PassThrough({ highWaterMark: 1024 * 1024 });
    let upload: Upload | undefined;
    let aborted = false;
    // The lock's period may need one listing (the backup's GFS class): the upload starts once it is known, the
    // stream buffers (with backpressure) until then.
    const locked = this.lockParams(key);
    const done = locked.then((lock) => {
      if (aborted) throw new Error(`upload of ${this.location(key)} aborted`);
      upload = new Upload({
        client: this.client,
        params: {
          Bucket: this.bucket,
          Key: this.prefix + key,
          Body: body,
          ContentType: 'application/zstd',
          ...lock,
          ...this.encryptionParams(),
        },
        partSize: PART_SIZE,
        queueSize: QUEUE_SIZE,
        // A failed upload is aborted, so no orphaned parts are billed (the lifecycle rule catches crashes).
        leavePartsOnError: false,
      });
      return aws(this.location(key), () => upload!.done());
    });
    done.catch((err: Error) => onError(err));
    let ended = false;
    return {
      stream: body,
      finish: async () => {
        ended = true;
        body.end();
        const out = await done;
        // An earlier attempt cut off mid-upload could not abort its upload: its parts go now, not at the
        // lifecycle rule's next pass. Each attempt writes its own key, so the earlier attempts' uploads are
        // found under this backup's folder. Best effort: the object itself is complete either way.
        await this.abortUnfinishedUploads(key).catch(() => undefined);
        const backupFolder = earlierAttemptsFolder(key);
        if (backupFolder) await this.abortUnfinishedUploadsUnder(backupFolder).catch(() => undefined);
        const versionId = (out as { VersionId?: string }).VersionId;
        const lock = await locked;
        const objectLock =
          lock.ObjectLockMode && lock.ObjectLockRetainUntilDate
            ? { mode: lock.ObjectLockMode, retainUntil: lock.ObjectLockRetainUntilDate.toISOString() }
            : undefined;
        const encryption = this.kmsKeyId ? { algorithm: 'aws:kms' as const, kmsKeyId: this.kmsKeyId } : undefined;
        return {
          ...(versionId ? { versionId } : {}),
          ...(objectLock ? { objectLock } : {}),
          ...(encryption ? { encryption } : {}),
        };
      },
      publish: async () => this.location(key),
      abort: async () => {
        // Once the body has ended the last request may be in flight: let it settle rather than race it.
        if (!ended) {
          aborted = true;
          await upload?.abort().catch(() => undefined);
          body.destroy();
        }
        await done.catch(() => undefined);
        // Whatever got stored under the key is not a backup (no manifest will name it): take it back. The key
        // is this writer's own (each backup attempt writes its own), so no other attempt's copy goes with it.
        await this.remove([key]).catch(() => undefined);
      },
    };
  }

  async read(key: string): Promise<Readable> {
    const out = await aws(this.location(key), () =>
      this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key })),
    );
    return out.Body as Readable;
  }

  /** Abort every multipart upload of exactly `key` still in progress; returns how many there were. */
  async abortUnfinishedUploads(key: string): Promise<number> {
    return this.abortUploads(key, (k) => k === this.prefix + key);
  }

  /** Abort every multipart upload still in progress under `folder` (one backup's attempts). */
  async abortUnfinishedUploadsUnder(folder: string): Promise<number> {
    return this.abortUploads(folder, () => true);
  }

  private async abortUploads(prefix: string, matches: (key: string) => boolean): Promise<number> {
    const listed = await aws(this.location(prefix), () =>
      this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix + prefix })),
    );
    const unfinished = (listed.Uploads ?? []).filter((u) => u.Key && u.UploadId && matches(u.Key));
    for (const u of unfinished) {
      await aws(this.location(prefix), () =>
        this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId })),
      );
    }
    return unfinished.length;
  }

  async put(key: string, body: string): Promise<void> {
    const lock = await this.lockParams(key);
    await aws(this.location(key), () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.prefix + key,
          Body: body,
          ContentType: key.endsWith('.json') ? 'application/json' : 'text/plain',
          ...lock,
          ...this.encryptionParams(),
        }),
      ),
    );
  }

  async get(key: string): Promise<string | null> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      return await out.Body!.transformToString();
    } catch (err) {
      if ((err as Error).name === 'NoSuchKey') return null;
      throw awsFailure(err, this.location(key));
    }
  }

  async list(prefix: string): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    let token: string | undefined;
    do {
      const page = await aws(this.location(prefix), () =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token }),
        ),
      );
      for (const o of page.Contents ?? [])
        out.push({ key: o.Key!.slice(this.prefix.length), size: Number(o.Size ?? 0) });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out.sort((a, b) => a.key.localeCompare(b.key));
  }

  async remove(keys: string[]): Promise<void> {
    // One DELETE per key: S3-compatible stores (s3proxy) refuse the batch call's checksum header.
    for (const key of keys) {
      // A locked bucket keeps versions: a plain DELETE would only hide the object behind a delete marker while
      // its bytes stay (and are billed). Retention removes each version, which S3 allows once its lock expired.
      const versions = this.lock ? await this.versions(key) : [undefined];
      for (const versionId of versions)
        await aws(this.location(key), () =>
          this.client.send(
            new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, VersionId: versionId }),
          ),
        );
    }
  }
}

/** Every backup destination of every service, built from the inventory on the worker. */
export class BackupStores {
  private readonly clients = new Map<string, S3Client>();
  /** The worker's backup-signing keyring: manifests are signed when written and verified before any restore. */
  readonly keyring: ManifestKeyring;

  constructor(
    private readonly inventory: Inventory,
    private readonly baseDir: string,
    private readonly connection: AwsConnection,
    secret: (ref: SecretRef) => string = (ref) => resolveSecret(ref, baseDir),
  ) {
    this.keyring = new ManifestKeyring(inventory.backupSigning, secret);
  }

  service(name: string): Service & { backup: NonNullable<Service['backup']> } {
    const svc = this.inventory.services.find((s) => s.name === name);
    if (!svc) throw failure(ErrorType.UnknownService, `unknown service "${name}"`, { service: name });
    if (!svc.backup) throw failure(ErrorType.NotConfigured, `service ${name} has no backup section in the inventory`);
    return svc as Service & { backup: NonNullable<Service['backup']> };
  }

  /** The destinations a service's backups go to, in a fixed order: local, primary, offsite. */
  forService(name: string): BackupStore[] {
    const { destinations, retention } = this.service(name).backup;
    const stores: BackupStore[] = [];
    if (destinations.local) stores.push(new FileStore('local', resolvePath(this.baseDir, destinations.local.path)));
    for (const which of ['primary', 'offsite'] as const) {
      const d = destinations[which];
      if (!d) continue;
      const offsite = d.region === this.inventory.regions.dr;
      // A backup is locked for its GFS class's keep period from the write (lockDays); anything else for a day's.
      const lock: LockPolicy | null = d.objectLock
        ? { mode: d.objectLock.mode === 'compliance' ? 'COMPLIANCE' : 'GOVERNANCE', days: retention.daily, retention }
        : null;
      const kmsKeyId = d.encryption?.kmsKeyId ?? null;
      stores.push(new S3Store(which, this.client(d), d.bucket, d.prefix, d.region, offsite, lock, kmsKeyId));
    }
    return stores;
  }

  store(service: string, destination: BackupDestinationName): BackupStore {
    const store = this.forService(service).find((s) => s.name === destination);
    if (!store) throw failure(ErrorType.NotConfigured, `service ${service} has no ${destination} backup destination`);
    return store;
  }

  private client(d: { region: string; endpoint?: string }): S3Client {
    const key = `${d.endpoint ?? ''}|${d.region}`;
    let client = this.clients.get(key);
    if (!client) {
      client = s3ClientFor(d, this.connection);
      this.clients.set(key, client);
    }
    return client;
  }

  destroy(): void {
    for (const c of this.clients.values()) c.destroy();
    this.clients.clear();
  }
}

/** Before any upload: every destination configured with Object Lock really has it (else NotConfigured, named). */
export async function checkObjectLocks(stores: BackupStore[]): Promise<void> {
  for (const store of stores) await store.checkObjectLock();
}
