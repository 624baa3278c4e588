/**
 * Webhook URLs carry tokens (Slack, PagerDuty, a signed path), so the inventory holds them as secret references and
 * only the activity that POSTs resolves one, by the service's or target's name. A plain URL in the inventory is
 * refused by path; describeService's result (which lands in every runbook's history) holds the reference, never
 * the URL; the application webhook is called from the service's name alone and reaches the receiver with its token
 * (a real HTTP server on loopback that answers 401 without it); a reference that does not hold an http(s) URL fails
 * NotConfigured, naming the webhook, never the value.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import YAML from 'yaml';
import { InventoryError, parseInventory } from '../../contract';
import { expandEnv } from '../../config/load';
import { createInventoryActivities } from '../../activities/inventory';
import { createNotifyActivities } from '../../activities/notify';
import { SANDBOX_INVENTORY } from '../helpers/stack';

const TOKEN = 'hk-7c1f0e9a2b5d4c3e8f6a0b1c2d3e4f5a';
const dir = mkdtempSync(path.join(tmpdir(), 'drbook-webhook-secrets-'));
let server: Server;
let base = '';
const received: { path: string; body: string }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ path: req.url ?? '', body });
      res.writeHead(req.url === `/hooks/${TOKEN}/failover` ? 200 : 401).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

type Doc = {
  notifications: { name: string; url?: unknown }[];
  services: { name: string; applicationWebhook?: unknown }[];
};
const sandboxDoc = () => YAML.parse(expandEnv(readFileSync(SANDBOX_INVENTORY, 'utf8'), {}, [])) as Doc;

/** The sandbox inventory with shop's application webhook (and the people webhook) at `url`, held in a file. */
function inventoryWith(url: string) {
  writeFileSync(path.join(dir, 'app-webhook-url'), `${url}\n`, { mode: 0o600 });
  const doc = sandboxDoc();
  doc.services[0].applicationWebhook = { file: 'app-webhook-url' };
  doc.notifications[0].url = { file: 'app-webhook-url' };
  return parseInventory(doc);
}

test('a webhook URL written in the inventory is refused by its path, saying to use a secret reference', () => {
  const doc = sandboxDoc();
  doc.services[0].applicationWebhook = `https://shop.example.com/hooks/${TOKEN}`;
  doc.notifications[0].url = 'https://hooks.example.com/services/T000/B000';
  let problems: string[] = [];
  try {
    parseInventory(doc);
  } catch (err) {
    if (err instanceof InventoryError) problems = err.problems;
  }
  expect(problems).toEqual(
    expect.arrayContaining([
      expect.stringMatching(
        /^services\.0\.applicationWebhook: a secret reference \(\{ env: NAME \} or \{ file: path \}\)/,
      ),
      expect.stringMatching(/^notifications\.0\.url: a secret reference/),
    ]),
  );
  expect(problems.join('\n')).not.toContain(TOKEN);
});

test("describeService holds the reference, not the URL; the webhook is called by the service's name", async () => {
  const inventory = inventoryWith(`${base}/hooks/${TOKEN}/failover`);
  const plan = await createInventoryActivities(inventory).describeService({ service: 'shop' });
  expect(plan.service.applicationWebhook).toEqual({ file: 'app-webhook-url' });
  expect(JSON.stringify(plan)).not.toContain(TOKEN);

  const notify = createNotifyActivities(inventory, { publishSns: () => Promise.reject(new Error('no SNS')) }, dir);
  const input = {
    service: 'shop',
    primary: { server: 'db-replica', host: '127.0.0.1', port: 3306 },
    idempotencyKey: 'k',
  };
  const result = await notify.callApplicationWebhook(input);
  expect(result).toEqual({ webhook: 'application webhook of shop', status: 200 });
  expect(received.at(-1)).toEqual({ path: `/hooks/${TOKEN}/failover`, body: JSON.stringify(input) });
  // The people webhook too: resolved from the target's name.
  await expect(
    notify.notifyTarget({ target: 'oncall-webhook', subject: 's', message: 'm', idempotencyKey: 'k2' }),
  ).resolves.toEqual({ target: 'oncall-webhook', kind: 'webhook', receipt: 'HTTP 200' });
  expect(received.at(-1)!.path).toBe(`/hooks/${TOKEN}/failover`);
});

test('a reference that holds no http(s) URL fails NotConfigured, naming the webhook, never the value', async () => {
  for (const value of [`not a url ${TOKEN}`, `file:///etc/${TOKEN}`]) {
    const notify = createNotifyActivities(
      inventoryWith(value),
      { publishSns: () => Promise.reject(new Error('x')) },
      dir,
    );
    const err = (await notify
      .callApplicationWebhook({
        service: 'shop',
        primary: { server: 'db-replica', host: 'h', port: 1 },
        idempotencyKey: 'k',
      })
      .catch((e: unknown) => e)) as ApplicationFailure;
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err.type).toBe('NotConfigured');
    expect(err.message).toMatch(/^application webhook of shop: its secret (does not hold a URL|holds a file: URL)/);
    expect(JSON.stringify([err.message, err.details, err.stack])).not.toContain(TOKEN);
  }
});
