/**
 * Codec server: lets the Temporal Web UI (and `temporal workflow show --codec-endpoint`) show
 * drbook's encrypted payloads in clear to the operators who can reach it. It speaks the codec
 * protocol: POST <any prefix>/encode and /decode with {"payloads": [...]} as protobuf JSON
 * (metadata values and data in base64), answers the browser's CORS preflight for the UI's
 * origin, and reads the X-Namespace header the UI sends.
 *
 *   DRBOOK_PAYLOAD_KEYS=<keyring> node -r ts-node/register/transpile-only cli/codec-server.ts
 *
 *   DRBOOK_PAYLOAD_KEYS     the keyring the workers use (contract/codec.ts); required
 *   DRBOOK_CODEC_PORT       port (default 8888 + DRBOOK_PORT_OFFSET)
 *   DRBOOK_CODEC_HOST       address to listen on (default 127.0.0.1); any address other than loopback
 *                           needs DRBOOK_CODEC_TOKEN_FILE, or the server refuses to start
 *   DRBOOK_CODEC_ORIGINS    comma-separated browser origins allowed (default the local Web UI:
 *                           http://127.0.0.1:<DRBOOK_UI_PORT> and http://localhost:<DRBOOK_UI_PORT>)
 *   DRBOOK_CODEC_TOKEN_FILE a file with a token; then every POST needs "Authorization: Bearer <token>".
 *                           Optional on loopback only
 *   DRBOOK_CODEC_NAMESPACES optional: comma-separated namespaces served; another X-Namespace is refused (403)
 *
 * Whoever reaches it can read every payload: by default it listens on loopback only, and it will not
 * listen anywhere else without a token (a proxy on another host, or anyone on the network, could
 * otherwise decode every history). In production put it behind the same SSO/TLS proxy as the Web UI
 * (README: Payload encryption). It logs one line per request (path, namespace, payload count,
 * status), never a payload.
 */
import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { payloadCodecFromEnv, PAYLOAD_KEYS_ENV } from '../contract/codec';

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** Browser origins allowed to call it (the Web UI's). */
  origins: string[];
  /** When set, POSTs need "Authorization: Bearer <token>". */
  token?: string;
  /** When set, only these X-Namespace values are served. */
  namespaces?: string[];
  log?: (line: string) => void;
}

interface JsonPayload {
  metadata?: Record<string, string> | null;
  data?: string | null;
}

const MAX_BODY_BYTES = 16 * 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const b64 = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? new Uint8Array()).toString('base64');

function fromJson(p: JsonPayload, i: number): Payload {
  if (!p || typeof p !== 'object') throw new HttpError(400, `payloads[${i}] is not an object`);
  const metadata: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) {
    if (typeof v !== 'string') throw new HttpError(400, `payloads[${i}].metadata.${k} must be a base64 string`);
    metadata[k] = Buffer.from(v, 'base64');
  }
  if (p.data != null && typeof p.data !== 'string') throw new HttpError(400, `payloads[${i}].data must be base64`);
  return { metadata, data: Buffer.from(p.data ?? '', 'base64') };
}

