/**
 * Opt-in payload encryption: a PayloadCodec that seals every payload (workflow inputs and
 * results, activity inputs and results, signal and update arguments, queries, memos, heartbeat
 * details) with AES-256-GCM before it leaves the process, so Temporal's history holds
 * ciphertext only. Workers, drctl (its schedules too), the tests and the codec server
 * (cli/codec-server.ts, for the Web UI) all build it from the same keyring:
 *
 *   DRBOOK_PAYLOAD_KEYS=/etc/drbook/payload-keys   a 0600 file, one key a line: "<id> <base64 of 32 bytes>"
 *
 * The first line is the active key: new payloads are sealed with it. Every key in the file
 * opens payloads: rotating is adding a new first line and keeping the old ones until no
 * retained history needs them. Unset, nothing is encrypted (the default).
 *
 * Layout of an encrypted payload: metadata {encoding: "binary/encrypted", "encryption-key-id":
 * <id>, "encryption-cipher": "AES-256-GCM"}; data = 12-byte IV ‖ ciphertext ‖ 16-byte GCM tag,
 * the plaintext being the original Payload (its metadata included) in protobuf, the key id bound
 * in as additional authenticated data.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_KEY = 'encryption-key-id';
export const CIPHER_KEY = 'encryption-cipher';
export const CIPHER = 'AES-256-GCM';
export const PAYLOAD_KEYS_ENV = 'DRBOOK_PAYLOAD_KEYS';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;

const utf8 = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString('utf8') : undefined);
const aad = (keyId: string) => Buffer.from(`drbook-payload/v1:${keyId}`, 'utf8');

/** A keyring problem, or a payload that cannot be opened; the message names the key id or line, never key material. */
export class PayloadKeyError extends Error {
  override name = 'PayloadKeyError';
}

export interface Keyring {
  /** Id of the key new payloads are sealed with. */
  active: string;
  keys: Map<string, Buffer>;
}

/** Parses "<id> <base64 key>" lines (blank lines and # comments ignored); the first key is the active one. */
export function parseKeyring(content: string, source = 'keyring'): Keyring {
  const keys = new Map<string, Buffer>();
  let active: string | undefined;
  content.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const where = `${source} line ${i + 1}`;
    const parts = line.split(/\s+/);
    if (parts.length !== 2) throw new PayloadKeyError(`${where}: expected "<key id> <base64 key>"`);
    const [id, b64] = parts;
    if (!KEY_ID.test(id)) throw new PayloadKeyError(`${where}: key id "${id}" must be 1-64 of A-Z a-z 0-9 . _ -`);
    if (keys.has(id)) throw new PayloadKeyError(`${where}: key id "${id}" appears twice`);
    const key = Buffer.from(b64, 'base64');
    if (key.length !== KEY_BYTES || key.toString('base64').replace(/=+$/, '') !== b64.replace(/=+$/, ''))
      throw new PayloadKeyError(`${where}: key "${id}" must be ${KEY_BYTES} bytes in base64 (openssl rand -base64 32)`);
    keys.set(id, key);
    active ??= id;
  });
  if (!active) throw new PayloadKeyError(`${source}: no key (expected lines "<key id> <base64 key>")`);
  return { active, keys };
}

/** Reads a keyring file; refuses one that group or others may read (like ssh does with private keys). */
export function loadKeyring(file: string): Keyring {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (err) {
    throw new PayloadKeyError(`${PAYLOAD_KEYS_ENV}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code}`);
  }
  if (mode & 0o077)
    throw new PayloadKeyError(
      `${PAYLOAD_KEYS_ENV}: ${file} is readable by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`,
    );
  return parseKeyring(readFileSync(file, 'utf8'), file);
}

export class EncryptionCodec implements PayloadCodec {
  constructor(private readonly keyring: Keyring) {}

  get activeKeyId(): string {
    return this.keyring.active;
  }

  // async: a payload that cannot be opened rejects the promise (never throws synchronously).
  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.seal(p));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.open(p));
  }

  private seal(payload: Payload): Payload {
    const keyId = this.keyring.active;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keyring.keys.get(keyId)!, iv);
    cipher.setAAD(aad(keyId));
    const plain = temporal.api.common.v1.Payload.encode(payload).finish();
    const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    return {
      metadata: { encoding: utf8(ENCRYPTED_ENCODING), [KEY_ID_KEY]: utf8(keyId), [CIPHER_KEY]: utf8(CIPHER) },
      data: sealed,
    };
  }

  private open(payload: Payload): Payload {
    // Payloads written before encryption was turned on (or by a client without it) pass through.
    if (text(payload.metadata?.encoding) !== ENCRYPTED_ENCODING) return payload;
    const keyId = text(payload.metadata?.[KEY_ID_KEY]);
    if (!keyId) throw new PayloadKeyError(`encrypted payload without "${KEY_ID_KEY}" metadata`);
    const key = this.keyring.keys.get(keyId);
    if (!key)
      throw new PayloadKeyError(
        `payload encrypted with key "${keyId}", which is not in the keyring (it ` +
          `has: ${[...this.keyring.keys.keys()].join(', ')}); add that key to ${PAYLOAD_KEYS_ENV}`,
      );
    const data = Buffer.from(payload.data ?? new Uint8Array());
    if (data.length < IV_BYTES + TAG_BYTES)
      throw new PayloadKeyError(`payload encrypted with key "${keyId}" is truncated (${data.length} bytes)`);
    const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
    decipher.setAAD(aad(keyId));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new PayloadKeyError(
        `payload encrypted with key "${keyId}" failed authentication (GCM tag): it was altered, or the key ` +
          `"${keyId}" in the keyring is not the one it was sealed with`,
      );
    }
    return temporal.api.common.v1.Payload.decode(plain);
  }
}

/** The codec from DRBOOK_PAYLOAD_KEYS, or none when it is unset (encryption is opt-in). */
export function payloadCodecFromEnv(env: NodeJS.ProcessEnv = process.env): EncryptionCodec | undefined {
  const file = env[PAYLOAD_KEYS_ENV];
  return file ? new EncryptionCodec(loadKeyring(file)) : undefined;
}

/**
 * The data converter for Clients and Workers: the encryption codec when DRBOOK_PAYLOAD_KEYS is set, else the default.
 */
export function dataConverterFromEnv(env: NodeJS.ProcessEnv = process.env): DataConverter | undefined {
  const codec = payloadCodecFromEnv(env);
  return codec ? { payloadCodecs: [codec] } : undefined;
}
