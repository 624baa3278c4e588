/**
 * The operator contract, at the bottom of the import graph: runbook inputs, the `status` shapes, approvals,
 * reports and results, the failure-type table, the inventory's schema, the service plan and the messages
 * operators send. Imported by workflows, activities, workers, the CLI and tests; it imports none of them.
 * Pure, so it is safe in the workflow sandbox. The payload codec (contract/codec.ts, node:crypto) is the wire
 * format outside the sandbox and is imported from its own file, never from here.
 */
export * from './approvals';
export * from './backup';
export * from './backup-policy';
export * from './drill';
export * from './failures';
export * from './inputs';
export * from './inventory';
export * from './messages';
export * from './names';
export * from './plan';
export * from './reports';
export * from './restore';
export * from './status';
export * from './topology';
