// Every workflow type the worker registers. Names are the operator contract (README.md, Runbooks).
export { readiness } from './readiness';
export { nightlyBackup, serviceBackup } from './backup';
export { binlogArchive } from './binlog-archive';
export { failover } from './failover';
export { failback } from './failback';
export { drDrill } from './drill';
export { launchRunbook } from './launch';
export { monitor } from './monitor';
export { restoreTest } from './restore-test';
export { resolveSplit, serviceRoles } from './resolve-split';
export { serviceLock } from './lock';
