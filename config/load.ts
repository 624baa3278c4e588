/**
 * Worker-side inventory loading: read the YAML, expand ${VAR:-default} (so the local
 * stack's ports stay configurable), validate, and resolve secret references. Never
 * imported by workflow code.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { InventoryError, parseInventory, type Inventory, type SecretRef } from '../contract';

export const DEFAULT_INVENTORY = path.join(__dirname, 'sandbox.yaml');

/** Expand ${NAME} and ${NAME:-default}; an unset variable without a default is a problem, reported with the others. */
export function expandEnv(text: string, env: NodeJS.ProcessEnv, problems: string[]): string {
  return text.replace(/\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}/g, (_, name: string, fallback: string | undefined) => {
    const value = env[name];
    if (value !== undefined && value !== '') return value;
    if (fallback !== undefined) return fallback;
    problems.push(`(env): \${${name}} is not set and has no default`);
    return '';
  });
}

export interface LoadedInventory {
  inventory: Inventory;
  /** Directory the inventory came from: relative secret and known_hosts files resolve against it. */
  baseDir: string;
  source: string;
}

export function loadInventory(
  file = process.env.DRBOOK_INVENTORY ?? DEFAULT_INVENTORY,
  env = process.env,
): LoadedInventory {
  const source = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(source, 'utf8');
  } catch (err) {
    throw new InventoryError(source, [`(file): cannot read: ${(err as Error).message}`]);
  }
  const problems: string[] = [];
  const expanded = expandEnv(text, env, problems);
  const doc = YAML.parseDocument(expanded, { prettyErrors: true });
  if (doc.errors.length) {
    throw new InventoryError(source, [...problems, ...doc.errors.map((e) => `(yaml): ${e.message}`)]);
  }
  let parsed: unknown;
  try {
    parsed = doc.toJS();
  } catch (err) {
    // Well-formed YAML can still fail to resolve (an alias to no anchor, "*x").
    throw new InventoryError(source, [...problems, `(yaml): ${(err as Error).message}`]);
  }
  try {
    const inventory = parseInventory(parsed, source);
    if (problems.length) throw new InventoryError(source, problems);
    return { inventory, baseDir: path.dirname(source), source };
  } catch (err) {
    if (err instanceof InventoryError && problems.length && err.problems !== problems) {
      throw new InventoryError(source, [...problems, ...err.problems]);
    }
    throw err;
  }
}

/** Resolve a secret reference on the worker. The value never leaves the worker process. */
export function resolveSecret(ref: SecretRef, baseDir: string, env = process.env): string {
  if ('env' in ref) {
    const value = env[ref.env];
    if (value === undefined) throw new Error(`secret: environment variable ${ref.env} is not set`);
    return value;
  }
  const file = path.resolve(baseDir, ref.file);
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new Error(`secret: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * A webhook's URL from its secret reference, checked to be an http(s) URL. Errors name `what` (the webhook), never the
 * value: it carries a token.
 */
export function resolveWebhookUrl(ref: SecretRef, baseDir: string, what: string, env = process.env): string {
  const value = resolveSecret(ref, baseDir, env).trim();
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`${what}: its secret does not hold a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new Error(`${what}: its secret holds a ${url.protocol} URL; only http and https are posted to`);
  return url.href;
}

export function resolvePath(baseDir: string, file: string): string {
  return path.resolve(baseDir, file);
}
