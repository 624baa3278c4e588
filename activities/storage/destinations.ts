/**
 * Backup destinations as one interface over two media: a file-system directory and an S3
 * bucket (AWS, or the local stack's streaming store). Writers stream: nothing is buffered
 * beyond an S3 part or two, and nothing looks complete until it is (a `.partial` file is
 * renamed on commit; a multipart upload only becomes an object when it completes).
 */
import { type S3Client } from '@aws-sdk/client-s3';
import { type Inventory, type SecretRef, type Service, ErrorType, type BackupDestinationName } from '../../contract';
import { resolvePath, resolveSecret } from '../../config/load';
import { s3ClientFor, type AwsConnection } from '../aws/clients';
import { failure } from '../errors';
import { ManifestKeyring } from './manifest';

import { FileStore } from './file-store';
import { S3Store } from './s3-store';
import type { BackupStore, LockPolicy } from './store';

export { FileStore } from './file-store';
export { S3Store } from './s3-store';
export {
  PART_SIZE,
  writtenCopies,
  type BackupStore,
  type BackupWriter,
  type CopyEncryption,
  type CopyLock,
  type LockPolicy,
  type StoredObject,
  type WrittenCopy,
} from './store';

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
