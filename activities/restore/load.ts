/**
 * Loading a mariadb-dump stream into scratch databases, with no temp copy:
 *
 *   storage object ─▶ SHA-256 ─▶ zstd -d ─▶ DumpRouter ─▶ N × `mariadb` client sessions
 *
 * The dump names its databases (`CREATE DATABASE ... \`shop\``, `USE \`shop\`;`). The router
 * rewrites exactly those two kinds of line to the scratch names, so a restore never touches the
 * database it was taken from; every other byte is passed on unchanged.
 *
 * Parallel load: with `parallel` > 1, each INSERT statement goes to whichever session has room,
 * so a table loads over several connections at once. Everything else (DDL, triggers, routines,
 * views) goes to session 0 in dump order. Two barriers keep the dump's ordering where it matters:
 * a table's CREATE has run before its first row is sent anywhere, and every session has finished
 * a table's rows before what follows it (triggers, ENABLE KEYS, the next table) runs. A barrier
 * is a `SELECT '<marker>'` whose echo on the session's stdout proves everything before it ran.
 * LOCK TABLES / UNLOCK TABLES lines are dropped in parallel mode (they would block the other
 * sessions); the binary log is off for every session (a scratch restore is nobody's replica source).
 *
 * Secondary keys are built after the rows (deferred-keys.ts): a CREATE TABLE runs without its plain KEYs, and
 * they are added back in one ALTER TABLE where mariadb-dump ends the table's rows (its `ENABLE KEYS` line), or
 * at the latest before the next database, table, routine block or the dump's end.
 *
 * The password reaches the clients through a 0600 defaults file (writeClientDefaults), never argv.
 *
 * Nothing in a backup executes on the worker: the clients run with loaderOptions() (--binary-mode,
 * --sandbox), and a line that starts a statement with a client command (`\! cmd`) is refused here,
 * named, before any session sees it.
 */
import { Writable } from 'node:stream';
import { ErrorType } from '../../contract';
import { failure } from '../errors';
import { quoteIdentifier } from '../process/quote';
import { addKeysStatement, deferSecondaryKeys, type DeferredKeys } from './deferred-keys';
import { LoaderSession } from './loader-session';

export interface LoadProgress {
  /** Decompressed dump bytes routed so far. */
  bytes: number;
  statements: number;
  tables: number;
  /** Secondary keys built after their table's rows (deferred-keys.ts). */
  deferredKeys: number;
}

const NL = 0x0a;
const INSERT_PREFIX = Buffer.from('INSERT INTO ');
const STATEMENT_END = Buffer.from(';\n');

type Mode = 'control' | 'data';

/**
 * Routes a decompressed dump to the loader sessions, statement by statement, renaming databases.
 * mariadb-dump escapes newlines inside values, so a raw "\n" only ends lines, and an INSERT
 * statement ends at the first ";\n".
 */
export class DumpRouter extends Writable {
  readonly sessions: LoaderSession[] = [];
  readonly progress: LoadProgress = { bytes: 0, statements: 0, tables: 0, deferredKeys: 0 };
  /** Source databases the dump switched to (USE), in order. */
  readonly seen: string[] = [];
  private mode: Mode = 'control';
  /** Inside an INSERT statement: the session it goes to. */
  private insertTo: LoaderSession | null = null;
  /** The start of a line not yet classified (a line's head may straddle chunks). */
  private lineHead: Buffer | null = null;
  /** Inside a multi-line control statement (or a DELIMITER block): lines go to session 0 until it ends. */
  private inStatement = false;
  private delimiterBlock = false;
  /** Before the first database: the dump's session settings, which every session needs. */
  private inHeader = true;
  /** mariadb-dump's last line ("-- Dump completed on ...") was seen: the stream is whole. */
  private completed = false;
  private pendingSemicolon = false;
  private currentDb: string | null = null;
  private next = 0;
  private failed: Error | null = null;
  /** Lines of the dump routed so far (mariadb-dump writes each INSERT on one line). */
  private lines = 0;
  /** A CREATE TABLE being collected, line by line, to take its secondary keys out before it runs. */
  private createLines: string[] | null = null;
  /** The keys taken out of the last CREATE TABLE: added back once its rows are in. */
  private deferred: DeferredKeys | null = null;

  /** `clientOptions`: loaderOptions(), so the clients refuse client commands too. */
  constructor(
    private readonly rename: Map<string, string>,
    private readonly parallel: number,
    defaultsFile: string,
    prelude: string,
    clientOptions: string[],
  ) {
    super({ highWaterMark: 1024 * 1024 });
    for (let i = 0; i < parallel; i++) {
      const session = new LoaderSession(i, defaultsFile, clientOptions, (err) => this.fail(err));
      this.sessions.push(session);
      session.child.stdin!.write(prelude);
    }
  }

  private fail(err: Error): void {
    this.failed ??= err;
    for (const s of this.sessions) s.kill();
  }

