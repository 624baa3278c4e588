/**
 * One measured drbook backup, in a process of its own so its peak memory is its own:
 * the real `dumpDatabase` activity (the worker's code path, called directly) for one service
 * of a generated inventory, to one destination. Prints one JSON line.
 *
 * node -r ts-node/register/transpile-only scripts/bench/dump-once.ts <inventory.yaml> <service> <destination>
 * <backupId>
 */
import { loadInventory } from '../../config/load';
import { buildAdapters } from '../../activities';
import type { BackupDestinationName } from '../../contract';
import { MemorySampler } from './rss';

async function main() {
  const [file, service, destination, backupId] = process.argv.slice(2);
  const adapters = buildAdapters(loadInventory(file));
  try {
    const sampler = new MemorySampler().start();
    const t0 = process.hrtime.bigint();
    const dump = await adapters.activities.dumpDatabase({
      service,
      backupId,
      destinations: [destination as BackupDestinationName],
    });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const memory = sampler.stop();
    const { uncompressedSize, size } = dump.object;
    process.stdout.write(
      `${JSON.stringify({ seconds, uncompressedSize, size, memory, exactRows: dump.rowCounts.exact })}\n`,
    );
  } finally {
    await adapters.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
