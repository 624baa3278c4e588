/**
 * Webhook URLs often carry a token (Slack, PagerDuty, a signed path). A failing POST, to the application's failover
 * webhook or to a people webhook, fails naming the webhook and the status, never the URL or the receiver's body
 * (which may echo the path): the message reaches workflow history and alerts. A real HTTP server on loopback answers
 * 500, 404 (its body echoing the path) and nothing at all.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import YAML from 'yaml';
import { parseInventory } from '../../contract';
import { expandEnv } from '../../config/load';
import { createNotifyActivities } from '../../activities/notify';
import { SANDBOX_INVENTORY } from '../helpers/stack';

const TOKEN = 'T0KEN-9f2c1e7a54b3d8a6c0ffee11';
let server: Server;
let base = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url?.startsWith('/fail')) {
      res.writeHead(500).end(`upstream broke for ${req.url}`);
    } else res.writeHead(404).end(`Cannot POST ${req.url}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

const dir = mkdtempSync(path.join(tmpdir(), 'drbook-webhook-redaction-'));

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

/** The sandbox inventory with both webhooks' URLs (secret references, as the inventory requires) at `url`. */
function notifyWith(url: string) {
  writeFileSync(path.join(dir, 'webhook-url'), url, { mode: 0o600 });
  const doc = YAML.parse(expandEnv(readFileSync(SANDBOX_INVENTORY, 'utf8'), {}, [])) as {
    notifications: { name: string; url?: unknown }[];
    services: { name: string; applicationWebhook?: unknown }[];
  };
  doc.notifications.find((n) => n.name === 'oncall-webhook')!.url = { file: 'webhook-url' };
  doc.services.find((s) => s.name === 'shop')!.applicationWebhook = { file: 'webhook-url' };
  return createNotifyActivities(
    parseInventory(doc),
    { publishSns: () => Promise.reject(new Error('no SNS here')) },
    dir,
  );
}

const failureOf = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (err: unknown) => err as ApplicationFailure,
  );

test.each([
  ['answers 500', `/fail/hooks/${TOKEN}`, 'WebhookFailed', 'HTTP 500'],
  ['answers 404 echoing the path', `/hooks/${TOKEN}?token=${TOKEN}`, 'NotConfigured', 'HTTP 404'],
])('a people webhook that %s is named, its URL never shown', async (_, path, type, status) => {
  const url = `${base}${path}`;
  const err = await failureOf(
    notifyWith(url).notifyTarget({ target: 'oncall-webhook', subject: 's', message: 'm', idempotencyKey: 'k' }),
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  expect({ type: err!.type, message: err!.message }).toEqual({
    type,
    message: `webhook oncall-webhook failed: ${status}`,
  });
  expect(JSON.stringify([err!.message, err!.details, err!.stack])).not.toContain(TOKEN);
});

test('the application webhook: failed, and unreachable, named by service', async () => {
  const call = (url: string) =>
    failureOf(
      notifyWith(url).callApplicationWebhook({
        service: 'shop',
        primary: { server: 'db-replica', host: '127.0.0.1', port: 3306 },
        idempotencyKey: 'k',
      }),
    );
  const failed = await call(`${base}/fail/${TOKEN}`);
  expect({ type: failed!.type, message: failed!.message }).toEqual({
    type: 'WebhookFailed',
    message: 'application webhook of shop failed: HTTP 500',
  });
  // Port 1 on loopback: nothing listens.
  const unreachable = await call(`http://127.0.0.1:1/hooks/${TOKEN}`);
  expect(unreachable!.type).toBe('WebhookUnreachable');
  expect(unreachable!.message).toMatch(/^application webhook of shop unreachable: /);
  for (const err of [failed, unreachable])
    expect(JSON.stringify([err!.message, err!.details, err!.stack])).not.toContain(TOKEN);
});