  private check(): void {
    if (this.failed) throw this.failed;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.progress.bytes += chunk.length;
    this.route(chunk).then(
      () => cb(),
      (err: Error) => cb(this.failed ?? err),
    );
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.finish().then(
      () => cb(),
      (err: Error) => cb(this.failed ?? err),
    );
  }

  private async route(chunk: Buffer): Promise<void> {
    let i = 0;
    while (i < chunk.length) {
      this.check();
      if (this.insertTo) {
        if (this.pendingSemicolon) {
          // The previous chunk ended with ";": a "\n" here ends the statement.
          this.pendingSemicolon = false;
          if (chunk[i] === NL) {
            await this.insertTo.write(chunk.subarray(i, i + 1));
            i++;
            this.endInsert();
            continue;
          }
        }
        // Inside an INSERT: forward up to its end, wherever that is.
        const end = chunk.indexOf(STATEMENT_END, i);
        const stop = end === -1 ? chunk.length : end + STATEMENT_END.length;
        await this.insertTo.write(chunk.subarray(i, stop));
        i = stop;
        if (end !== -1) this.endInsert();
        else this.pendingSemicolon = chunk[chunk.length - 1] === 0x3b;
        continue;
      }
      // At a line start (or continuing a line head): read the whole line if it is short, classify it.
      const nl = chunk.indexOf(NL, i);
      const piece = chunk.subarray(i, nl === -1 ? chunk.length : nl + 1);
      i += piece.length;
      const head = this.lineHead ? Buffer.concat([this.lineHead, piece]) : piece;
      if (nl === -1 && head.length < 64 * 1024) {
        this.lineHead = head;
        continue;
      }
      this.lineHead = null;
      await this.routeLine(head, nl !== -1);
    }
  }

  private endInsert(): void {
    this.insertTo = null;
    this.progress.statements++;
    this.lines++;
  }

