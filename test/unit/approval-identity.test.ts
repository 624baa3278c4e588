/**
 * Joining accepted approvals with the messages Temporal recorded (activities/reports/approvals.ts):
 * the integration test drives real signals and updates; these cases pin the join's rules.
 */
import { withIdentities, type ApprovalMessage } from '../../activities/reports/approvals';

const msg = (m: Partial<ApprovalMessage>): ApprovalMessage => ({
  workflowId: 'failover-shop',
  eventId: 1,
  at: '2026-11-26T10:00:00.000Z',
  via: 'signal',
  identity: 'client',
  step: 'promote',
  approver: 'alice',
  ...m,
});

test('each approval takes the first matching message; refused ones are listed as not accepted', () => {
  const messages = [
    msg({ eventId: 5, identity: 'mallory-client', approver: 'mallory' }),
    msg({ eventId: 6, identity: 'alice-laptop', via: 'update' }),
    msg({ eventId: 7, identity: 'alice-again' }), // a duplicate, refused by the run
  ];
  const { approvals, unaccepted } = withIdentities(
    [{ step: 'promote', approver: 'alice', at: '2026-11-26T10:00:01.000Z' }],
    messages,
  );
  expect(approvals).toEqual([
    { step: 'promote', approver: 'alice', at: '2026-11-26T10:00:01.000Z', identity: 'alice-laptop', via: 'update' },
  ]);
  expect(unaccepted.map((m) => m.eventId)).toEqual([5, 7]);
});

test("a drill's relay yields to the operator's own message; a message after the approval is not its carrier", () => {
  const operator = msg({ workflowId: 'drill-shop', identity: 'bob@webui', approver: 'bob' });
  const relay = msg({ eventId: 9, identity: 'worker-1', approver: 'bob', relayedBy: 'drill-shop' });
  const later = msg({ eventId: 12, at: '2026-11-26T10:05:00.000Z', identity: 'late', approver: 'bob' });
  const { approvals, unaccepted } = withIdentities(
    [{ step: 'promote', approver: 'bob', at: '2026-11-26T10:00:00.500Z', runbook: 'failover' }],
    [relay, operator, later],
  );
  expect(approvals[0]).toMatchObject({ identity: 'bob@webui', via: 'signal' });
  expect(unaccepted).toEqual([later]);
  // Without the drill's own history, the relay is all there is, and says so.
  expect(withIdentities([{ step: 'promote', approver: 'bob' }], [relay]).approvals[0]).toMatchObject({
    identity: 'worker-1',
    via: 'signal relayed by drill-shop',
  });
  expect(withIdentities([{ step: 'promote', approver: 'carol' }], []).approvals[0]).toMatchObject({
    identity: null,
    via: null,
  });
});
