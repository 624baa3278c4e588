/**
 * Manifests are authenticated: each `manifest.json` is signed with the worker's Ed25519 backup-signing
 * key (inventory `backupSigning.privateKey`, a secret reference resolved on the worker, never in a
 * bucket) into `manifest.json.sig` beside it, and every restore path reads the manifest through
 * `readVerifiedManifest`, which refuses one whose signature does not verify. Whoever can write the
 * bucket can still delete a backup, but can no longer rewrite its manifest, its `.sha256` or its
 * object into something a restore would load.
 *
 * Ed25519 rather than HMAC: checking a signature needs only the public key, so an operator restoring
 * by hand (openssl, docs/backup.md), an auditor or a DR-region worker can verify a backup without
 * holding anything that could forge one.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { type Inventory, type SecretRef, ErrorType, type BackupManifest } from '../../contract';
import { failure } from '../errors';
import { isBackupObjectKey, manifestKey, signatureKey, type BackupKind } from './layout';

type SigningConfig = Inventory['backupSigning'];

/** The worker's backup-signing keyring: one key signs, it and any older trusted public keys verify. */
export class ManifestKeyring {
  private loaded: { signer: KeyObject; verifiers: { id: string; key: KeyObject }[] } | null = null;

  constructor(
    private readonly config: SigningConfig,
    private readonly secret: (ref: SecretRef) => string,
  ) {}

  /** Keys are read on first use, so a worker that never signs or restores never needs them. */
  private keys() {
    if (this.loaded) return this.loaded;
    if (!this.config)
      throw failure(
        ErrorType.NotConfigured,
        'backupSigning: no backup-signing key in the inventory; manifests cannot be signed or verified',
      );
    let signer: KeyObject;
    try {
      signer = createPrivateKey(this.secret(this.config.privateKey));
    } catch (err) {
      throw failure(ErrorType.NotConfigured, `backupSigning.privateKey: ${(err as Error).message}`);
    }
    if (signer.asymmetricKeyType !== 'ed25519')
      throw failure(
        ErrorType.NotConfigured,
        `backupSigning.privateKey: an Ed25519 key is needed, this is ${signer.asymmetricKeyType}`,
      );
    const verifiers = [createPublicKey(signer)];
    this.config.trustedPublicKeys.forEach((ref, i) => {
      try {
        verifiers.push(createPublicKey(this.secret(ref)));
      } catch (err) {
        throw failure(ErrorType.NotConfigured, `backupSigning.trustedPublicKeys.${i}: ${(err as Error).message}`);
      }
    });
    this.loaded = { signer, verifiers: verifiers.map((key) => ({ id: keyId(key), key })) };
    return this.loaded;
  }

  /** The signature file's content: base64 of the 64-byte Ed25519 signature over the manifest's exact bytes. */
  sign(body: string): string {
    return `${sign(null, Buffer.from(body, 'utf8'), this.keys().signer).toString('base64')}\n`;
  }

  /** The id of the key the signature verifies with, or null. */
  verify(body: string, signatureFile: string): string | null {
    const signature = Buffer.from(signatureFile.trim(), 'base64');
    if (signature.length !== 64) return null;
    const data = Buffer.from(body, 'utf8');
    return this.keys().verifiers.find((v) => verify(null, data, v.key, signature))?.id ?? null;
  }

  keyIds(): string[] {
    return this.keys().verifiers.map((v) => v.id);
  }

  /**
   * Unsigned manifests are accepted only for backups older than `acceptUnsignedBefore` (backups from before signing).
   */
  acceptsUnsigned(backupId: string): boolean {
    const before = this.config?.acceptUnsignedBefore;
    return !!before && backupId < before;
  }
}

