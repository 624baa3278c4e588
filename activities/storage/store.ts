/**
 * What a backup destination is (BackupStore) and what writing to one gives back (BackupWriter), for both media:
 * a file-system directory (file-store.ts) and an S3 bucket (s3-store.ts).
 */
import { type Readable, type Writable } from 'node:stream';
import { type ObjectLockMode } from '@aws-sdk/client-s3';
import { type BackupCopy, type BackupDestinationName, type RetentionPolicy } from '../../contract';

/** S3 multipart: 8 MiB parts, two in flight per destination, so memory stays flat however big the dump. */
export const PART_SIZE = 8 * 1024 * 1024;
export const QUEUE_SIZE = 2;

/** S3 Object Lock on a copy, as the manifest records it (contract BackupCopy.objectLock). */
export type CopyLock = NonNullable<BackupCopy['objectLock']>;

/** Server-side encryption of a copy (destination `encryption`): SSE-KMS under the destination's key. */
export type CopyEncryption = NonNullable<BackupCopy['encryption']>;

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
export function backupOf(key: string): { root: string; id: string } | null {
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

/** One copy an upload wrote (not yet verified: verifyCopy reads each back, adding size, SHA-256 and the time). */
export type WrittenCopy = Omit<BackupCopy, 'size' | 'sha256' | 'verifiedAt'>;

/**
 * The copies one upload wrote, as the manifest records them: each destination, where the object landed, and what
 * its writer's finish() reported (S3 version, Object Lock, encryption). `locations` and `finished` follow `targets`.
 */
export function writtenCopies(
  targets: BackupStore[],
  locations: string[],
  finished: Awaited<ReturnType<BackupWriter['finish']>>[],
): WrittenCopy[] {
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
