/**
 * Quoting for the two languages drbook writes commands in: SQL identifiers and POSIX shell words. Every name that
 * reaches a statement or a remote shell goes through one of these; nothing else quotes.
 */

/** A MySQL/MariaDB identifier in backquotes, a backquote inside doubled. */
export const quoteIdentifier = (name: string) => `\`${name.replace(/`/g, '``')}\``;

/** A qualified name (`schema.table`), each part quoted. */
export const quoteName = (qualified: string) => qualified.split('.').map(quoteIdentifier).join('.');

/** Single-quote for a POSIX shell. */
export const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
