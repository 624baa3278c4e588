/**
 * Payload encryption through the real Temporal dev server: a failover dry run of `shop` with the
 * codec on (real adapters, real readiness checks) leaves only ciphertext in its history; a client
 * with the keyring reads the result; a client without it cannot; the codec server opens a payload
 * taken from that history, and so does the Temporal CLI through it (the same codec protocol as the
 * Web UI).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { temporal as proto } from '@temporalio/proto';
import { createCodecServer, listen } from '../../cli/codec-server';
import { ENCRYPTED_ENCODING, KEY_ID_KEY, payloadCodecFromEnv, type EncryptionCodec } from '../../contract/codec';
import { failover } from '../../workflows';
import { buildAdapters, ROOT, sandbox, temporal, type TemporalHarness } from '../helpers/stack';

jest.setTimeout(240_000);

type History = proto.api.history.v1.IHistory;

/** Every payload in a history, with where it sits; search attributes are indexed in clear by design. */
function payloadsOf(history: History): { where: string; payload: Payload }[] {
  const out: { where: string; payload: Payload }[] = [];
  const walk = (value: unknown, where: string) => {
    if (!value || typeof value !== 'object') return;
    if (Array.isArray(value)) return value.forEach((v, i) => walk(v, `${where}[${i}]`));
    const obj = value as Record<string, unknown>;
    if (obj.metadata && typeof obj.metadata === 'object' && 'data' in obj) {
      out.push({ where, payload: obj });
      return;
    }
    for (const [k, v] of Object.entries(obj)) if (k !== 'searchAttributes') walk(v, `${where}.${k}`);
  };
  (history.events ?? []).forEach((e, i) => walk(e, `events[${i}]`));
  return out;
}
const text = (b?: Uint8Array | null) => Buffer.from(b ?? []).toString('utf8');

