/**
 * npm run bench:restore — how fast drbook restores a logical backup, against the stack's scratch
 * server (scripts/stack.sh start; DRBOOK_* variables as `scripts/stack.sh env` prints them).
 *
 * One generated database (the backup benchmark's generator, scripts/bench/database.ts), dumped
 * once by drbook's own dumpDatabase to a local destination, then restored into the scratch server:
 *   (a) zstd -d dump.sql.zst > dump.sql; mariadb < dump.sql   the plain procedure (baseline; decompression not timed)
 *   (b) myloader --threads N                                 if installed (apt mydumper), from a mydumper dump made
 *                                                            beforehand (not timed): a parallel loader on its own
 *                                                            format
 *   (c) drbook restoreIntoScratch, parallel 1                streamed from storage, binlog off
 *   (d) drbook restoreIntoScratch, parallel N                INSERTs spread over N sessions
 *   (e) drbook restorePhysicalIntoScratch                    a mariabackup copy of the whole primary (taken
 *                                                            beforehand, not timed): stream | zstd -d | mbstream -x,
 *                                                            --prepare, a scratch mariadbd started on it; then every
 *                                                            table counted
 * Each is checked by row counts against the dump's manifest counts. The methods run in alternating rounds
 * (a, b, c, d, e, a, b, …; --rounds, at least 3) and each row is the median; the load average is printed before and
 * after, and a run that starts with the 1-minute load above the core count is refused unless --force (rows marked).
 *
 *   npm run bench:restore -- [--scale 1] [--parallel 4] [--rounds 3] [--force] [--keep] [--no-physical]
 */
import { execFileSync, spawn } from 'node:child_process';
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { loadInventory, resolveSecret, type LoadedInventory } from '../config/load';
import { writeClientDefaults } from '../activities/process/defaults-file';
import { buildAdapters } from '../activities';
// The steps serviceBackup takes after a dump (verify every copy, write the signed manifest), as the tests use them.
import { publishBackup } from '../test/helpers/backups';
import { dropBenchDatabase, ensureBenchDatabase } from './bench/database';
import { alternateRounds, busyMark, machineAtEnd, machineAtStart, median, roundsOption } from './bench/shared-machine';

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

interface Timed {
  seconds: number;
  note: string;
}

