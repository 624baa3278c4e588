/**
 * What operators send and read while a runbook runs: the `status` query, the `approve`
 * signal (Web UI) and update (CLI: a synchronous answer, validated), the `abort` signal,
 * and the search attributes that let them filter runs in the Web UI.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Approval, RunbookStatus } from './contract';
import type { ChildGate } from './page';

export interface AbortRequest {
  by: string;
  reason: string;
}

export interface MonitorState {
  service: string;
  consecutiveFailures: number;
  firstFailedAt: string | null;
  lastHealthyAt: string | null;
  lastCheck: { at: string; ok: boolean; detail: string } | null;
  cooldownUntil: string | null;
  incidents: { detectedAt: string; incidentStartedAt: string; failover: string; started: boolean; detail: string }[];
}

export interface ApprovalReceipt {
  accepted: true;
  step: string;
  approver: string;
  /** Distinct approvers still needed at this gate after this one. */
  stillNeeded: number;
}

export const statusQuery = defineQuery<RunbookStatus>('status');

/** The monitor's own view: consecutive failures, the incident start, cooldown, incidents declared. */
export const monitorStateQuery = defineQuery<MonitorState>('monitorState');
export const approveSignal = defineSignal<[Approval]>('approve');
export const approveUpdate = defineUpdate<ApprovalReceipt, [Approval]>('approve');
export const abortSignal = defineSignal<[AbortRequest]>('abort');
/**
 * Sent by a runbook to the drill that started it when its gate opens, changes or closes (null): the drill's own
 * page then shows the gate and the signal to paste, and relays the approvals it receives. Not for operators.
 */
export const childGateSignal = defineSignal<[ChildGate | null]>('childGate');

export const DrService = defineSearchAttributeKey('DrService', SearchAttributeType.KEYWORD);
export const DrRunbook = defineSearchAttributeKey('DrRunbook', SearchAttributeType.KEYWORD);
export const DrMode = defineSearchAttributeKey('DrMode', SearchAttributeType.KEYWORD);
export const DrOutcome = defineSearchAttributeKey('DrOutcome', SearchAttributeType.KEYWORD);
