/** The tests that read our source (shape, length, written-once rules): the TypeScript files under a folder. */
import { readdirSync } from 'node:fs';
import path from 'node:path';

/** Every .ts file under `dir` (absolute), its subfolders included; declaration and test files left out. */
export function tsFilesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return tsFilesUnder(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}
