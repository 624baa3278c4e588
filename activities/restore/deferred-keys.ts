/**
 * Secondary indexes built after a table's rows, not row by row while they load: InnoDB's ALTER TABLE … ADD KEY
 * reads the loaded table once and builds each index by sorting, where the dump's own order (CREATE TABLE with every
 * index, then the INSERTs) updates every secondary B-tree for every row. Measured on the benchmark data: about a
 * third less server CPU for the load (docs/benchmarks.md, "Restore").
 *
 * Only what is safe to move is moved, so the restored schema is exactly the dump's:
 * - plain `KEY`s of an InnoDB table are deferred;
 * - PRIMARY KEY (the clustered index) and UNIQUE keys stay (a unique key may be the clustered index of a table
 *   without a primary key, and keeps its duplicate check during the load);
 * - FULLTEXT stays (the first FULLTEXT index added by ALTER rebuilds the whole table) and SPATIAL stays;
 * - a KEY that a FOREIGN KEY of the same table can use (the constraint's columns are its leading columns) stays:
 *   without it InnoDB would create an index of its own for the constraint, and the schema would differ;
 * - other engines, and anything this parser does not recognise, are left as they are.
 *
 * The input is one CREATE TABLE statement as mariadb-dump writes it (SHOW CREATE TABLE: one column, key or
 * constraint a line, two spaces in, the closing `) ENGINE=…` line last).
 */

export interface DeferredKeys {
  /** The CREATE TABLE statement without the deferred keys (the input unchanged when nothing is deferred). */
  create: string;
  /** The table's name as written (backquoted). */
  table: string;
  /** The key definitions taken out, each as written (`KEY \`name\` (\`col\`)…`), to add back after the rows. */
  keys: string[];
}

const CREATE = /^CREATE TABLE (?:IF NOT EXISTS )?(`(?:[^`]|``)+`) \($/;
const CLOSE = /^\) ENGINE=(\w+)/;
const PLAIN_KEY = /^ {2}KEY `(?:[^`]|``)+` \(/;
const FOREIGN_KEY = /^ {2}CONSTRAINT `(?:[^`]|``)+` FOREIGN KEY \(/;
/** Where the column list opens: the first `(` after the key's or constraint's (backquoted) name. */
const listStart = (line: string, prefix: RegExp) => prefix.exec(line)![0].length - 1;

/** The backquoted names in the parenthesised list that starts at `open` (the `(`), in order; null if unbalanced. */
function columnList(line: string, open: number): string[] | null {
  const names: string[] = [];
  let depth = 0;
  for (let i = open; i < line.length; i++) {
    const c = line[i];
    if (c === '`') {
      let j = i + 1;
      let name = '';
      for (; j < line.length; j++) {
        if (line[j] === '`' && line[j + 1] === '`') {
          name += '`';
          j++;
        } else if (line[j] === '`') break;
        else name += line[j];
      }
      if (j >= line.length) return null;
      // Only names at the list's own level are columns: `c`(10) is a prefix length, not a name.
      if (depth === 1) names.push(name);
      i = j;
    } else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return names;
  }
  return null;
}

/** Split a CREATE TABLE into the statement to run before the rows and the keys to add after them. */
export function deferSecondaryKeys(statement: string): DeferredKeys | null {
  const lines = statement.split('\n');
  const head = CREATE.exec(lines[0]);
  if (!head) return null;
  const closeAt = lines.findIndex((l) => CLOSE.test(l));
  if (closeAt < 2) return null;
  const keep = (create: string): DeferredKeys => ({ create, table: head[1], keys: [] });
  if (CLOSE.exec(lines[closeAt])![1].toLowerCase() !== 'innodb') return keep(statement);
  const body = lines.slice(1, closeAt).map((l) => (l.endsWith(',') ? l.slice(0, -1) : l));

  const foreignKeys: string[][] = [];
  for (const line of body) {
    if (!FOREIGN_KEY.test(line)) continue;
    const cols = columnList(line, listStart(line, FOREIGN_KEY));
    if (!cols) return keep(statement);
    foreignKeys.push(cols);
  }
  const kept: string[] = [];
  const keys: string[] = [];
  for (const line of body) {
    if (!PLAIN_KEY.test(line)) {
      kept.push(line);
      continue;
    }
    const cols = columnList(line, listStart(line, PLAIN_KEY));
    if (!cols) return keep(statement);
    const servesForeignKey = foreignKeys.some((fk) => fk.every((c, i) => cols[i] === c));
    if (servesForeignKey) kept.push(line);
    else keys.push(line.trim());
  }
  // A table must keep at least one column (a line before the keys); nothing deferred, nothing changed.
  if (keys.length === 0 || kept.length === 0) return keep(statement);
  const create = [
    lines[0],
    kept.map((l, i) => (i < kept.length - 1 ? `${l},` : l)).join('\n'),
    ...lines.slice(closeAt),
  ];
  return { create: create.join('\n'), table: head[1], keys };
}

/** The statement that adds the deferred keys back, all in one pass over the table. */
export function addKeysStatement(deferred: DeferredKeys): string {
  return `ALTER TABLE ${deferred.table} ${deferred.keys.map((k) => `ADD ${k}`).join(', ')};\n`;
}
