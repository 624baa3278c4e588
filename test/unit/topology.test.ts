/**
 * The live topology's states from members' evidence (activities/mysql/discovery.ts classifyTopology): who is
 * writable decides, never the inventory's role names. The real servers are read in
 * test/integration/topology.test.ts.
 */
import { classifyTopology, membersOf } from '../../activities/mysql/discovery';
import type { TopologyMember } from '../../contract';
import { sandbox } from '../helpers/stack';

const replicating = (from: string | null): NonNullable<TopologyMember['replication']> => ({
  configured: true,
  ioRunning: true,
  sqlRunning: true,
  source: '10.0.0.1:3306',
  sourceServer: from,
  secondsBehind: 0,
  lastError: '',
});
const member = (server: string, over: Partial<TopologyMember> = {}): TopologyMember => ({
  server,
  role: server === 'db-primary' ? 'primary' : 'replica',
  home: server === 'db-primary',
  reachable: true,
  error: null,
  readOnly: true,
  replication: { ...replicating(null), configured: false, ioRunning: false, sqlRunning: false },
  gtidPosition: '0-1-10',
  ...over,
});

describe('live topology states', () => {
  test('normal: the home member writes and the replica replicates from it (matched by replication address)', () => {
    const t = classifyTopology('shop', [
      member('db-primary', { readOnly: false }),
      member('db-replica', { replication: replicating('db-primary') }),
    ]);
    expect(t).toMatchObject({ state: 'normal', writable: 'db-primary', replicas: ['db-replica'], fenced: [] });
  });

  test('failed-over: the DR member writes; the old primary is fenced; the detail says failback is pending', () => {
    const t = classifyTopology(
      'shop',
      [member('db-primary'), member('db-replica', { readOnly: false, replication: null })],
      '2026-12-01T22:00:00.000Z',
    );
    expect(t).toMatchObject({ state: 'failed-over', writable: 'db-replica', fenced: ['db-primary'] });
    expect(t.detail).toBe(
      'failed over to db-replica since 2026-12-01T22:00:00.000Z, failback pending; fenced: db-primary',
    );
  });

  test('failed-over also with the old primary gone (an unplanned failover)', () => {
    const t = classifyTopology('shop', [
      member('db-primary', { reachable: false, readOnly: null, replication: null, error: 'ECONNREFUSED' }),
      member('db-replica', { readOnly: false }),
    ]);
    expect(t.state).toBe('failed-over');
    expect(t.detail).toMatch(/unreachable: db-primary/);
  });

  test('split: two writable members, whatever their roles', () => {
    const t = classifyTopology('shop', [
      member('db-primary', { readOnly: false }),
      member('db-replica', { readOnly: false, replication: replicating('db-primary') }),
    ]);
    expect(t).toMatchObject({ state: 'split', writable: null, writers: ['db-primary', 'db-replica'] });
  });

  test(
    'degraded: home writes but the replica replicates from ' + 'elsewhere or a thread is stopped; or nobody writes',
    () => {
      const elsewhere = classifyTopology('shop', [
        member('db-primary', { readOnly: false }),
        member('db-replica', { replication: replicating(null) }),
      ]);
      expect(elsewhere.state).toBe('degraded');
      const stopped = classifyTopology('shop', [
        member('db-primary', { readOnly: false }),
        member('db-replica', { replication: { ...replicating('db-primary'), sqlRunning: false } }),
      ]);
      expect(stopped.state).toBe('degraded');
      const nobody = classifyTopology('shop', [member('db-primary'), member('db-replica')]);
      expect(nobody).toMatchObject({ state: 'degraded', writable: null, fenced: ['db-primary', 'db-replica'] });
    },
  );

  test('unknown: nobody answers as writable and a member does not answer', () => {
    const t = classifyTopology('shop', [
      member('db-primary', { reachable: false, readOnly: null, replication: null, error: 'ETIMEDOUT' }),
      member('db-replica', { replication: replicating('db-primary') }),
    ]);
    expect(t.state).toBe('unknown');
  });

  test("members come from the inventory's names: home first, a cold drServer as a standby, no duplicates", () => {
    const inv = sandbox().inventory;
    const of = (name: string) => membersOf(inv.services.find((s) => s.name === name)!);
    expect(of('shop')).toEqual([
      { server: 'db-primary', role: 'primary' },
      { server: 'db-replica', role: 'replica' },
    ]);
    expect(of('wiki')).toEqual([
      { server: 'db-scratch', role: 'primary' },
      { server: 'db-cold-dr', role: 'drServer' },
    ]);
    expect(of('catalog')).toEqual([]);
    const coldStandby = classifyTopology('wiki', [
      { ...member('db-scratch', { readOnly: false }), role: 'primary', home: true },
      { ...member('db-cold-dr'), role: 'drServer', home: false },
    ]);
    expect(coldStandby.state).toBe('normal');
  });
});
