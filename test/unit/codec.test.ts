/**
 * Payload encryption (contract/codec.ts) and the codec server (cli/codec-server.ts), without
 * Temporal: real AES-256-GCM, a real HTTP server on loopback. The path through the Temporal dev
 * server is test/integration/payload-encryption.test.ts.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import {
  CIPHER_KEY,
  ENCRYPTED_ENCODING,
  EncryptionCodec,
  KEY_ID_KEY,
  loadKeyring,
  parseKeyring,
  payloadCodecFromEnv,
} from '../../contract/codec';
import { codecServerSettings, createCodecServer, isLoopback, listen } from '../../cli/codec-server';

const key = () => randomBytes(32).toString('base64');
const K1 = key();
const K2 = key();
const ring = (...lines: [string, string][]) => parseKeyring(lines.map(([id, k]) => `${id} ${k}`).join('\n'));
const text = (b?: Uint8Array | null) => Buffer.from(b ?? []).toString('utf8');
const input = { service: 'shop', mode: 'drill', reason: 'a plaintext marker 7f3a' };
const toPayload = (v: unknown) => defaultPayloadConverter.toPayload(v);
const fromPayload = (p: Payload) => defaultPayloadConverter.fromPayload(p);

describe('EncryptionCodec', () => {
  test('round trip: ciphertext only on the wire, metadata names encoding, key id and cipher', async () => {
    const codec = new EncryptionCodec(ring(['k1', K1]));
    const [sealed] = await codec.encode([toPayload(input)]);
    expect(text(sealed.metadata?.encoding)).toBe(ENCRYPTED_ENCODING);
    expect(text(sealed.metadata?.[KEY_ID_KEY])).toBe('k1');
    expect(text(sealed.metadata?.[CIPHER_KEY])).toBe('AES-256-GCM');
    expect(Object.keys(sealed.metadata ?? {}).sort()).toEqual([CIPHER_KEY, KEY_ID_KEY, 'encoding'].sort());
    expect(text(sealed.data)).not.toContain('plaintext marker');
    expect(text(sealed.data)).not.toContain('json/plain');
    const [opened] = await codec.decode([sealed]);
    expect(text(opened.metadata?.encoding)).toBe('json/plain');
    expect(fromPayload(opened)).toEqual(input);
  });

  test('a fresh IV per payload: the same value twice gives different ciphertexts', async () => {
    const codec = new EncryptionCodec(ring(['k1', K1]));
    const [a, b] = await codec.encode([toPayload(input), toPayload(input)]);
    expect(Buffer.from(a.data!).subarray(0, 12).equals(Buffer.from(b.data!).subarray(0, 12))).toBe(false);
    expect(Buffer.from(a.data!).equals(Buffer.from(b.data!))).toBe(false);
  });

  test(
    'rotation: sealed with the old key, opened after a new active key is added; ' + 'new payloads use the new key',
    async () => {
      const before = new EncryptionCodec(ring(['k1', K1]));
      const after = new EncryptionCodec(ring(['k2', K2], ['k1', K1]));
      const [old] = await before.encode([toPayload(input)]);
      expect(fromPayload((await after.decode([old]))[0])).toEqual(input);
      const [fresh] = await after.encode([toPayload(input)]);
      expect(text(fresh.metadata?.[KEY_ID_KEY])).toBe('k2');
      // The old key alone cannot open what the new one sealed, and says which key it needs.
      await expect(before.decode([fresh])).rejects.toThrow(/key "k2", which is not in the keyring \(it has: k1\)/);
    },
  );

  test('a payload whose key is missing fails naming the key id', async () => {
    const [sealed] = await new EncryptionCodec(ring(['gone-2025', K1])).encode([toPayload(input)]);
    await expect(new EncryptionCodec(ring(['k2', K2])).decode([sealed])).rejects.toThrow(
      'payload encrypted with key "gone-2025", which is not in the keyring (it has: k2); add that key to ' +
        'DRBOOK_PAYLOAD_KEYS',
    );
  });

  test(
    'tampering is detected by the GCM tag: ' +
      'a flipped ciphertext bit, a swapped key id, a wrong key under the same id',
    async () => {
      const codec = new EncryptionCodec(ring(['k1', K1], ['k2', K2]));
      const [sealed] = await codec.encode([toPayload(input)]);
      const flipped = Buffer.from(sealed.data!);
      flipped[20] ^= 0x01;
      await expect(codec.decode([{ ...sealed, data: flipped }])).rejects.toThrow(/key "k1" failed authentication/);
      // The key id is authenticated data: pointing the payload at another key in the ring fails too.
      const relabelled = { ...sealed, metadata: { ...sealed.metadata, [KEY_ID_KEY]: Buffer.from('k2') } };
      await expect(codec.decode([relabelled])).rejects.toThrow(/key "k2" failed authentication/);
      await expect(new EncryptionCodec(ring(['k1', K2])).decode([sealed])).rejects.toThrow(/failed authentication/);
      await expect(codec.decode([{ ...sealed, data: Buffer.from(sealed.data!).subarray(0, 20) }])).rejects.toThrow(
        /truncated/,
      );
    },
  );

  test('payloads that are not encrypted pass through decode unchanged (histories from before encryption)', async () => {
    const codec = new EncryptionCodec(ring(['k1', K1]));
    const plain = toPayload(input);
    const [out] = await codec.decode([plain]);
    expect(out).toBe(plain);
    expect(await codec.decode([])).toEqual([]);
  });
});

describe('keyring', () => {
  test('first key is active; comments and blank lines are ignored', () => {
    const r = parseKeyring(`# drbook payload keys\n\nnew ${K2}\nold ${K1}\n`);
    expect(r.active).toBe('new');
    expect([...r.keys.keys()]).toEqual(['new', 'old']);
  });

  // Labels, not contents, name the cases: test output never shows key material.
  test.each([
    ['empty file', '', /no key/],
    ['three fields', `k1 ${K1} extra`, /line 1: expected "<key id> <base64 key>"/],
    ['16-byte key', `k1 ${Buffer.alloc(16).toString('base64')}`, /line 1: key "k1" must be 32 bytes/],
    ['not base64', `k1 not*base64*at*all*padding*x==`, /line 1: key "k1" must be 32 bytes/],
    ['duplicate id', `k1 ${K1}\nk1 ${K2}`, /line 2: key id "k1" appears twice/],
    ['bad id', `bad/id ${K1}`, /line 1: key id "bad\/id" must be/],
  ])('refused: %s', (_label, content, message) => {
    expect(() => parseKeyring(content, 'keys')).toThrow(message);
  });

  test('errors never echo key material', () => {
    const short = Buffer.alloc(16, 7).toString('base64');
    expect(() => parseKeyring(`k1 ${short}`)).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining(short) }),
    );
  });

  test('a keyring file readable by others is refused; 0600 is loaded; unset env means no codec', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'drbook-keys-'));
    try {
      const file = path.join(dir, 'keys');
      writeFileSync(file, `k1 ${K1}\n`);
      chmodSync(file, 0o644);
      expect(() => loadKeyring(file)).toThrow(/readable by group or others \(mode 644\); chmod 600/);
      chmodSync(file, 0o600);
      expect(loadKeyring(file).active).toBe('k1');
      expect(payloadCodecFromEnv({ DRBOOK_PAYLOAD_KEYS: file })?.activeKeyId).toBe('k1');
      expect(payloadCodecFromEnv({})).toBeUndefined();
      expect(() => loadKeyring(path.join(dir, 'missing'))).toThrow(/cannot read .*missing: ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('codec server', () => {
  const UI = 'http://127.0.0.1:8233';
  const codec = new EncryptionCodec(ring(['k1', K1]));
  const lines: string[] = [];
  let server: http.Server;
  let base: string;
  beforeAll(async () => {
    server = createCodecServer({
      codec,
      origins: [UI],
      token: 'tok-123',
      namespaces: ['default'],
      log: (l) => lines.push(l),
    });
    base = `http://127.0.0.1:${await listen(server, 0)}`;
  });
  afterAll(() => new Promise((r) => server.close(r)));

  const asJson = (p: Payload) => ({
    metadata: Object.fromEntries(
      Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
    ),
    data: Buffer.from(p.data ?? []).toString('base64'),
  });
  const post = (op: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}/some/prefix/${op}`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'X-Namespace': 'default',
        Authorization: 'Bearer tok-123',
        Origin: UI,
        ...headers,
      },
      body: JSON.stringify(body),
    });

  test('/decode opens what the workers sealed, in the protobuf JSON the Web UI sends; /encode seals', async () => {
    const [sealed] = await codec.encode([toPayload(input)]);
    const res = await post('decode', { payloads: [asJson(sealed), asJson(toPayload('plain'))] });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(UI);
    const { payloads } = (await res.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
    expect(Buffer.from(payloads[0].metadata.encoding, 'base64').toString()).toBe('json/plain');
    expect(JSON.parse(Buffer.from(payloads[0].data, 'base64').toString())).toEqual(input);
    expect(JSON.parse(Buffer.from(payloads[1].data, 'base64').toString())).toBe('plain');

    const enc = (await (await post('encode', { payloads: [asJson(toPayload(input))] })).json()) as {
      payloads: { metadata: Record<string, string>; data: string }[];
    };
    expect(Buffer.from(enc.payloads[0].metadata.encoding, 'base64').toString()).toBe(ENCRYPTED_ENCODING);
    expect(Buffer.from(enc.payloads[0].data, 'base64').toString()).not.toContain('plaintext marker');
    expect(lines.join('\n')).not.toContain('plaintext marker');
  });

  test('CORS preflight: allowed for the UI origin with X-Namespace, refused for another origin', async () => {
    const pre = (origin: string) =>
      fetch(`${base}/decode`, {
        method: 'OPTIONS',
        headers: {
          Origin: origin,
          'Access-Control-Request-Method': 'POST',
          'Access-Control-Request-Headers': 'content-type,x-namespace',
        },
      });
    const ok = await pre(UI);
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe(UI);
    expect(ok.headers.get('access-control-allow-headers')).toMatch(/X-Namespace/);
    expect(ok.headers.get('access-control-allow-methods')).toMatch(/POST/);
    const other = await pre('http://evil.example');
    expect(other.status).toBe(403);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  test('refusals: no or wrong token, other namespace, other origin, bad body, unknown key (named)', async () => {
    const [sealed] = await codec.encode([toPayload(input)]);
    const body = { payloads: [asJson(sealed)] };
    expect((await post('decode', body, { Authorization: '' })).status).toBe(401);
    expect((await post('decode', body, { Authorization: 'Bearer tok-124' })).status).toBe(401);
    expect((await post('decode', body, { 'X-Namespace': 'prod' })).status).toBe(403);
    expect((await post('decode', body, { Origin: 'http://evil.example' })).status).toBe(403);
    expect((await post('decode', { nope: 1 })).status).toBe(400);
    expect((await post('transmogrify', body)).status).toBe(404);
    const [foreign] = await new EncryptionCodec(ring(['other', K2])).encode([toPayload(input)]);
    const res = await post('decode', { payloads: [asJson(foreign)] });
    expect(res.status).toBe(422);
    expect(((await res.json()) as { error: string }).error).toMatch(/key "other", which is not in the keyring/);
  });
});

const started = new Set<ReturnType<typeof spawn>>();
/** Starts cli/codec-server.ts as an operator would; resolves when it exits, or kills it once it listens. */
function startCodecServer(env: Record<string, string>): Promise<{ outcome: 'exited' | 'listening'; output: string }> {
  const root = path.join(__dirname, '..', '..');
  const child = spawn(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', path.join(root, 'cli', 'codec-server.ts')],
    { cwd: root, env: { PATH: process.env.PATH ?? '', DRBOOK_CODEC_PORT: '0', ...env } },
  );
  started.add(child);
  let output = '';
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('codec server ready')) {
        child.kill();
        resolve({ outcome: 'listening', output });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', reject);
    child.once('exit', () => {
      started.delete(child);
      resolve({ outcome: 'exited', output });
    });
  });
}