  /** A whole line (or, for a very long one, its first 64 KiB and the rest follows as control). */
  private async routeLine(line: Buffer, complete: boolean): Promise<void> {
    if (!this.inStatement && !this.delimiterBlock && line.subarray(0, INSERT_PREFIX.length).equals(INSERT_PREFIX)) {
      await this.startInsert(line);
      return;
    }
    if (complete) this.lines++;
    const text = line.toString('latin1');
    const trimmed = text.trimEnd();
    if (!this.inStatement && !this.delimiterBlock && trimmed.trimStart().startsWith('\\')) {
      // No SQL statement starts with a backslash: this is a client command (\! runs a shell, \. reads a file).
      throw failure(
        ErrorType.RestoreRefused,
        `line ${this.lines} of the dump is a mariadb client command, refused (a restore never runs ` +
          `one): ${JSON.stringify(trimmed.slice(0, 200))}`,
        { line: this.lines },
      );
    }
    if (trimmed.startsWith('-- Dump completed')) {
      await this.addDeferredKeys();
      this.completed = true;
    }
    if (this.inHeader && !/^(CREATE DATABASE|USE|CREATE TABLE|DROP TABLE) /.test(text)) {
      // SET NAMES, TIME_ZONE, SQL_MODE, UNIQUE_CHECKS=0...: every session loads rows under the same settings.
      for (const s of this.sessions) await s.write(line);
      return;
    }
    this.inHeader = false;
    if (this.delimiterBlock) {
      if (/^DELIMITER ;$/.test(trimmed)) this.delimiterBlock = false;
      await this.control(text);
      return;
    }
    if (!this.inStatement) {
      const rowsEnd = /^\/\*!40000 ALTER TABLE (`(?:[^`]|``)+`) ENABLE KEYS \*\/;$/.exec(trimmed);
      if (rowsEnd && this.deferred?.table === rowsEnd[1]) {
        await this.control(text);
        await this.addDeferredKeys();
        return;
      }
      // Whatever follows a table's rows and is not its own lock lines: its keys are added back first.
      if (/^(CREATE DATABASE|USE|CREATE TABLE|DELIMITER) /.test(trimmed)) await this.addDeferredKeys();
      if (/^DELIMITER ;;$/.test(trimmed)) {
        this.delimiterBlock = true;
        await this.control(text);
        return;
      }
      if (this.parallel > 1 && /^(LOCK TABLES .* WRITE|UNLOCK TABLES);$/.test(trimmed)) return;
      const created = /^CREATE DATABASE (\/\*!32312 IF NOT EXISTS\*\/ )?`((?:[^`]|``)+)`(.*)$/s.exec(text);
      if (created) {
        await this.control(
          `CREATE DATABASE ${created[1] ?? ''}${quoteIdentifier(this.scratchName(created[2]))}${created[3]}`,
        );
        return;
      }
      const used = /^USE `((?:[^`]|``)+)`;\s*$/.exec(text);
      if (used) {
        const source = used[1].replace(/``/g, '`');
        this.seen.push(Buffer.from(source, 'latin1').toString('utf8'));
        this.currentDb = this.scratchName(used[1]);
        await this.control(`USE ${quoteIdentifier(this.currentDb)};\n`);
        this.sessions[0].currentDb = this.currentDb;
        return;
      }
      if (/^CREATE TABLE /.test(text)) {
        this.progress.tables++;
        this.createLines = [];
      }
    }
    // Comments and blank lines never open a statement; anything else does until a line ends with ";".
    const neutral = trimmed === '' || trimmed.startsWith('--') || (!this.inStatement && trimmed.startsWith('/*M!'));
    if (!neutral) this.inStatement = !(complete && trimmed.endsWith(';'));
    if (!neutral && !this.inStatement) this.progress.statements++;
    if (this.createLines) {
      this.createLines.push(text);
      // A line too long to hold whole (a huge ENUM) or a statement this long: run as written, nothing deferred.
      if (!complete || this.createLines.length > 10_000) {
        const asWritten = this.createLines.join('');
        this.createLines = null;
        await this.control(asWritten);
      } else if (!this.inStatement) await this.runCreateTable();
      return;
    }
    await this.control(text);
  }

  /** The collected CREATE TABLE, run without the secondary keys deferSecondaryKeys takes out of it. */
  private async runCreateTable(): Promise<void> {
    const statement = this.createLines!.join('');
    this.createLines = null;
    const split = deferSecondaryKeys(statement);
    if (split?.keys.length) {
      this.deferred = split;
      this.progress.deferredKeys += split.keys.length;
    }
    await this.control(split?.keys.length ? split.create : statement);
  }

  /** The last table's deferred keys, built now that its rows are in (InnoDB sorts them in one pass). */
  private async addDeferredKeys(): Promise<void> {
    const deferred = this.deferred;
    this.deferred = null;
    if (deferred) await this.control(addKeysStatement(deferred));
  }

  /** The scratch name for a database the dump names (backquote-escaped, as bytes in latin1). */
  private scratchName(quoted: string): string {
    const source = Buffer.from(quoted.replace(/``/g, '`'), 'latin1').toString('utf8');
    const scratch = this.rename.get(source);
    if (!scratch)
      throw failure(ErrorType.RestoreFailed, `the dump names database "${source}", which the manifest does not list`);
    return scratch;
  }

  private async control(text: string): Promise<void> {
    if (this.mode === 'data' && this.parallel > 1) {
      // The rows of the table just loaded must all be in before its triggers, keys or the next table.
      await Promise.all(this.sessions.map((s) => s.sync()));
      this.check();
    }
    this.mode = 'control';
    await this.sessions[0].write(Buffer.from(text, 'latin1'));
  }

  private async startInsert(line: Buffer): Promise<void> {
    if (this.mode === 'control') {
      // The table's CREATE (on session 0) must have run before any session sends it rows.
      if (this.parallel > 1) await this.sessions[0].sync();
      this.check();
      this.mode = 'data';
    }
    const session = this.pickSession();
    if (session.currentDb !== this.currentDb && this.currentDb) {
      await session.write(`USE ${quoteIdentifier(this.currentDb)};\n`);
      session.currentDb = this.currentDb;
    }
    this.insertTo = session;
    // The line may already hold the whole statement (single-line extended inserts) or end it.
    const end = line.indexOf(STATEMENT_END);
    await session.write(line);
    if (end !== -1 && end + STATEMENT_END.length === line.length) this.endInsert();
  }

  /** The next session with room in its pipe (round robin), or the next one if all are full. */
  private pickSession(): LoaderSession {
    for (let k = 0; k < this.sessions.length; k++) {
      const s = this.sessions[(this.next + k) % this.sessions.length];
      if (!s.busy) {
        this.next = (s.index + 1) % this.sessions.length;
        return s;
      }
    }
    const s = this.sessions[this.next];
    this.next = (this.next + 1) % this.sessions.length;
    return s;
  }

  private async finish(): Promise<void> {
    if (this.lineHead) await this.routeLine(this.lineHead, true);
    this.lineHead = null;
    this.check();
    if (this.insertTo || this.createLines || !this.completed)
      throw failure(
        ErrorType.RestoreFailed,
        `the dump ends ${this.insertTo ? 'inside an INSERT statement' : 'without its "-- Dump completed" line'}: ` +
          `truncated`,
      );
    const exits = await Promise.all(this.sessions.map((s) => s.end()));
    this.check();
    exits.forEach((e, i) => {
      if (e.code !== 0) throw this.sessions[i].failure(e.code);
    });
  }

  /** Kill every session (cancellation, or a failure elsewhere in the pipeline). */
  abort(): void {
    for (const s of this.sessions) s.kill();
  }
}

/** What every session runs first: no binary log, the dump's own header settings come from the stream itself. */
export function sessionPrelude(): string {
  return 'SET SESSION sql_log_bin = 0;\n';
}
