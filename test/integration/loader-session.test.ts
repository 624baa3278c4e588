/**
 * A loader session whose client exits while a write waits for its pipe to drain: the load reports the client's own
 * failure (a refused client command, named), never the broken pipe the write saw first. The race behind a CI failure
 * of restore-hostile.test.ts ("step restoreIntoScratch failed: write EPIPE").
 */
import { rmSync } from 'node:fs';
import { ErrorType } from '../../contract';
import { MysqlPools } from '../../activities/mysql';
import { loaderOptions } from '../../activities/process/mysql-client';
import { writeClientDefaults } from '../../activities/process/defaults-file';
import { LoaderSession } from '../../activities/restore/loader-session';
import { resolveSecret } from '../../config/load';
import { failureType, sandbox } from '../helpers/stack';

const loaded = sandbox();
const pools = new MysqlPools(loaded.inventory.mysqlServers, (s) => resolveSecret(s.password, loaded.baseDir));

test(
  'a client that exits under a full pipe: ' + 'the write waits for its exit and the failure is the client’s',
  async () => {
    const defaults = await writeClientDefaults(pools.target('db-restore-scratch'), { kind: 'loader-test' });
    try {
      const failures: Error[] = [];
      const session = new LoaderSession(0, defaults.file, await loaderOptions(), (err) => failures.push(err));
      // The client refuses the command inside the statement and exits; the rows after it fill the pipe (64 KiB)
      // long before, so the write below waits for a drain that never comes: the pipe breaks under it.
      const rows = `INSERT INTO nowhere VALUES ('${'x'.repeat(1000)}');\n`.repeat(16 * 1024);
      await expect(session.write(`SELECT 1 \\! touch /tmp/drbook-never\n;\n${rows}`)).resolves.toBeUndefined();
      const exit = await session.exited;
      expect(exit.code).not.toBe(0);
      expect(failures.map(failureType)).toEqual([ErrorType.RestoreRefused]);
      expect(failures[0].message).toMatch(/client command/);
    } finally {
      rmSync(defaults.dir, { recursive: true, force: true });
    }
  },
);
