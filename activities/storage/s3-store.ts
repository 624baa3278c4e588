/**
 * An S3 destination (AWS, or the local stack's streaming store): multipart uploads that only become objects when
 * they complete, Object Lock and SSE-KMS where the destination has them.
 */
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
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
import { ErrorType, gfsClass, gfsLockDays, type BackupDestinationName } from '../../contract';
import { aws, awsFailure, failure } from '../errors';
import { ATTEMPT, MANIFEST_FILE } from './layout';
import {
  backupOf,
  PART_SIZE,
  QUEUE_SIZE,
  retainUntil,
  type BackupStore,
  type BackupWriter,
  type LockPolicy,
  type StoredObject,
} from './store';

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
        `${this.name} backup destination ${this.label} is configured with objectLock ` +
          `(${this.lock.mode.toLowerCase()}), ` +
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