describe('codec server: a token unless it listens on loopback', () => {
  let dir: string;
  let keys: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'drbook-codec-'));
    keys = path.join(dir, 'keys');
    writeFileSync(keys, `k1 ${K1}\n`, { mode: 0o600 });
    writeFileSync(path.join(dir, 'token'), 'tok-456\n', { mode: 0o600 });
    writeFileSync(path.join(dir, 'empty'), '\n', { mode: 0o600 });
  });
  afterAll(() => {
    for (const child of started) child.kill(); // a test that timed out leaves no server behind
    rmSync(dir, { recursive: true, force: true });
  });

  test('on a non-loopback address without a token it refuses to start, naming the setting', async () => {
    const run = await startCodecServer({ DRBOOK_PAYLOAD_KEYS: keys, DRBOOK_CODEC_HOST: '0.0.0.0' });
    expect(run.outcome).toBe('exited');
    expect(run.output).toMatch(/DRBOOK_CODEC_HOST=0\.0\.0\.0 is not a loopback address: set DRBOOK_CODEC_TOKEN_FILE/);
  }, 90_000);

  test('with a token it listens there', async () => {
    const withToken = await startCodecServer({
      DRBOOK_PAYLOAD_KEYS: keys,
      DRBOOK_CODEC_HOST: '0.0.0.0',
      DRBOOK_CODEC_TOKEN_FILE: path.join(dir, 'token'),
    });
    expect(withToken).toMatchObject({ outcome: 'listening', output: expect.stringContaining('token required') });
  }, 90_000);

  test('settings: loopback needs no token; other addresses, an empty or unreadable token file refused', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1'])
      expect({ host, loopback: isLoopback(host) }).toEqual({ host, loopback: true });
    for (const host of ['0.0.0.0', '::', '10.0.0.5', 'codec.internal', '128.0.0.1', '::ffff:10.0.0.1'])
      expect({ host, loopback: isLoopback(host) }).toEqual({ host, loopback: false });
    expect(() => codecServerSettings({ DRBOOK_CODEC_HOST: '::' })).toThrow(/DRBOOK_CODEC_HOST=:: is not a loopback/);
    expect(() =>
      codecServerSettings({ DRBOOK_CODEC_HOST: '10.0.0.5', DRBOOK_CODEC_TOKEN_FILE: path.join(dir, 'empty') }),
    ).toThrow(/DRBOOK_CODEC_TOKEN_FILE: .*empty is empty/);
    expect(() => codecServerSettings({ DRBOOK_CODEC_TOKEN_FILE: path.join(dir, 'missing') })).toThrow(
      /cannot read .*missing: ENOENT/,
    );
    expect(
      codecServerSettings({ DRBOOK_CODEC_HOST: '10.0.0.5', DRBOOK_CODEC_TOKEN_FILE: path.join(dir, 'token') }),
    ).toMatchObject({ host: '10.0.0.5', token: 'tok-456' });
    expect(codecServerSettings({ DRBOOK_PORT_OFFSET: '800' })).toMatchObject({ host: '127.0.0.1', port: 9688 });
    expect(codecServerSettings({ DRBOOK_CODEC_HOST: '::1' }).token).toBeUndefined();
  });

  test('a server bound to every address with a token still refuses a request without it', async () => {
    const server = createCodecServer({ codec: new EncryptionCodec(ring(['k1', K1])), origins: [], token: 'tok-456' });
    const port = await listen(server, 0, '0.0.0.0');
    try {
      const res = await fetch(`http://127.0.0.1:${port}/decode`, { method: 'POST', body: '{"payloads":[]}' });
      expect(res.status).toBe(401);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
