/**
 * npm run bench:backup — how fast drbook's nightly backup is, against the stack's primary
 * (scripts/stack.sh start; DRBOOK_* variables as `scripts/stack.sh env` prints them).
 *
 * For two generated databases (about 0.5 GB and 1 GB of dump text), in one run, each
 * measurement `--rounds` times (at least 3, alternating a, b, c, d, a, …; the median reported: the machine is
 * shared, scripts/bench/shared-machine.ts; a start above the core count's load is refused unless --force):
 *   (a) mariadb-dump > /dev/null                 the limit: the dump itself
 *   (b) mariadb-dump | gzip > file               the common shell procedure
 *   (c) drbook's dumpDatabase → file destination  the real activity, in a process of its own
 *   (d) drbook's dumpDatabase → S3 destination    (s3proxy locally)
 * (a) and (b) use the very options drbook passes (--single-transaction --master-data=2 --gtid
 * --routines --events --triggers), so the difference is the pipeline, not the dump.
 * Then the fleet run (scripts/bench/fleet.ts): 200 small databases, one nightlyBackup, concurrency 8.
 *
 *   npm run bench:backup -- [--rounds 3] [--force] [--no-fleet] [--fleet-only] [--fleet-services 200] [--drop]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { loadInventory, resolveSecret, type LoadedInventory } from '../config/load';
import { awsConnectionFromInventory } from '../activities/aws/clients';
import { writeClientDefaults } from '../activities/process/defaults-file';
import { BackupStores } from '../activities/storage/destinations';
import { dropBenchDatabase, ensureBenchDatabase, type BenchDatabase } from './bench/database';
import { runFleet } from './bench/fleet';
import type { MemoryPeaks } from './bench/rss';
import { busyMark, machineAtEnd, machineAtStart, median, roundsOption, type MachineLoad } from './bench/shared-machine';
import { absoluteSecrets, benchService, writeInventory } from './bench/inventory';

const ROOT = path.join(__dirname, '..');
const SIZES = [
  { db: 'drbench_small', scale: 0.75 },
  { db: 'drbench_large', scale: 1.5 },
];
const DUMP_ARGS = ['--single-transaction', '--master-data=2', '--gtid', '--routines', '--events', '--triggers'];

function flag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}
function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const log = (s: string) => console.log(s);
const mb = (bytes: number) => bytes / 1e6;
const fmt = (n: number, d = 1) => n.toFixed(d);

interface Measured {
  seconds: number;
  outputBytes: number;
  memory?: MemoryPeaks;
}

function timed(cmd: string, args: string[], stdout: 'ignore' | number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', stdout, 'pipe'] });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(Number(process.hrtime.bigint() - t0) / 1e9)
        : reject(new Error(`${cmd} exited ${code}: ${err.trim()}`)),
    );
  });
}

async function rawDump(defaults: string, db: string): Promise<Measured> {
  const devNull = openSync('/dev/null', 'w');
  try {
    const seconds = await timed(
      'mariadb-dump',
      [`--defaults-extra-file=${defaults}`, ...DUMP_ARGS, '--databases', db],
      devNull,
    );
    return { seconds, outputBytes: 0 };
  } finally {
    closeSync(devNull);
  }
}

async function gzipDump(defaults: string, db: string, file: string): Promise<Measured> {
  const script =
    `set -o pipefail; mariadb-dump --defaults-extra-file="$1" ${DUMP_ARGS.join(' ')} --databases "$2" | gzip ` +
    `> "$3"`;
  const seconds = await timed('bash', ['-c', script, 'bash', defaults, db, file], 'ignore');
  const outputBytes = statSync(file).size;
  rmSync(file, { force: true });
  return { seconds, outputBytes };
}

/**
 * drbook compiled to JavaScript (tsc), as a production worker runs it: under ts-node the TypeScript
 * compiler stays loaded, adding ~65 MB of resident memory and a bigger heap for the GC to walk.
 * Inside DRBOOK_DATA, so the compiled files resolve node_modules from the repository.
 */
