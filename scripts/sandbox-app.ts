/**
 * The sandbox application: a stand-in for the user's service (`shop`), so a measured
 * RTO means "the application works again", not only "the database was promoted".
 *
 *   GET  /health                        writes and reads through the current primary; 200 only if both work
 *   POST /hooks/<token>/failover        the failover webhook: { "primary": { "host", "port" } } switches the database
 *   GET  /failover                      the webhook calls received so far
 *   POST /hooks/<token>/notifications   a stand-in on-call inbox (drbook's "people" webhook target)
 *   GET  /notifications                 what the inbox has received
 *
 * The webhook paths are those of the inventory's webhook URLs (secret references, token included, written by
 * scripts/stack.sh): any other POST, the token missing or wrong, is refused 401, as a real receiver would.
 *
 * The current primary survives restarts in .data/app/state.json.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { loadInventory, resolveWebhookUrl } from '../config/load';

interface Endpoint {
  host: string;
  port: number;
}

const serviceName = process.env.DRBOOK_APP_SERVICE ?? 'shop';
const listenPort = Number(process.env.DRBOOK_APP_PORT ?? 8080);
const dataDir = process.env.DRBOOK_DATA ?? path.join(__dirname, '..', '.data');
const stateFile = path.join(dataDir, 'app', 'state.json');

const { inventory, baseDir } = loadInventory();
const service = inventory.services.find((s) => s.name === serviceName);
if (!service?.database) throw new Error(`sandbox app: service ${serviceName} with a database is not in the inventory`);
// Where drbook's webhooks POST: the paths of their URLs, token included.
const failoverPath = service.applicationWebhook
  ? new URL(resolveWebhookUrl(service.applicationWebhook, baseDir, `application webhook of ${serviceName}`)).pathname
  : null;
const inboxPaths = new Set(
  inventory.notifications.flatMap((n) =>
    n.kind === 'webhook' ? [new URL(resolveWebhookUrl(n.url, baseDir, `webhook ${n.name}`)).pathname] : [],
  ),
);
const primaryServer = inventory.mysqlServers[service.database.primary];
// The application's own user (no SUPER): a fenced, read-only primary refuses its writes, as in production.
const credentials = {
  user: 'shop_app',
  password: readFileSync(path.join(dataDir, 'secrets', 'app-password'), 'utf8').trim(),
};

function loadState(): { primary: Endpoint } {
  try {
    return JSON.parse(readFileSync(stateFile, 'utf8')) as { primary: Endpoint };
  } catch {
    return { primary: { host: primaryServer.host, port: primaryServer.port } };
  }
}

let state = loadState();
let pool = connect(state.primary);
const failovers: unknown[] = [];
const notifications: unknown[] = [];

function connect(primary: Endpoint) {
  return mysql.createPool({ ...primary, ...credentials, database: 'shop', connectionLimit: 4, connectTimeout: 2000 });
}

async function checkHealth(): Promise<{ ok: boolean; primary: Endpoint; detail: string }> {
  try {
    await pool.query(
      'CREATE TABLE IF NOT EXISTS app_health (id TINYINT PRIMARY KEY, checked_at TIMESTAMP(6) NOT NULL)',
    );
    await pool.query('REPLACE INTO app_health (id, checked_at) VALUES (1, NOW(6))');
    const [rows] = await pool.query<mysql.RowDataPacket[]>('SELECT COUNT(*) AS orders FROM orders');
    return { ok: true, primary: state.primary, detail: `orders=${rows[0].orders}` };
  } catch (err) {
    return { ok: false, primary: state.primary, detail: (err as Error).message };
  }
}

function readBody(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      try {
        resolve(text ? JSON.parse(text) : {});
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  void (async () => {
    try {
      if (req.method === 'GET' && req.url === '/health') {
        const health = await checkHealth();
        return send(res, health.ok ? 200 : 503, health);
      }
      if (req.method === 'POST' && req.url === failoverPath) {
        const body = (await readBody(req)) as { primary?: Partial<Endpoint> };
        const { host, port } = body.primary ?? {};
        if (typeof host !== 'string' || typeof port !== 'number') {
          return send(res, 400, { error: 'expected { "primary": { "host": string, "port": number } }' });
        }
        const old = pool;
        state = { primary: { host, port } };
        pool = connect(state.primary);
        mkdirSync(path.dirname(stateFile), { recursive: true });
        writeFileSync(stateFile, JSON.stringify(state));
        failovers.push({ at: new Date().toISOString(), ...body });
        void old.end().catch(() => undefined);
        return send(res, 200, { ok: true, primary: state.primary });
      }
      if (req.method === 'GET' && req.url === '/failover') return send(res, 200, failovers);
      if (req.method === 'POST' && inboxPaths.has(req.url ?? '')) {
        notifications.push({ at: new Date().toISOString(), body: await readBody(req) });
        return send(res, 200, { ok: true });
      }
      // Never echo the path: it may be a webhook URL with a wrong token.
      if (req.method === 'POST') return send(res, 401, { error: 'no webhook here, or a wrong token' });
      if (req.method === 'GET' && req.url === '/notifications') return send(res, 200, notifications);
      send(res, 404, { error: 'not found' });
    } catch (err) {
      send(res, 400, { error: (err as Error).message });
    }
  })();
});

server.listen(listenPort, '127.0.0.1', () =>
  console.log(`sandbox app for ${serviceName} on http://127.0.0.1:${listenPort}`),
);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    server.close();
    void pool.end().finally(() => process.exit(0));
  });
}
