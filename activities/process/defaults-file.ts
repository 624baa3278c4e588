/**
 * How a MySQL/MariaDB client tool gets its password: a 0600 `[client]` defaults file in a private work directory
 * (`--defaults-extra-file`), never argv (readable in /proc by every user) and never the environment. The caller
 * removes the directory when its step ends.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ErrorType } from '../../contract';
import { failure } from '../errors';
import { privateWorkDir } from '../workdirs';

/** Where and as whom a client tool connects (a MysqlPools target). */
export interface ClientTarget {
  host: string;
  port: number;
  user: string;
  password: string;
}

const OPTION_ESCAPES: Record<string, string> = {
  '\\': '\\\\',
  '"': '\\"',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\b': '\\b',
};

/**
 * A value for a MySQL option file, double-quoted, with every character the option-file reader
 * unescapes written as its escape: a raw newline would end the line and start an option of its own.
 */
export const optionValue = (v: string | number) => {
  const text = String(v);
  // The reader has no escape for NUL (it would cut the value short): refuse, never pass a different value.
  if (text.includes('\0')) throw failure(ErrorType.InvalidInput, 'an option-file value holds a NUL byte');
  return `"${text.replace(/[\\"\n\r\t\b]/g, (c) => OPTION_ESCAPES[c])}"`;
};

/** The [client] options: through `socket` when given (a tool on the server's own host), else host and port. */
export function clientDefaultsText(target: ClientTarget, socket?: string): string {
  const where = socket
    ? [`socket=${optionValue(socket)}`]
    : [`host=${optionValue(target.host)}`, `port=${target.port}`];
  return [
    '[client]',
    `user=${optionValue(target.user)}`,
    `password=${optionValue(target.password)}`,
    ...where,
    '',
  ].join('\n');
}

/** A private directory (`drbook-<kind>-*`) holding a 0600 [client] defaults file; the caller removes the directory. */
export async function writeClientDefaults(
  target: ClientTarget,
  { kind = 'dump', socket }: { kind?: string; socket?: string } = {},
): Promise<{ dir: string; file: string }> {
  const dir = await privateWorkDir(kind);
  const file = path.join(dir, 'client.cnf');
  await writeFile(file, clientDefaultsText(target, socket), { mode: 0o600 });
  return { dir, file };
}