function compileDrbook(): string {
  const out = path.join(process.env.DRBOOK_DATA ?? path.join(ROOT, '.data'), 'bench-js');
  rmSync(out, { recursive: true, force: true });
  try {
    execFileSync(
      path.join(ROOT, 'node_modules/.bin/tsc'),
      ['-p', ROOT, '--outDir', out, '--noEmit', 'false', '--incremental', 'false'],
      { stdio: 'ignore' },
    );
  } catch {
    // Type errors elsewhere in the tree do not stop tsc from emitting; a missing file below does.
  }
  const runner = path.join(out, 'scripts', 'bench', 'dump-once.js');
  statSync(runner);
  return runner;
}

async function drbookDump(
  runner: string,
  inventoryFile: string,
  service: string,
  destination: string,
  backupId: string,
): Promise<Measured & { uncompressedSize: number }> {
  const out = execFileSync(process.execPath, [runner, inventoryFile, service, destination, backupId], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const r = JSON.parse(out.trim().split('\n').pop()!) as {
    seconds: number;
    size: number;
    uncompressedSize: number;
    memory: MemoryPeaks;
  };
  return { seconds: r.seconds, outputBytes: r.size, uncompressedSize: r.uncompressedSize, memory: r.memory };
}

async function removeBackups(stores: BackupStores, service: string): Promise<void> {
  for (const store of stores.forService(service)) {
    const objects = await store.list(`${service}/`);
    await store.remove(objects.map((o) => o.key));
  }
}

async function main() {
  const rounds = roundsOption();
  const base = loadInventory();
  const server = base.inventory.mysqlServers['db-primary'];
  const conn = await mysql.createConnection({
    host: server.host,
    port: server.port,
    user: server.user,
    password: resolveSecret(server.password, base.baseDir),
  });
  const work = mkdtempSync(path.join(tmpdir(), 'drbook-bench-'));
  log(
    `drbook backup benchmark ` +
      `— ${new Date().toISOString()}, ${base.inventory.mysqlServers['db-primary'].host}:${server.port}`,
  );
  const machine = machineAtStart(log);
  try {
    if (!flag('fleet-only')) await singleDatabase(base, conn, work, rounds, machine);
    if (!flag('no-fleet'))
      await runFleet(base, conn, work, {
        services: option('fleet-services', 200),
        concurrency: 8,
        log,
        mark: busyMark(machine),
      });
    if (flag('drop')) for (const s of SIZES) await dropBenchDatabase(conn, s.db);
  } finally {
    await conn.end();
    rmSync(work, { recursive: true, force: true });
  }
  machineAtEnd(machine, log);
}

async function singleDatabase(
  base: LoadedInventory,
  conn: mysql.Connection,
  work: string,
  rounds: number,
  machine: MachineLoad,
) {
  const dbs: BenchDatabase[] = [];
  for (const s of SIZES) {
    const d = await ensureBenchDatabase(conn, s.db, s.scale, log);
    dbs.push(d);
    log(
      `${d.name}: ${d.rows.toLocaleString()} rows, ${fmt(mb(d.storedBytes) / 1000, 2)} GB in ` +
        `InnoDB, ${d.generatedSeconds === null ? 'reused' : `generated in ${fmt(d.generatedSeconds)} s`}`,
    );
  }
  const inv = absoluteSecrets(base);
  const prefix = `drbench-${Date.now()}/`;
  for (const s of SIZES)
    inv.services.push(benchService(inv, s.db.replace('_', '-'), s.db, path.join(work, 'backups'), prefix));
  const inventoryFile = path.join(work, 'bench-inventory.yaml');
  const loaded = writeInventory(inv, inventoryFile);
  const stores = new BackupStores(
    loaded.inventory,
    loaded.baseDir,
    awsConnectionFromInventory(loaded.inventory, loaded.baseDir),
  );
  const defaults = await writeClientDefaults({
    host: loaded.inventory.mysqlServers['db-primary'].host,
    port: loaded.inventory.mysqlServers['db-primary'].port,
    user: loaded.inventory.mysqlServers['db-primary'].user,
    password: resolveSecret(loaded.inventory.mysqlServers['db-primary'].password, loaded.baseDir),
  });
  const summary: string[] = [];
  const runner = compileDrbook();
  try {
    for (const d of dbs) {
      const service = d.name.replace('_', '-');
      const results: Record<'a' | 'b' | 'c' | 'd', Measured[]> = { a: [], b: [], c: [], d: [] };
      let dumpBytes = 0;
      for (let r = 1; r <= rounds; r++) {
        results.a.push(await rawDump(defaults.file, d.name));
        results.b.push(await gzipDump(defaults.file, d.name, path.join(work, 'dump.sql.gz')));
        for (const [key, destination] of [
          ['c', 'local'],
          ['d', 'primary'],
        ] as const) {
          const m = await drbookDump(
            runner,
            inventoryFile,
            service,
            destination,
            `2000010${r}T00000${key === 'c' ? 0 : 1}Z`,
          );
          dumpBytes = m.uncompressedSize;
          results[key].push(m);
          await removeBackups(stores, service);
        }
        const round = (['a', 'b', 'c', 'd'] as const).map((k) => `(${k}) ${fmt(results[k][r - 1].seconds)} s`);
        log(`  ${d.name} round ${r}: ${round.join('  ')}`);
      }
      const t = Object.fromEntries(
        (['a', 'b', 'c', 'd'] as const).map((k) => [k, median(results[k].map((m) => m.seconds))]),
      ) as Record<'a' | 'b' | 'c' | 'd', number>;
      const lines = [
        '',
        `${d.name}: ${fmt(mb(dumpBytes))} MB of dump text (${fmt(mb(d.storedBytes))} MB in InnoDB), ` +
          `median of ${rounds}`,
        '| method | seconds | MB/s of dump | time vs (a) | speed-up vs (b) | output MB | peak RSS (VmHWM), CPU |',
        '|---|---:|---:|---:|---:|---:|---|',
      ];
      const names = {
        a: '(a) mariadb-dump > /dev/null',
        b: '(b) mariadb-dump | gzip > file',
        c: '(c) drbook → file',
        d: '(d) drbook → S3 (s3proxy)',
      };
      for (const k of ['a', 'b', 'c', 'd'] as const) {
        const ms = results[k];
        const out = median(ms.map((m) => m.outputBytes));
        const mem = ms.map((m) => m.memory).filter((m): m is MemoryPeaks => !!m);
        const rss = mem.length
          ? `node ${fmt(Math.max(...mem.map((m) => m.selfPeakKb)) / 1024, 0)} MB ` +
            `(start ${fmt(Math.max(...mem.map((m) => m.selfStartKb)) / 1024, 0)}); ${Object.keys(mem[0].children)
              .map((c) => `${c} ${fmt(Math.max(...mem.map((m) => m.children[c] ?? 0)) / 1024, 0)} MB`)
              .join(', ')}; CPU s: node ${fmt(median(mem.map((m) => m.selfCpuSeconds)))}, ${Object.keys(
              mem[0].childCpuSeconds,
            )
              .map((c) => `${c} ${fmt(median(mem.map((m) => m.childCpuSeconds[c] ?? 0)))}`)
              .join(', ')}`
          : '';
        lines.push(
          `| ${names[k]} | ${fmt(t[k], 2)} | ${fmt(mb(dumpBytes) / t[k])} | ${fmt(t[k] / t.a, 2)}x ` +
            `| ${fmt(t.b / t[k], 2)}x | ${out ? fmt(mb(out)) : '–'} | ${rss}${busyMark(machine)} |`,
        );
      }
      const worst = Math.max(t.c, t.d);
      const peakRss = Math.max(...[...results.c, ...results.d].map((m) => m.memory!.selfPeakKb)) / 1024;
      lines.push(
        `targets: ≥3x faster than (b): ${fmt(t.b / worst, 2)}x ${t.b / worst >= 3 ? 'MET' : 'MISSED'}; within ` +
          `1.25x of (a): ${fmt(worst / t.a, 2)}x ${worst / t.a <= 1.25 ? 'MET' : 'MISSED'}; peak RSS < 256 ` +
          `MB: ${fmt(peakRss, 0)} MB ${peakRss < 256 ? 'MET' : 'MISSED'}`,
      );
      for (const l of lines) log(l);
      summary.push(...lines);
    }
  } finally {
    for (const d of dbs) await removeBackups(stores, d.name.replace('_', '-')).catch(() => undefined);
    stores.destroy();
    rmSync(defaults.dir, { recursive: true, force: true });
  }
  return summary;
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