async function main(): Promise<void> {
  const machine = machineAtStart(log);
  const scale = option('scale', 1);
  const parallel = option('parallel', 4);
  const rounds = roundsOption();
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
  const names: Record<string, string> = {};
  let results = new Map<string, Timed[]>();
  const scratchDefaults = await writeClientDefaults(targetOf(loaded, 'db-restore-scratch'));
  try {
    const gen = await ensureBenchDatabase(primary, DB, scale, log);
    log(`database ${DB}: ${gen.rows.toLocaleString()} rows, ${(gen.storedBytes / 1e9).toFixed(2)} GB in InnoDB`);
    const backupId = '20200101T000000Z';
    const dump = await a.dumpDatabase({ service: bench.name, backupId, destinations: ['local'] });
    await publishBackup(a, dump, 'logical');
    const zst = dump.copies[0].location;
    log(
      `dump: ${(dump.object.uncompressedSize / 1e9).toFixed(2)} GB of ` +
        `SQL, ${(dump.object.size / 1e6).toFixed(0)} MB zstd`,
    );
    const tables = dump.tables.map((t) => t.table);
    const expected = Object.fromEntries(dump.tables.map((t) => [t.table, t.rows]));
    const verify = async (db: string) => {
      const got = await countRows(scratch, db, tables);
      const bad = tables.filter((t) => got[t] !== expected[t]);
      return bad.length ? `ROW COUNTS DIFFER: ${bad.join(', ')}` : 'row counts match';
    };

    // Prepared once, not timed: the decompressed file (a), the mydumper dump (b), the physical copy (e).
    const sqlFile = path.join(work, 'dump.sql');
    await pipeline(createReadStream(zst), spawnZstd(), createWriteStream(sqlFile));
    log(`decompressed to ${sqlFile} (${(statSync(sqlFile).size / 1e9).toFixed(2)} GB)`);
    let myloader: string | null = null;
    try {
      myloader = execFileSync('myloader', ['--version'], { encoding: 'utf8' }).trim();
    } catch {
      // absent
    }
    const mydumperDir = path.join(work, 'mydumper');
    if (myloader) {
      const primaryDefaults = await writeClientDefaults(targetOf(loaded, bench.database!.primary));
      try {
        execFileSync(
          'mydumper',
          [
            `--defaults-file=${primaryDefaults.file}`,
            ...['--database', DB, '--outputdir', mydumperDir, '--threads', '2', '--rows', '100000'],
          ],
          { stdio: ['ignore', 'ignore', 'inherit'] },
        );
      } finally {
        rmSync(primaryDefaults.dir, { recursive: true, force: true });
      }
      log(`mydumper dump of ${DB} in ${mydumperDir}`);
    }
    const physicalId = '20200101T000001Z';
    const physical = process.argv.includes('--no-physical')
      ? null
      : await a.takePhysicalBackup({ service: bench.name, backupId: physicalId });
    if (physical) {
      await publishBackup(a, physical, 'physical');
      log(
        `physical backup of the whole primary: ${(physical.object.uncompressedSize / 1e9).toFixed(2)} GB ` +
          `xbstream, ${(physical.object.size / 1e6).toFixed(0)} MB zstd`,
      );
    }

    names.a = 'mariadb < dump.sql (baseline)';
    names.b = myloader ? `myloader --threads ${parallel} (${myloader.split(',')[0]})` : 'myloader';
    names.c = 'drbook restoreIntoScratch, parallel 1';
    names.d = `drbook restoreIntoScratch, parallel ${parallel}`;
    names.e = 'drbook restorePhysicalIntoScratch (extract + prepare + start)';
    const drbook = (p: number) => async (): Promise<Timed> => {
      const target = `restore_bench_p${p}`;
      try {
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
        return { seconds: r.seconds, note: `${await verify(target)}; ${r.deferredKeys} keys built after the rows` };
      } finally {
        await a.dropScratchDatabase({ server: 'db-restore-scratch', databases: [target] });
      }
    };
    results = await alternateRounds<Timed>(
      [
        {
          // (a) the plain client reading the decompressed file, under the original name.
          key: 'a',
          run: async () => {
            await scratch.query(`DROP DATABASE IF EXISTS \`${DB}\``);
            try {
              const t0 = performance.now();
              execFileSync(
                'bash',
                ['-c', `mariadb --defaults-extra-file="$1" < "$2"`, 'bench', scratchDefaults.file, sqlFile],
                { stdio: ['ignore', 'ignore', 'inherit'] },
              );
              return { seconds: (performance.now() - t0) / 1000, note: await verify(DB) };
            } finally {
              await scratch.query(`DROP DATABASE IF EXISTS \`${DB}\``);
            }
          },
        },
        {
          // (b) myloader, the parallel loader, from its own (mydumper) directory dump.
          key: 'b',
          run: async () => {
            if (!myloader) return null;
            const target = 'restore_bench_myloader';
            try {
              const t0 = performance.now();
              execFileSync(
                'myloader',
                [
                  `--defaults-file=${scratchDefaults.file}`,
                  ...['--directory', mydumperDir, '--database', target, '--threads', String(parallel)],
                  '--overwrite-tables',
                ],
                { stdio: ['ignore', 'ignore', 'inherit'] },
              );
              return { seconds: (performance.now() - t0) / 1000, note: await verify(target) };
            } finally {
              await scratch.query(`DROP DATABASE IF EXISTS \`${target}\``);
            }
          },
        },
        { key: 'c', run: drbook(1) },
        { key: 'd', run: drbook(parallel) },
        {
          // (e) a mariabackup copy of the primary, into a scratch instance of its own.
          key: 'e',
          run: async () => {
            if (!physical) return null;
            const r = await a.restorePhysicalIntoScratch({
              service: bench.name,
              backupId: physicalId,
              destination: 'local',
              size: physical.object.size,
              sha256: physical.object.sha256,
              databases: [DB],
              gtid: physical.position.gtid,
              expectedTables: dump.tables,
            });
            const t = r.seconds;
            const bad = r.checks.filter((c) => c.gate && !c.ok);
            const check = bad.length ? `FAILED: ${bad.map((c) => c.detail).join('; ')}` : 'row counts match';
            const parts = (['extract', 'prepare', 'start'] as const).map((k) => `${k} ${t[k].toFixed(1)} s`).join(', ');
            const after = `counting every row ${t.validate.toFixed(1)} s more`;
            return {
              seconds: t.extract + t.prepare + t.start,
              note: `${check} (${parts}; ${after}; instance ${r.cleanedUp ? 'removed' : 'NOT removed'})`,
            };
          },
        },
      ],
      rounds,
      (round, got) =>
        log(
          `round ${round} (load ${loadavg()[0].toFixed(2)}): ${[...got]
            .filter(([, v]) => v.length >= round)
            .map(([k, v]) => `(${k}) ${v[round - 1].seconds.toFixed(1)} s`)
            .join('  ')}`,
        ),
    );
  } finally {
    if (!process.argv.includes('--keep')) await dropBenchDatabase(primary, DB).catch(() => undefined);
    await primary.end();
    await scratch.end();
    await adapters.close();
    rmSync(scratchDefaults.dir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }
  machineAtEnd(machine, log);
  const mark = busyMark(machine);
  const baseline = median(results.get('a')!.map((r) => r.seconds));
  log('');
  log(`| restore | median seconds (of ${rounds}) | min–max | vs baseline | check |`);
  log('|---|---|---|---|---|');
  for (const [key, runs] of results) {
    const secs = runs.map((r) => r.seconds);
    const bad = runs.find((r) => !r.note.startsWith('row counts match'));
    if (!secs.length) {
      log(`| (${key}) ${names[key]} | n/a | | n/a | skipped: not installed or --no-physical |`);
      continue;
    }
    const m = median(secs);
    const range = `${Math.min(...secs).toFixed(1)}–${Math.max(...secs).toFixed(1)}`;
    const check = (bad ?? runs[runs.length - 1]).note;
    log(`| (${key}) ${names[key]} | ${m.toFixed(1)} | ${range} | ${(baseline / m).toFixed(2)}x | ${check}${mark} |`);
  }
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
