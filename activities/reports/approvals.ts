/**
 * Who approved, as Temporal recorded it. An approval names its approver in its payload (checked
 * against the inventory by the workflow); Temporal records, next to it, the identity of the client
 * that sent the signal or update (`WorkflowExecutionSignaled.identity`, the accepted update's
 * `request.meta.identity`) — with mTLS per operator, that is who really sent it. Reports read both
 * from the run's event history, so neither can be edited after the fact by the workflow.
 */
import type { Client } from '@temporalio/client';
import type { LoadedDataConverter, Payload } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import type { Approval } from '../../contract';

type History = temporal.api.history.v1.IHistory;

/** One `approve` signal or accepted update in a run's history. */
export interface ApprovalMessage {
  workflowId: string;
  eventId: number;
  /** When the run received it: a signal's event time; an update's, the workflow task that delivered it. */
  at: string;
  via: 'signal' | 'update';
  /** The sender's client identity as Temporal recorded it ('' when none was sent). */
  identity: string;
  /** Set when another workflow sent the signal (a drill relaying an approval to its child). */
  relayedBy?: string;
  step: string | null;
  approver: string | null;
}

/** An approval the run accepted, with the identity Temporal recorded for the message that carried it. */
export type IdentifiedApproval<A extends Approval = Approval> = A & { identity: string | null; via: string | null };

async function decodeFirst(converter: LoadedDataConverter, payloads: Payload[] | null | undefined): Promise<unknown> {
  if (!payloads?.length) return undefined;
  let decoded = payloads;
  for (const codec of [...converter.payloadCodecs].reverse()) decoded = await codec.decode(decoded);
  return converter.payloadConverter.fromPayload(decoded[0]);
}

const eventTime = (t: temporal.api.history.v1.IHistoryEvent['eventTime']) =>
  t?.seconds != null ? new Date(Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6)).toISOString() : '';

/** Every `approve` signal and accepted `approve` update in one history, in order. */
export async function approvalMessages(
  workflowId: string,
  history: History,
  converter: LoadedDataConverter,
): Promise<ApprovalMessage[]> {
  const out: ApprovalMessage[] = [];
  const timeOf = new Map((history.events ?? []).map((e) => [Number(e.eventId), eventTime(e.eventTime)]));
  for (const e of history.events ?? []) {
    const signal = e.workflowExecutionSignaledEventAttributes;
    const update = e.workflowExecutionUpdateAcceptedEventAttributes;
    let base: Omit<ApprovalMessage, 'step' | 'approver'> | null = null;
    let payloads: Payload[] | null | undefined;
    if (signal?.signalName === 'approve') {
      base = {
        workflowId,
        eventId: Number(e.eventId),
        at: eventTime(e.eventTime),
        via: 'signal',
        identity: signal.identity ?? '',
        ...(signal.externalWorkflowExecution?.workflowId
          ? { relayedBy: signal.externalWorkflowExecution.workflowId }
          : {}),
      };
      payloads = signal.input?.payloads;
    } else if (update?.acceptedRequest?.input?.name === 'approve') {
      base = {
        workflowId,
        eventId: Number(e.eventId),
        // The accepted event is written after the handler ran; the run received the update in the task it names.
        at: timeOf.get(Number(update.acceptedRequestSequencingEventId)) ?? eventTime(e.eventTime),
        via: 'update',
        identity: update.acceptedRequest.meta?.identity ?? '',
      };
      payloads = update.acceptedRequest.input.args?.payloads;
    }
    if (!base) continue;
    const value = (await decodeFirst(converter, payloads).catch(() => undefined)) as Partial<Approval> | undefined;
    out.push({
      ...base,
      step: typeof value?.step === 'string' ? value.step : null,
      approver: typeof value?.approver === 'string' ? value.approver : null,
    });
  }
  return out;
}

/**
 * The approval messages of these runs (a drill and its children; the latest run of an id without runId), from their
 * histories.
 */
export async function approvalMessagesOf(
  client: Client,
  runs: (string | { workflowId: string; runId?: string })[],
): Promise<ApprovalMessage[]> {
  const all: ApprovalMessage[] = [];
  for (const run of runs) {
    const { workflowId, runId } = typeof run === 'string' ? { workflowId: run, runId: undefined } : run;
    const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    all.push(...(await approvalMessages(workflowId, history, client.options.loadedDataConverter)));
  }
  return all;
}

/**
 * Each accepted approval joined with the message that carried it: the first not yet used with the
 * same step and approver, recorded no later than the approval. A message sent by a client wins
 * over a drill's relay of it (the relay's identity is the drill's worker, not the operator).
 * Returns the approvals with identity, and the messages no approval used (refused or duplicate).
 */
export function withIdentities<A extends Approval>(
  approvals: A[],
  messages: ApprovalMessage[],
): { approvals: IdentifiedApproval<A>[]; unaccepted: ApprovalMessage[] } {
  const used = new Set<ApprovalMessage>();
  const relays = messages.filter((m) => m.relayedBy);
  const direct = messages.filter((m) => !m.relayedBy);
  // The run stamps an approval with its workflow-task time, at or after the message arrived (1 s of rounding slack).
  const fits = (a: A) => (m: ApprovalMessage) =>
    !used.has(m) &&
    m.step === a.step &&
    m.approver === a.approver &&
    (!a.at || !m.at || Date.parse(m.at) <= Date.parse(a.at) + 1000);
  const joined = approvals.map((a) => {
    const relay = relays.find(fits(a));
    if (relay) used.add(relay);
    const message = direct.find(fits(a)) ?? relay;
    if (message) used.add(message);
    return {
      ...a,
      identity: message ? message.identity : null,
      via: message
        ? message.relayedBy && message === relay
          ? `signal relayed by ${message.relayedBy}`
          : message.via
        : null,
    };
  });
  return { approvals: joined, unaccepted: messages.filter((m) => !used.has(m) && !m.relayedBy) };
}
