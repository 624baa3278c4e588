/**
 * One `mariadb` client session of a parallel load (load.ts), fed through its stdin. The password reaches it through
 * a 0600 defaults file; it runs with loaderOptions(), so no client command in a backup executes on the worker.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { ErrorType } from '../../contract';
import { failure } from '../errors';
import { REFUSED_CLIENT_COMMAND } from '../process/mysql-client';

/** One `mariadb` client session fed through its stdin; `sync()` resolves once everything written so far has run. */
export class LoaderSession {
  readonly child: ChildProcess;
  private out = '';
  private stderr = '';
  private syncs = 0;
  private readonly waiting = new Map<string, () => void>();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  currentDb: string | null = null;

  constructor(
    readonly index: number,
    defaultsFile: string,
    clientOptions: string[],
    private readonly onFail: (err: Error) => void,
  ) {
    this.child = spawn(
      'mariadb',
      // --unbuffered: a barrier's marker must reach stdout at once, not when the client exits.
      [
        `--defaults-extra-file=${defaultsFile}`,
        ...clientOptions,
        '--batch',
        '--skip-column-names',
        '--unbuffered',
        '--max-allowed-packet=1G',
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    this.child.stdin!.on('error', () => undefined); // surfaced through the exit code and stderr
    this.child.stdout!.on('data', (d: Buffer) => {
      this.out += d.toString('latin1');
      for (const [marker, resolve] of this.waiting) {
        if (this.out.includes(marker)) {
          this.waiting.delete(marker);
          resolve();
        }
      }
      if (this.waiting.size === 0) this.out = '';
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    this.exited = new Promise((resolve) => {
      this.child.once('error', (err: NodeJS.ErrnoException) => {
        this.onFail(
          err.code === 'ENOENT'
            ? failure(ErrorType.NotConfigured, 'the mariadb client is not installed on this worker')
            : failure(ErrorType.RestoreFailed, `mariadb client: ${err.message}`),
        );
        resolve({ code: null, signal: null });
      });
      this.child.once('close', (code, signal) => {
        if (code !== 0 && signal === null) this.onFail(this.failure(code));
        for (const resolve of this.waiting.values()) resolve();
        this.waiting.clear();
        resolve({ code, signal });
      });
    });
  }

  failure(code: number | null): Error {
    const stderr = this.stderr.trim() || '(no output)';
    // A client command inside a statement (the router refuses those that start one): the client refused it.
    const refused = REFUSED_CLIENT_COMMAND.test(stderr);
    return failure(
      refused ? ErrorType.RestoreRefused : ErrorType.RestoreFailed,
      `mariadb client session ${this.index} ` +
        `exited ${code}: ${stderr}${refused ? ' (a client command in the backup: refused, nothing of it ran)' : ''}`,
    );
  }

  /**
   * Write with backpressure. A client that exits while a write waits for its pipe to drain makes that wait fail with
   * EPIPE before the exit is seen; the write then waits for the exit, so the session's own failure (its exit code and
   * stderr, through onFail) is what the load reports, not the broken pipe.
   */
  async write(data: Buffer | string): Promise<void> {
    const stdin = this.child.stdin!;
    if (!stdin.write(data)) await Promise.race([once(stdin, 'drain').catch(() => this.exited), this.exited]);
  }

  get busy(): boolean {
    return this.child.stdin!.writableNeedDrain;
  }

  async sync(): Promise<void> {
    const marker = `drbook-sync-${this.index}-${++this.syncs}`;
    const done = new Promise<void>((resolve) => this.waiting.set(marker, resolve));
    await this.write(`SELECT '${marker}';\n`);
    await Promise.race([done, this.exited]);
  }

  async end(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.child.stdin!.end();
    return this.exited;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
