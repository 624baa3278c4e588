/**
 * npm run bench:restore — how fast drbook restores a logical backup, against the stack's scratch
 * server (scripts/stack.sh start; DRBOOK_* variables as `scripts/stack.sh env` prints them).
 *
 * One generated database (the backup benchmark's generator, scripts/bench/database.ts), dumped
 * once by drbook's own dumpDatabase to a local destination, then restored into the scratch server:
 *   (a) zstd -d dump.sql.zst > dump.sql; mariadb < dump.sql     the plain procedure (baseline; decompression not timed)
 *   (b) myloader --threads N                                   if installed (apt mydumper), from a mydumper dump made
 *                                                              beforehand (not timed): a parallel loader on its own format
 *   (c) drbook restoreIntoScratch, parallel 1                  streamed from storage, binlog off
 *   (d) drbook restoreIntoScratch, parallel N                  INSERTs spread over N sessions
 *   (e) drbook restorePhysicalIntoScratch                      a mariabackup copy of the whole primary (taken beforehand,
 *                                                              not timed): stream | zstd -d | mbstream -x, --prepare, a
 *                                                              scratch mariadbd started on it; then every table counted
 * Each is checked by row counts against the dump's manifest counts.
 *
 *   npm run bench:restore -- [--scale 1] [--parallel 4] [--keep] [--no-physical]
 */
import { execFileSync, spawn } from 'node:child_process';
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { loadInventory, resolveSecret, type LoadedInventory } from '../config/load';
import { writeClientDefaults } from '../activities/mysql/dump';
import { buildAdapters } from '../workers/adapters';
import { dropBenchDatabase, ensureBenchDatabase } from './bench/database';

const option = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const log = (s: string) => console.log(s);
const DB = 'drbench_restore';

async function connect(loaded: LoadedInventory, server: string) {
  const s = loaded.inventory.mysqlServers[server];
  return mysql.createConnection({
    host: s.host,
    port: s.port,
    user: s.user,
    password: resolveSecret(s.password, loaded.baseDir),
  });
}

async function countRows(conn: mysql.Connection, db: string, tables: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of tables) {
    const [r] = await conn.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM \`${db}\`.\`${t}\``);
    out[t] = Number(r[0].n);
  }
  return out;
}

