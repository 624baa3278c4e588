/**
 * Count a failover's side effects where they happened, not in the workflow history:
 * fences and promotions in MariaDB's own statement counters, AWS calls in moto's request recorder
 * (Route 53 changes, RDS promotions, EC2 starts, SNS publishes), the VIP in the network
 * namespaces, and the sandbox application's webhook calls and on-call inbox.
 */
import { execFileSync } from 'node:child_process';
import type { LoadedInventory } from '../../config/load';
import { netns } from './estate';
import { sql } from './stack';

interface RecordedCall {
  method: string;
  url: string;
  body: string;
  body_encoded: boolean;
}

interface Keyed {
  idempotencyKey?: string;
  body?: { idempotencyKey?: string; subject?: string };
}

export interface SideEffects {
  /** ALTER EVENT statements the old primary executed (Com_alter_event): a fence disables its heartbeat event once. */
  fences: number;
  /** The old primary's read_only when counted (the fence's other half). */
  primaryReadOnly: boolean;
  /** RESET statements the DR server executed (MariaDB counts RESET SLAVE ALL in Com_reset): one per promotion. */
  promotions: number;
  /** ChangeResourceRecordSets calls for the service's record. */
  dnsChanges: number;
  rdsPromotions: number;
  ec2Starts: number;
  /** Namespaces (hosts) holding the VIP. */
  vipHolders: string[];
  /** Application webhook calls, per idempotency key. */
  appWebhook: Record<string, number>;
  /** People notifications per target: the webhook inbox per idempotency key, SNS per subject. */
  inbox: Record<string, number>;
  sns: Record<string, number>;
}

/** Side effects found more than once (the chaos table's last column). */
export function duplicates(e: SideEffects): number {
  const extra = (n: number) => Math.max(0, n - 1);
  return (
    extra(e.promotions) +
    extra(e.dnsChanges) +
    extra(e.rdsPromotions) +
    extra(e.ec2Starts) +
    extra(e.vipHolders.length) +
    [...Object.values(e.appWebhook), ...Object.values(e.inbox), ...Object.values(e.sns)].reduce(
      (n, c) => n + extra(c),
      0,
    )
  );
}

const count = (keys: string[]) => keys.reduce<Record<string, number>>((m, k) => ({ ...m, [k]: (m[k] ?? 0) + 1 }), {});

/** Start counting (call before the run); `read()` returns what happened since. */
export async function countSideEffects(loaded: LoadedInventory) {
  const shop = loaded.inventory.services.find((s) => s.name === 'shop')!;
  const aws = loaded.inventory.aws.endpoint!;
  // The sandbox app's own address (its webhook URLs are secrets; its records are read here).
  const app = new URL(shop.health.httpUrl!).origin;
  const status = async (server: string, variable: string) => {
    const c = await sql(loaded, server);
    try {
      const [rows] = await c.query<import('mysql2').RowDataPacket[]>(`SHOW GLOBAL STATUS LIKE '${variable}'`);
      return Number(rows[0].Value);
    } finally {
      await c.end();
    }
  };
  const resetSlaves = () => status(shop.database!.replica!, 'Com_reset');
  const alterEvents = () => status(shop.database!.primary, 'Com_alter_event');
  const readOnly = async () => {
    const c = await sql(loaded, shop.database!.primary);
    try {
      const [rows] = await c.query<import('mysql2').RowDataPacket[]>('SELECT @@GLOBAL.read_only AS ro');
      return Number(rows[0].ro) === 1;
    } finally {
      await c.end();
    }
  };
  const getJson = async <T>(url: string) => (await (await fetch(url)).json()) as T;
  const recorder = (what: string) => fetch(`${aws}/moto-api/recorder/${what}`, { method: 'POST' });

  const resetsBefore = await resetSlaves();
  const alterEventsBefore = await alterEvents();
  const webhookBefore = (await getJson<unknown[]>(`${app}/failover`)).length;
  const inboxBefore = (await getJson<unknown[]>(`${app}/notifications`)).length;
  await recorder('reset-recording');
  await recorder('start-recording');

  return {
    async read(): Promise<SideEffects> {
      const text = await (await fetch(`${aws}/moto-api/recorder/download-recording`)).text();
      await recorder('stop-recording');
      const calls = text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as RecordedCall)
        .map((c) => ({ ...c, body: c.body_encoded ? Buffer.from(c.body, 'base64').toString('utf8') : (c.body ?? '') }));
      const action = (name: string) => calls.filter((c) => new URLSearchParams(c.body).get('Action') === name);
      const vipOn = (ns: string) =>
        execFileSync('ip', ['-n', ns, '-o', 'addr', 'show', 'dev', shop.vip!.device], { encoding: 'utf8' }).includes(
          ` ${shop.vip!.address} `,
        );
      return {
        fences: (await alterEvents()) - alterEventsBefore,
        primaryReadOnly: await readOnly(),
        promotions: (await resetSlaves()) - resetsBefore,
        dnsChanges: calls.filter(
          (c) => c.method === 'POST' && /\/rrset\/?$/.test(c.url) && c.body.includes(`<Name>${shop.dns!.record}`),
        ).length,
        rdsPromotions: action('PromoteReadReplica').length,
        ec2Starts: action('StartInstances').length,
        vipHolders: [netns.primary, netns.dr].filter(vipOn),
        appWebhook: count(
          (await getJson<Keyed[]>(`${app}/failover`)).slice(webhookBefore).map((c) => c.idempotencyKey ?? '?'),
        ),
        inbox: count(
          (await getJson<Keyed[]>(`${app}/notifications`)).slice(inboxBefore).map((n) => n.body?.idempotencyKey ?? '?'),
        ),
        sns: count(action('Publish').map((c) => new URLSearchParams(c.body).get('Subject') ?? '?')),
      };
    },
  };
}

/** What one completed drill failover of shop does, exactly once each (jest expectations). */
export function expectEachOnce(seen: SideEffects): void {
  // The fence is idempotent (read_only on, heartbeat event off): a retry after a connection fault may run it
  // again harmlessly, so it is counted but not held to once here; worker-kill.test.ts holds it to once.
  expect(seen.fences).toBeGreaterThanOrEqual(1);
  expect(seen).toMatchObject({
    primaryReadOnly: true,
    promotions: 1,
    dnsChanges: 1,
    rdsPromotions: 1,
    vipHolders: [netns.dr],
  });
  expect(Object.values(seen.appWebhook)).toEqual([1]);
  // "failed over" and the report, to each target: the webhook target's inbox by idempotency key
  // (<run>/<event>/<target>), the SNS target by subject.
  const byEvent = (keys: string[]) => keys.map((k) => k.split('/').slice(-2).join('/')).sort();
  expect(byEvent(Object.keys(seen.inbox))).toEqual(['failed-over/oncall-webhook', 'report/oncall-webhook']);
  expect(Object.values(seen.inbox)).toEqual([1, 1]);
  expect(Object.keys(seen.sns)).toHaveLength(2);
  expect(Object.values(seen.sns)).toEqual([1, 1]);
  expect(duplicates(seen)).toBe(0);
}