function toJson(p: Payload): JsonPayload {
  return {
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, b64(v)])),
    data: b64(p.data),
  };
}

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function createCodecServer(options: CodecServerOptions): http.Server {
  const log = options.log ?? ((line: string) => console.log(line));
  return http.createServer((req, res) => {
    const origin = req.headers.origin;
    // CORS: only the configured origins (the Web UI) may read answers from a browser.
    if (origin && options.origins.includes(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Vary', 'Origin');
    }
    const op = (req.url ?? '').split('?')[0].split('/').filter(Boolean).pop();
    const namespace = String(req.headers['x-namespace'] ?? '');
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'Content-Type, X-Namespace, Authorization');
      res.setHeader('Access-Control-Max-Age', '600');
      res.writeHead(origin && options.origins.includes(origin) ? 204 : 403);
      res.end();
      return;
    }
    const handle = async () => {
      if (req.method !== 'POST' || (op !== 'encode' && op !== 'decode'))
        throw new HttpError(404, 'POST /encode or /decode');
      if (origin && !options.origins.includes(origin)) throw new HttpError(403, `origin ${origin} not allowed`);
      if (options.token !== undefined) {
        const auth = req.headers.authorization ?? '';
        if (!auth.startsWith('Bearer ') || !sameToken(auth.slice(7), options.token))
          throw new HttpError(401, 'a valid "Authorization: Bearer <token>" is required');
      }
      if (options.namespaces && !options.namespaces.includes(namespace))
        throw new HttpError(403, `namespace "${namespace}" is not served here`);
      let body: { payloads?: unknown };
      try {
        body = JSON.parse(await readBody(req)) as { payloads?: unknown };
      } catch (err) {
        if (err instanceof HttpError) throw err;
        throw new HttpError(400, 'body is not JSON');
      }
      if (!body || !Array.isArray(body.payloads)) throw new HttpError(400, 'expected {"payloads": [...]}');
      const payloads = (body.payloads as JsonPayload[]).map(fromJson);
      let out: Payload[];
      try {
        out = op === 'encode' ? await options.codec.encode(payloads) : await options.codec.decode(payloads);
      } catch (err) {
        throw new HttpError(422, (err as Error).message);
      }
      return { count: payloads.length, body: { payloads: out.map(toJson) } };
    };
    handle().then(
      ({ count, body }) => {
        log(`codec ${op} namespace=${namespace || '-'} payloads=${count} 200`);
        send(200, body);
      },
      (err: unknown) => {
        const status = err instanceof HttpError ? err.status : 500;
        const message = err instanceof Error ? err.message : String(err);
        log(`codec ${op ?? req.url} namespace=${namespace || '-'} ${status}: ${message}`);
        send(status, { error: message });
      },
    );
  });
}

/** Listens on host:port (0 = any free port; default host 127.0.0.1); resolves with the port. */
export function listen(server: http.Server, port: number, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

/** 127.0.0.0/8, ::1 (and its IPv4-mapped form), localhost: reachable from this machine only. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

export interface CodecServerSettings {
  host: string;
  port: number;
  origins: string[];
  token?: string;
  namespaces?: string[];
}

/**
 * The server's settings from the environment. A token is required unless the address is loopback: off
 * this machine, the token is what stands between the network and every payload. An empty token file is
 * refused too (it would be a token anyone can guess).
 */
export function codecServerSettings(env: NodeJS.ProcessEnv = process.env): CodecServerSettings {
  const offset = Number(env.DRBOOK_PORT_OFFSET ?? 0);
  const uiPort = Number(env.DRBOOK_UI_PORT ?? 8233 + offset);
  const host = env.DRBOOK_CODEC_HOST?.trim() || '127.0.0.1';
  const tokenFile = env.DRBOOK_CODEC_TOKEN_FILE;
  let token: string | undefined;
  if (tokenFile) {
    try {
      token = readFileSync(tokenFile, 'utf8').trim();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new Error(`DRBOOK_CODEC_TOKEN_FILE: cannot read ${tokenFile}: ${code}`);
    }
    if (!token) throw new Error(`DRBOOK_CODEC_TOKEN_FILE: ${tokenFile} is empty`);
  }
  if (!token && !isLoopback(host))
    throw new Error(
      `DRBOOK_CODEC_HOST=${host} is not a loopback address: set DRBOOK_CODEC_TOKEN_FILE (every request then ` +
        `needs "Authorization: Bearer <token>"), or listen on 127.0.0.1 behind a proxy`,
    );
  return {
    host,
    port: Number(env.DRBOOK_CODEC_PORT ?? 8888 + offset),
    origins: list(env.DRBOOK_CODEC_ORIGINS) ?? [`http://127.0.0.1:${uiPort}`, `http://localhost:${uiPort}`],
    token,
    namespaces: list(env.DRBOOK_CODEC_NAMESPACES),
  };
}

function list(value: string | undefined): string[] | undefined {
  const items = value
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return items?.length ? items : undefined;
}

async function main(): Promise<void> {
  const codec = payloadCodecFromEnv();
  if (!codec) throw new Error(`${PAYLOAD_KEYS_ENV} is not set: there is nothing to decode without the keyring`);
  const { host, port, ...options } = codecServerSettings();
  const server = createCodecServer({ codec, ...options });
  const bound = await listen(server, port, host);
  const where = isIP(host) === 6 ? `[${host}]` : host;
  console.log(
    `codec server ready: http://${where}:${bound} (active key ${codec.activeKeyId}` +
      `${options.token ? ', token required' : ', no token: loopback only'})`,
  );
  const stop = () => server.close(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
