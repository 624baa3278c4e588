/**
 * Scratch database and RDS restore-test names (workflows/restore-test/names.ts): whatever the length of the service or
 * database names, each run's names keep its run tag (two restore tests never drop each other's databases), stay
 * valid for the activities that refuse anything else, and names that used to fit are unchanged.
 */
import fc from 'fast-check';
import { SCRATCH_DATABASE } from '../../activities/restore';
import { RESTORED_RDS_INSTANCE } from '../../activities/restore/rds';
import {
  restoredRdsInstanceName,
  restoredRdsInstanceNameBeforeRunTagKept,
  scratchNames,
  scratchNamesBeforeRunTagKept,
} from '../../workflows/restore-test/names';

const serviceName = fc.stringMatching(/^[a-z][a-z0-9-]{0,62}$/);
const runTag = fc.stringMatching(/^[a-z0-9]{8}$/);
const database = fc.stringMatching(/^[A-Za-z0-9_$-]{1,64}$/);
const LONG = 'payments-settlement-reconciliation-eu-west';

test('two runs of a long-named service get different scratch and RDS names, each with its run tag', () => {
  const [a, b] = [scratchNames(LONG, 'aaaa1111', ['shop']), scratchNames(LONG, 'bbbb2222', ['shop'])];
  expect(a[0].scratch).not.toBe(b[0].scratch);
  expect(a[0].scratch).toMatch(/_aaaa1111$/);
  expect(restoredRdsInstanceName(LONG, 'aaaa1111')).toMatch(/-aaaa1111$/);
  expect(restoredRdsInstanceName(LONG, 'aaaa1111')).not.toBe(restoredRdsInstanceName(LONG, 'bbbb2222'));
});

test('the names before this change dropped the run tag of a long service name (what the fix is for)', () => {
  expect(scratchNamesBeforeRunTagKept(LONG, 'aaaa1111', ['shop'])).toEqual(
    scratchNamesBeforeRunTagKept(LONG, 'bbbb2222', ['shop']),
  );
});

test('two long database names with one prefix get two scratch databases in one run', () => {
  const dbs = ['customer_orders_archive_2024_q1', 'customer_orders_archive_2024_q2', 'Shop', 'shop'];
  const names = scratchNames(LONG, 'aaaa1111', dbs).map((d) => d.scratch);
  expect(new Set(names).size).toBe(dbs.length);
});

test('short names are what they were (running restore tests and their reports keep their names)', () => {
  expect(scratchNames('shop', 'abcd1234', ['shop'])).toEqual([{ source: 'shop', scratch: 'restore_shop_abcd1234' }]);
  expect(scratchNames('shop', 'abcd1234', ['shop', 'crm'])).toEqual(
    scratchNamesBeforeRunTagKept('shop', 'abcd1234', ['shop', 'crm']),
  );
  expect(restoredRdsInstanceName('shop', 'abcd1234')).toBe('drbook-restore-test-shop-abcd1234');
});

test('any service, databases and run tags: run tag kept, names distinct, valid, unchanged where they fitted', () => {
  fc.assert(
    fc.property(
      serviceName,
      fc.uniqueArray(database, { minLength: 1, maxLength: 4 }),
      fc.uniqueArray(runTag, { minLength: 2, maxLength: 2 }),
      (service, databases, [tagA, tagB]) => {
        const a = scratchNames(service, tagA, databases).map((d) => d.scratch);
        const b = scratchNames(service, tagB, databases).map((d) => d.scratch);
        for (const n of a) {
          expect(n).toMatch(SCRATCH_DATABASE);
          expect(n).toContain(`_${tagA}`);
        }
        expect(new Set([...a, ...b]).size).toBe(2 * databases.length);
        const rds = [restoredRdsInstanceName(service, tagA), restoredRdsInstanceName(service, tagB)];
        for (const [n, tag] of [
          [rds[0], tagA],
          [rds[1], tagB],
        ]) {
          expect(n).toMatch(RESTORED_RDS_INSTANCE);
          expect(n).not.toMatch(/--|-$/);
          expect(n.endsWith(`-${tag}`)).toBe(true);
        }
        // Where the old names kept the run tag and every character, they are the names still.
        const oldBase = `restore_${service.replace(/-/g, '_')}_${tagA}`;
        const fitted = (db: string) => db === db.toLowerCase().replace(/[^a-z0-9_]/g, '_');
        const fittedAll = databases.length === 1 || databases.every((d) => fitted(d) && oldBase.length + d.length < 57);
        if (oldBase.length <= 40 && fittedAll)
          expect(a).toEqual(scratchNamesBeforeRunTagKept(service, tagA, databases).map((d) => d.scratch));
        if (`drbook-restore-test-${service}-${tagA}`.length <= 60 && !/--|-$/.test(service))
          expect(rds[0]).toBe(restoredRdsInstanceNameBeforeRunTagKept(service, tagA));
      },
    ),
    { numRuns: 1000 },
  );
});
