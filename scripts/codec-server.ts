/**
 * Codec server: lets the Temporal Web UI (and `temporal workflow show --codec-endpoint`) show
 * drbook's encrypted payloads in clear to the operators who can reach it. It speaks the codec
 * protocol: POST <any prefix>/encode and /decode with {"payloads": [...]} as protobuf JSON
 * (metadata values and data in base64), answers the browser's CORS preflight for the UI's
 * origin, and reads the X-Namespace header the UI sends.
 *
 *   DRBOOK_PAYLOAD_KEYS=<keyring> node -r ts-node/register/transpile-only scripts/codec-server.ts
 *
 *   DRBOOK_PAYLOAD_KEYS     the keyring the workers use (workers/codec.ts); required
 *   DRBOOK_CODEC_PORT       port on 127.0.0.1 (default 8888 + DRBOOK_PORT_OFFSET)
 *   DRBOOK_CODEC_ORIGINS    comma-separated browser origins allowed (default the local Web UI:
 *                           http://127.0.0.1:<DRBOOK_UI_PORT> and http://localhost:<DRBOOK_UI_PORT>)
 *   DRBOOK_CODEC_TOKEN_FILE optional: a file with a token; then every POST needs "Authorization: Bearer <token>"
 *   DRBOOK_CODEC_NAMESPACES optional: comma-separated namespaces served; another X-Namespace is refused (403)
 *
 * It listens on loopback only: whoever reaches it can read every payload, so in production put it
 * behind the same SSO/TLS proxy as the Web UI (README: Payload encryption). It logs one line per
 * request (path, namespace, payload count, status), never a payload.
 */
import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { payloadCodecFromEnv, PAYLOAD_KEYS_ENV } from '../workers/codec';

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

/** Listens on 127.0.0.1:port (0 = any free port); resolves with the port. */
export function listen(server: http.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
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
  const offset = Number(process.env.DRBOOK_PORT_OFFSET ?? 0);
  const uiPort = Number(process.env.DRBOOK_UI_PORT ?? 8233 + offset);
  const port = Number(process.env.DRBOOK_CODEC_PORT ?? 8888 + offset);
  const tokenFile = process.env.DRBOOK_CODEC_TOKEN_FILE;
  const server = createCodecServer({
    codec,
    origins: list(process.env.DRBOOK_CODEC_ORIGINS) ?? [`http://127.0.0.1:${uiPort}`, `http://localhost:${uiPort}`],
    token: tokenFile ? readFileSync(tokenFile, 'utf8').trim() : undefined,
    namespaces: list(process.env.DRBOOK_CODEC_NAMESPACES),
  });
  const bound = await listen(server, port);
  console.log(`codec server ready: http://127.0.0.1:${bound} (active key ${codec.activeKeyId})`);
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
