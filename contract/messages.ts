/**
 * What operators send and read while a runbook runs: the `status` query, the `approve`
 * signal (Web UI) and update (CLI: a synchronous answer, validated), the `abort` signal,
 * the service lock's own messages, and the search attributes that let them filter runs in the Web UI.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { AbortRequest, Approval, ApprovalReceipt, ChildGate } from './approvals';
import type { MonitorState, RunbookStatus, ServiceLockState } from './status';

/** Every run's `status`: a RunbookStatus, or one that extends it (a drill's DrillStatus, a backup's BackupStatus). */
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

/** serviceLock (`lock-<service>`): its holder signals `release` on every exit path; `holder` names who holds it. */
export const releaseLockSignal = defineSignal<[{ by: string }]>('release');
export const lockHolderQuery = defineQuery<ServiceLockState>('holder');

export const DrService = defineSearchAttributeKey('DrService', SearchAttributeType.KEYWORD);
export const DrRunbook = defineSearchAttributeKey('DrRunbook', SearchAttributeType.KEYWORD);
export const DrMode = defineSearchAttributeKey('DrMode', SearchAttributeType.KEYWORD);
export const DrOutcome = defineSearchAttributeKey('DrOutcome', SearchAttributeType.KEYWORD);