async function main(): Promise<void> {
  const scale = option('scale', 1);
  const parallel = option('parallel', 4);
  const loaded = loadInventory();
  const inventory = structuredClone(loaded.inventory);
  const work = mkdtempSync(path.join(tmpdir(), 'drbook-bench-restore-'));
  const shop = inventory.services.find((s) => s.name === 'shop')!;
  const bench = structuredClone(shop);
  bench.name = 'bench-restore';
  delete bench.rds;
  bench.backup!.databases = [DB];
  bench.backup!.destinations = { local: { path: path.join(work, 'backups') } };
  bench.backup!.physical = true;
  inventory.services.push(bench);
  const adapters = buildAdapters({ ...loaded, inventory });
  const a = adapters.activities;
  const primary = await connect(loaded, bench.database!.primary);
  const scratch = await connect(loaded, 'db-restore-scratch');
  const results: { name: string; seconds: number | null; note: string }[] = [];
  try {
    const gen = await ensureBenchDatabase(primary, DB, scale, log);
    log(`database ${DB}: ${gen.rows.toLocaleString()} rows, ${(gen.storedBytes / 1e9).toFixed(2)} GB in InnoDB`);
    const backupId = '20200101T000000Z';
    const dump = await a.dumpDatabase({ service: bench.name, backupId, destinations: ['local'] });
    const zst = dump.copies[0].location;
    log(
      `dump: ${(dump.object.uncompressedSize / 1e9).toFixed(2)} GB of SQL, ${(dump.object.size / 1e6).toFixed(0)} MB zstd`,
    );
    const tables = dump.tables.map((t) => t.table);
    const expected = Object.fromEntries(dump.tables.map((t) => [t.table, t.rows]));
    const verify = async (db: string) => {
      const got = await countRows(scratch, db, tables);
      const bad = tables.filter((t) => got[t] !== expected[t]);
      return bad.length ? `ROW COUNTS DIFFER: ${bad.join(', ')}` : 'row counts match';
    };

    // (a) baseline: the plain client reading the decompressed file, into the scratch server under the original name.
    const sqlFile = path.join(work, 'dump.sql');
    await pipeline(createReadStream(zst), spawnZstd(), createWriteStream(sqlFile));
    log(
      `decompressed to ${sqlFile} (${(statSync(sqlFile).size / 1e9).toFixed(2)} GB); restoring with plain mariadb ...`,
    );
    await scratch.query(`DROP DATABASE IF EXISTS \`${DB}\``);
    const defaults = await writeClientDefaults(targetOf(loaded, 'db-restore-scratch'));
    try {
      const t0 = performance.now();
      execFileSync('bash', ['-c', `mariadb --defaults-extra-file="$1" < "$2"`, 'bench', defaults.file, sqlFile], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      const s = (performance.now() - t0) / 1000;
      results.push({ name: 'mariadb < dump.sql (baseline)', seconds: s, note: await verify(DB) });
    } finally {
      rmSync(defaults.dir, { recursive: true, force: true });
      await scratch.query(`DROP DATABASE IF EXISTS \`${DB}\``);
    }

    // (b) myloader, the parallel loader, from its own (mydumper) directory dump made beforehand.
    let myloader: string | null = null;
    try {
      myloader = execFileSync('myloader', ['--version'], { encoding: 'utf8' }).trim();
    } catch {
      // absent
    }
    if (!myloader) {
      results.push({ name: 'myloader', seconds: null, note: 'skipped: not installed (apt-get install mydumper)' });
    } else {
      const dir = path.join(work, 'mydumper');
      const target = 'restore_bench_myloader';
      const primaryDefaults = await writeClientDefaults(targetOf(loaded, bench.database!.primary));
      const scratchDefaults = await writeClientDefaults(targetOf(loaded, 'db-restore-scratch'));
      try {
        execFileSync(
          'mydumper',
          [
            `--defaults-file=${primaryDefaults.file}`,
            '--database',
            DB,
            '--outputdir',
            dir,
            '--threads',
            '2',
            '--rows',
            '100000',
          ],
          { stdio: ['ignore', 'ignore', 'inherit'] },
        );
        log(`mydumper dump of ${DB} in ${dir}; restoring with ${myloader} ...`);
        const t0 = performance.now();
        execFileSync(
          'myloader',
          [
            `--defaults-file=${scratchDefaults.file}`,
            '--directory',
            dir,
            '--database',
            target,
            '--threads',
            String(parallel),
            '--overwrite-tables',
          ],
          { stdio: ['ignore', 'ignore', 'inherit'] },
        );
        const s = (performance.now() - t0) / 1000;
        results.push({
          name: `myloader --threads ${parallel} (${myloader.split(',')[0]})`,
          seconds: s,
          note: await verify(target),
        });
      } finally {
        rmSync(primaryDefaults.dir, { recursive: true, force: true });
        rmSync(scratchDefaults.dir, { recursive: true, force: true });
        rmSync(dir, { recursive: true, force: true });
        await scratch.query(`DROP DATABASE IF EXISTS \`${target}\``);
      }
    }

    // (c, d) drbook's restore, straight from the stored backup object.
    for (const p of [1, parallel]) {
      const target = `restore_bench_p${p}`;
      const r = await a.restoreIntoScratch({
        service: bench.name,
        backupId,
        destination: 'local',
        server: 'db-restore-scratch',
        databases: [{ source: DB, scratch: target }],
        size: dump.object.size,
        sha256: dump.object.sha256,
        parallel: p,
      });
      results.push({
        name: `drbook restoreIntoScratch, parallel ${p}`,
        seconds: r.seconds,
        note: await verify(target),
      });
      await a.dropScratchDatabase({ server: 'db-restore-scratch', databases: [target] });
    }

    // (e) drbook's physical restore: a mariabackup copy of the primary, into a scratch instance of its own.
    if (!process.argv.includes('--no-physical')) {
      const physicalId = '20200101T000001Z';
      const p = await a.takePhysicalBackup({ service: bench.name, backupId: physicalId });
      log(
        `physical backup of the whole primary: ${(p.object.uncompressedSize / 1e9).toFixed(2)} GB xbstream, ${(p.object.size / 1e6).toFixed(0)} MB zstd`,
      );
      const r = await a.restorePhysicalIntoScratch({
        service: bench.name,
        backupId: physicalId,
        destination: 'local',
        size: p.object.size,
        sha256: p.object.sha256,
        databases: [DB],
        gtid: p.position.gtid,
        expectedTables: dump.tables,
      });
      const t = r.seconds;
      const bad = r.checks.filter((c) => c.gate && !c.ok);
      results.push({
        name: 'drbook restorePhysicalIntoScratch (extract + prepare + start)',
        seconds: t.extract + t.prepare + t.start,
        note: `${bad.length ? `FAILED: ${bad.map((c) => c.detail).join('; ')}` : 'row counts match'} (extract ${t.extract.toFixed(1)} s, prepare ${t.prepare.toFixed(1)} s, start ${t.start.toFixed(1)} s; counting every row ${t.validate.toFixed(1)} s more; instance ${r.cleanedUp ? 'removed' : 'NOT removed'})`,
      });
    }
  } finally {
    if (!process.argv.includes('--keep')) await dropBenchDatabase(primary, DB).catch(() => undefined);
    await primary.end();
    await scratch.end();
    await adapters.close();
    rmSync(work, { recursive: true, force: true });
  }
  const baseline = results[0].seconds!;
  log('');
  log('| restore | seconds | vs baseline | check |');
  log('|---|---|---|---|');
  for (const r of results)
    log(
      `| ${r.name} | ${r.seconds === null ? 'n/a' : r.seconds.toFixed(1)} | ${r.seconds === null ? 'n/a' : `${(baseline / r.seconds).toFixed(2)}x`} | ${r.note} |`,
    );
}

function spawnZstd() {
  const z = spawn('zstd', ['-d', '-q', '-c'], { stdio: ['pipe', 'pipe', 'inherit'] });
  return Duplex.from({ writable: z.stdin, readable: z.stdout });
}

function targetOf(loaded: LoadedInventory, server: string) {
  const s = loaded.inventory.mysqlServers[server];
  return { host: s.host, port: s.port, user: s.user, password: resolveSecret(s.password, loaded.baseDir) };
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
