import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { InventoryError, parseInventory, targetsFor } from '../../config/inventory';
import { expandEnv, loadInventory } from '../../config/load';
import { SANDBOX_INVENTORY } from '../helpers/stack';

const sandboxDoc = () => YAML.parse(expandEnv(readFileSync(SANDBOX_INVENTORY, 'utf8'), {}, []));

function problemsOf(doc: unknown): string[] {
  try {
    parseInventory(doc);
  } catch (err) {
    if (err instanceof InventoryError) return err.problems;
    throw err;
  }
  throw new Error('expected the inventory to be rejected');
}

describe('inventory', () => {
  test('the sandbox inventory is valid and has the critical service shop', () => {
    const { inventory } = loadInventory(SANDBOX_INVENTORY, {});
    const shop = inventory.services.find((s) => s.name === 'shop')!;
    expect(shop.tier).toBe('critical');
    expect(targetsFor(shop)).toEqual({ rtoSeconds: 900, rpoSeconds: 300 });
    expect(shop.health.interval).toBe(5);
    expect(shop.backup!.archive.glacierAfter).toBe(90 * 86400);
    expect(inventory.mysqlServers['db-primary'].port).toBe(13306);
  });

  test('ports follow the environment', () => {
    const { inventory } = loadInventory(SANDBOX_INVENTORY, { DRBOOK_PRIMARY_PORT: '23306' });
    expect(inventory.mysqlServers['db-primary'].port).toBe(23306);
  });

  test('a bad inventory is rejected with every problem listed by path', () => {
    const doc = sandboxDoc();
    doc.regions.dr = 'mars';
    doc.services[0].tier = 'gold';
    doc.services[0].dns.ttl = -5;
    doc.services[0].health.interval = 'soon';
    doc.mysqlServers['db-primary'].password = 'plain-text-password';
    doc.services[0].surprise = true;
    const problems = problemsOf(doc);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^regions\.dr: /),
        expect.stringMatching(/^services\.0\.tier: /),
        expect.stringMatching(/^services\.0\.dns\.ttl: /),
        expect.stringMatching(/^services\.0\.health\.interval: expected a duration/),
        expect.stringMatching(/^mysqlServers\.db-primary\.password: /),
        expect.stringMatching(/^services\.0: .*surprise/),
      ]),
    );
    expect(problems.length).toBeGreaterThanOrEqual(6);
  });

  test('references to unknown servers and hosts are named', () => {
    const doc = sandboxDoc();
    doc.services[0].database.replica = 'db-nowhere';
    doc.services[0].vip.drHost = 'host-nowhere';
    doc.services.push({ ...doc.services[0] });
    const problems = problemsOf(doc);
    expect(problems).toEqual(
      expect.arrayContaining([
        'services.0.database.replica: unknown MySQL server "db-nowhere"',
        'services.0.vip.drHost: unknown SSH host "host-nowhere"',
        `services.${doc.services.length - 1}.name: duplicate service "shop"`,
      ]),
    );
  });

  test('an unset variable without a default is a problem, reported with the rest', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'drbook-inv-'));
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(
      file,
      'version: 1\nregions: { primary: ${NOT_SET_ANYWHERE}, dr: us-west-2 }\napprovers: []\nservices: []\n',
    );
    expect(() => loadInventory(file, {})).toThrow(InventoryError);
    try {
      loadInventory(file, {});
    } catch (err) {
      const problems = (err as InventoryError).problems;
      expect(problems).toContain('(env): ${NOT_SET_ANYWHERE} is not set and has no default');
      expect(problems.some((p) => p.startsWith('approvers: '))).toBe(true);
    }
  });

  test('the AWS example inventory is valid', () => {
    const { inventory } = loadInventory(path.join(__dirname, '..', '..', 'config', 'aws-example.yaml'), {});
    expect(inventory.aws.endpoint).toBeUndefined();
    expect(inventory.services.length).toBeGreaterThan(0);
  });
});