describe('payload encryption on the dev server', () => {
  const loaded = sandbox();
  const adapters = buildAdapters(loaded);
  const marker = `encryption-marker-${randomBytes(6).toString('hex')}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'drbook-keys-'));
  let codec: EncryptionCodec;
  let encrypted: TemporalHarness;
  let plain: Client;
  let plainClose: () => Promise<void>;
  let server: http.Server;
  let codecUrl: string;
  const token = randomBytes(16).toString('hex');

  beforeAll(async () => {
    const keys = path.join(dir, 'payload-keys');
    writeFileSync(keys, `new ${randomBytes(32).toString('base64')}\nold ${randomBytes(32).toString('base64')}\n`, {
      mode: 0o600,
    });
    codec = payloadCodecFromEnv({ DRBOOK_PAYLOAD_KEYS: keys })!;
    encrypted = await temporal(loaded, { dataConverter: { payloadCodecs: [codec] } });
    const p = await temporal(loaded, { dataConverter: {} });
    plain = p.client;
    plainClose = () => p.close();
    server = createCodecServer({ codec, origins: [], token, log: () => undefined });
    codecUrl = `http://127.0.0.1:${await listen(server, 0)}`;
  });
  afterAll(async () => {
    await encrypted.terminate(['failover-shop']);
    await encrypted.close();
    await plainClose();
    await adapters.close();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  test(
    'history holds ciphertext only; the keyring reads it; ' + 'the codec server and the CLI through it decode it',
    async () => {
      const input = { service: 'shop', mode: 'drill' as const, reason: marker, dryRun: true };
      const result = await encrypted.withWorkers(adapters.activities, () =>
        encrypted.client.workflow.execute(failover, {
          taskQueue: encrypted.taskQueue,
          workflowId: 'failover-shop',
          args: [input],
          // User metadata (the Web UI's summary and details; activity summaries too) goes through the codec: the
          // marker in them must not reach the history in clear either.
          staticSummary: `failover drill of shop: ${marker}`,
          staticDetails: `details: ${marker}`,
        }),
      );
      // The codec-enabled client reads the result as usual.
      expect(result.outcome).toBe('dry-run');
      expect(result.service).toBe('shop');
      expect(result.readiness!.ready).toBe(true);

      // A client without the keyring sees the raw history: every payload sealed, the input nowhere in clear.
      const handle = plain.workflow.getHandle('failover-shop');
      const history = await handle.fetchHistory();
      const payloads = payloadsOf(history);
      const started = payloads.find((p) => p.where.includes('workflowExecutionStartedEventAttributes.input'));
      expect(started).toBeDefined();
      expect(payloads.filter((p) => p.where.includes('activityTask')).length).toBeGreaterThan(0);
      // The start's static summary and details, and each activity's summary, are payloads like the rest (checked
      // below).
      expect(payloads.filter((p) => p.where.includes('userMetadata.summary')).length).toBeGreaterThan(1);
      expect(payloads.some((p) => p.where.includes('userMetadata.details'))).toBe(true);
      for (const { where, payload } of payloads) {
        // A patch marker (patched(), docs/workflow-changes.md) is written by the SDK's core, outside the data
        // converter: it holds the patch id alone, never a payload of ours.
        if (where.includes('markerRecordedEventAttributes.details.patch-data.')) {
          const data = JSON.parse(text(payload.data)) as Record<string, unknown>;
          expect(Object.keys(data).filter((k) => k !== 'id' && k !== 'deprecated')).toEqual([]);
          expect(data.id).toMatch(/^[a-z0-9-]+$/);
          continue;
        }
        expect({ where, encoding: text(payload.metadata?.encoding) }).toEqual({ where, encoding: ENCRYPTED_ENCODING });
        expect({ where, key: text(payload.metadata?.[KEY_ID_KEY]) }).toEqual({ where, key: 'new' });
      }
      const raw = JSON.stringify(
        proto.api.history.v1.History.toObject(proto.api.history.v1.History.fromObject(history), { bytes: String }),
      );
      const everything = [raw, ...payloads.map((p) => text(p.payload.data))].join('\n');
      expect(everything).not.toContain(marker);
      expect(everything).not.toContain('"dryRun"');
      expect(everything).not.toContain('readiness dry run');
      await expect(handle.result()).rejects.toThrow(/binary\/encrypted/);

      // The codec server (the Web UI's path) opens the start input taken from that history.
      const asJson = (p: Payload) => ({
        metadata: Object.fromEntries(
          Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
        ),
        data: Buffer.from(p.data ?? []).toString('base64'),
      });
      const res = await fetch(`${codecUrl}/decode`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Namespace': 'default', Authorization: `Bearer ${token}` },
        body: JSON.stringify({ payloads: [asJson(started!.payload)] }),
      });
      expect(res.status).toBe(200);
      const decoded = (await res.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
      expect(Buffer.from(decoded.payloads[0].metadata.encoding, 'base64').toString()).toBe('json/plain');
      expect(JSON.parse(Buffer.from(decoded.payloads[0].data, 'base64').toString())).toEqual(input);

      // The Temporal CLI, given the codec endpoint, shows the input in clear; without it, it cannot.
      // (Asynchronously: the codec server it calls runs in this process.)
      const cli = async (extra: string[]) =>
        (
          await promisify(execFile)(
            path.join(ROOT, '.venv', 'bin', 'temporal'),
            [
              'workflow',
              'show',
              '--workflow-id',
              'failover-shop',
              '--address',
              process.env.TEMPORAL_ADDRESS ?? 'localhost:7233',
              '--output',
              'json',
              ...extra,
            ],
            { encoding: 'utf8', timeout: 60_000 },
          )
        ).stdout;
      // Its JSON shows payload data in base64: decode every "data" field before looking.
      const shown = (out: string) =>
        [...out.matchAll(/"data":\s*"([A-Za-z0-9+/=]+)"/g)]
          .map((m) => Buffer.from(m[1], 'base64').toString())
          .join('\n');
      expect(shown(await cli([]))).not.toContain(marker);
      expect(shown(await cli(['--codec-endpoint', codecUrl, '--codec-auth', `Bearer ${token}`]))).toContain(marker);
    },
  );
});