/** A key's id: the first 16 hex digits of the SHA-256 of its public key (SubjectPublicKeyInfo, DER). */
export function keyId(key: KeyObject): string {
  const spki = (key.type === 'private' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('hex').slice(0, 16);
}

export interface VerifiedManifest {
  manifest: BackupManifest;
  /** The object the manifest names (this attempt's key, or the single key of a backup from before attempts). */
  objectKey: string;
  /** The key id the signature verified with; null for an unsigned backup accepted by acceptUnsignedBefore. */
  signedBy: string | null;
}

/**
 * A backup's manifest, read from one destination, authenticated and checked for shape. Throws
 * ManifestInvalid (missing, unreadable, not this backup's) or ManifestUnauthenticated (no signature,
 * or one that does not verify with the worker's keyring), naming the destination's location.
 */
/** What reading a manifest needs of a destination (a BackupStore, storage/destinations.ts, has it). */
interface ManifestSource {
  location(key: string): string;
  get(key: string): Promise<string | null>;
}

export async function readVerifiedManifest(
  store: ManifestSource,
  keyring: ManifestKeyring,
  service: string,
  backupId: string,
  kind: BackupKind = 'logical',
): Promise<VerifiedManifest> {
  const key = manifestKey(service, backupId, kind);
  const at = store.location(key);
  const refuse = (type: string, why: string) =>
    ApplicationFailure.create({ type, message: `${at}: ${why}`, nonRetryable: true, details: [{ location: at }] });
  const text = await store.get(key);
  if (text === null) throw refuse(ErrorType.ManifestInvalid, 'missing');
  const signature = await store.get(signatureKey(service, backupId, kind));
  let signedBy: string | null = null;
  if (signature === null) {
    if (!keyring.acceptsUnsigned(backupId))
      throw refuse(
        ErrorType.ManifestUnauthenticated,
        `not signed (no ${store.location(signatureKey(service, backupId, kind))}); an unsigned manifest is ` +
          `accepted only ` +
          'for a backup older than backupSigning.acceptUnsignedBefore in the inventory',
      );
  } else {
    signedBy = keyring.verify(text, signature);
    if (!signedBy)
      throw refuse(
        ErrorType.ManifestUnauthenticated,
        `the signature does not verify with any backup-signing key of this worker (${keyring.keyIds().join(', ')}): ` +
          'the manifest was changed after it was signed, or signed by another key',
      );
  }
  let m: BackupManifest;
  try {
    m = JSON.parse(text) as BackupManifest;
  } catch (err) {
    throw refuse(ErrorType.ManifestInvalid, `not JSON: ${(err as Error).message}`);
  }
  if (m.format !== 'drbook-backup/1')
    throw refuse(ErrorType.ManifestInvalid, `format ${JSON.stringify(m.format)}, expected drbook-backup/1`);
  if (m.id !== backupId || m.service !== service || (m.kind ?? 'logical') !== kind)
    throw refuse(ErrorType.ManifestInvalid, `names backup ${m.service}/${m.id} (${m.kind})`);
  if (!m.object?.sha256 || !Number.isInteger(m.object.size) || !Array.isArray(m.tables) || !m.databases?.length)
    throw refuse(ErrorType.ManifestInvalid, 'lacks object.sha256, object.size, databases or tables');
  if (!isBackupObjectKey(m.object.key, service, backupId, kind))
    throw refuse(
      ErrorType.ManifestInvalid,
      `object.key ${JSON.stringify(m.object.key)} is not an object of this backup`,
    );
  return { manifest: m, objectKey: m.object.key, signedBy };
}

/** The object a restore step was asked to read must be the one the signed manifest names, byte for byte. */
export function requireManifestObject(
  verified: VerifiedManifest,
  store: ManifestSource,
  asked: { size?: number; sha256: string },
): void {
  const { object } = verified.manifest;
  if (object.sha256 !== asked.sha256 || (asked.size !== undefined && object.size !== asked.size))
    throw ApplicationFailure.create({
      type: ErrorType.ManifestInvalid,
      message:
        `${store.location(verified.objectKey)}: the signed manifest names ${object.size} bytes with ` +
        `SHA-256 ${object.sha256}, the step was given ${asked.size ?? '?'} bytes with SHA-256 ${asked.sha256}`,
      nonRetryable: true,
    });
}

/** Backups are never rewritten: refuse an id that already has a manifest in any of the destinations. */
export async function refuseExistingBackup(
  stores: ManifestSource[],
  service: string,
  backupId: string,
  kind: BackupKind,
): Promise<void> {
  for (const store of stores) {
    const key = manifestKey(service, backupId, kind);
    if ((await store.get(key)) !== null)
      throw ApplicationFailure.create({
        type: ErrorType.BackupExists,
        message:
          `${store.location(key)} exists: ${kind} backup ${backupId} of ${service} is already taken; backups ` +
          `are never rewritten (use a new backup id)`,
        nonRetryable: true,
      });
  }
}
