/**
 * The chaos suite's results table. Each fault test records one row per fault it injected
 * (`recordChaos`); scripts/stack.sh prints the table once the chaos project has run:
 *
 *   fault | runs | survived | side effects duplicated
 *
 * Rows go to $DRBOOK_DATA/run/chaos.jsonl (one JSON object per line) so the table covers every
 * chaos test file, whatever jest's order, and stays readable after the run.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface ChaosRow {
  /** What was done to the estate, e.g. "worker SIGKILL after fence". */
  fault: string;
  /** Runbook runs driven through this fault. */
  runs: number;
  /** Runs that ended as the fault's contract says (completed, or failed naming resource and cause). */
  survived: number;
  /** Side effects found more than once (promotions, DNS changes, VIP holders, notifications). */
  duplicated: number;
}

export function chaosResultsFile(): string {
  const data = process.env.DRBOOK_DATA ?? path.join(__dirname, '..', '..', '.data');
  return path.join(data, 'run', 'chaos.jsonl');
}

export function recordChaos(row: ChaosRow): void {
  const file = chaosResultsFile();
  mkdirSync(path.dirname(file), { recursive: true });
  appendFileSync(file, JSON.stringify(row) + '\n');
}

export function readChaos(file = chaosResultsFile()): ChaosRow[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as ChaosRow);
}

/** The table as text (Markdown, so it pastes into docs and tickets). */
export function chaosTable(rows: ChaosRow[]): string {
  const lines = ['| fault | runs | survived | side effects duplicated |', '|---|---:|---:|---:|'];
  for (const r of rows) lines.push(`| ${r.fault} | ${r.runs} | ${r.survived} | ${r.duplicated} |`);
  return lines.join('\n');
}

// `node -r ts-node/register/transpile-only test/helpers/chaos.ts` prints the table.
if (require.main === module) {
  const rows = readChaos();
  console.log(rows.length ? chaosTable(rows) : 'no chaos results recorded');
}
