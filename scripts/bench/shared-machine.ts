/**
 * What every benchmark does because this machine is shared (docs/benchmarks.md): the load average is printed
 * before and after; a run whose 1-minute load at the start exceeds the core count is refused unless `--force`,
 * and then every row it prints is marked; each method runs in alternating rounds (a, b, c, a, b, c …), so a
 * burst of someone else's load hits all of them, and each row is the median of at least 3 rounds.
 */
import { availableParallelism, loadavg } from 'node:os';

export const MIN_ROUNDS = 3;

export interface MachineLoad {
  cores: number;
  /** 1, 5 and 15-minute load averages when the benchmark started. */
  atStart: number[];
  /** The 1-minute load at the start exceeded the core count (the run went on only with --force). */
  busy: boolean;
}

const text = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');

/** Reads the load at the start; refuses a busy machine unless --force is given. */
export function machineAtStart(log: (s: string) => void, argv: string[] = process.argv): MachineLoad {
  const cores = availableParallelism();
  const atStart = loadavg();
  const busy = atStart[0] > cores;
  log(`machine: ${cores} cores, load average at start ${text(atStart)} (1, 5, 15 min)`);
  if (busy && !argv.includes('--force'))
    throw new Error(
      `the 1-minute load average (${atStart[0].toFixed(2)}) is above the ${cores} cores: other work would be ` +
        'measured with this run. Run it on a quieter machine, or pass --force to run anyway (every row is marked BUSY)',
    );
  if (busy) log(`BUSY: load ${atStart[0].toFixed(2)} on ${cores} cores at start; run anyway (--force), rows marked`);
  return { cores, atStart, busy };
}

/** The mark every row of a busy run carries ('' on a quiet one). */
export const busyMark = (machine: MachineLoad) =>
  machine.busy ? ` BUSY (load ${machine.atStart[0].toFixed(2)} on ${machine.cores} cores at start)` : '';

/** The load at the end, printed beside the start's. */
export function machineAtEnd(machine: MachineLoad, log: (s: string) => void): void {
  log(`load average at start ${text(machine.atStart)}, at end ${text(loadavg())} (${machine.cores} cores)`);
}

/** `--rounds N` (or the given flag), at least MIN_ROUNDS. */
export function roundsOption(fallback = MIN_ROUNDS, flag = 'rounds', argv: string[] = process.argv): number {
  const i = argv.indexOf(`--${flag}`);
  const n = i >= 0 ? Number(argv[i + 1]) : fallback;
  if (!Number.isInteger(n) || n < MIN_ROUNDS)
    throw new Error(`--${flag} ${argv[i + 1]}: at least ${MIN_ROUNDS} rounds (each row is the median of them)`);
  return n;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * Every method once per round, in the same order each round (a, b, c, a, b, c …); what each returned, per method.
 * A method that returns null (not available here) is not run again.
 */
export async function alternateRounds<T>(
  methods: { key: string; run: (round: number) => Promise<T | null> }[],
  rounds: number,
  afterRound: (round: number, results: Map<string, T[]>) => void = () => undefined,
): Promise<Map<string, T[]>> {
  const results = new Map<string, T[]>(methods.map((m) => [m.key, []]));
  const unavailable = new Set<string>();
  for (let round = 1; round <= rounds; round++) {
    for (const m of methods) {
      if (unavailable.has(m.key)) continue;
      const r = await m.run(round);
      if (r === null) unavailable.add(m.key);
      else results.get(m.key)!.push(r);
    }
    afterRound(round, results);
  }
  return results;
}
