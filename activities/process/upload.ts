/**
 * One object streamed into every destination at once, as dump, physical backup and file-tree backup write theirs:
 * a writer per destination fed through one FanOut, an abort that stops the children feeding it (a destination that
 * fails, or the activity cancelled), and on failure every writer aborted (no partial file, no unfinished multipart
 * upload) with the first cause reported.
 */
import path from 'node:path';
import { writtenCopies, type BackupStore, type BackupWriter } from '../storage/destinations';
import { checksumLine } from '../storage/layout';
import { activityContext } from './heartbeat';
import { FanOut } from './streams';

export class Upload {
  private readonly writers: { store: BackupStore; writer: BackupWriter }[] = [];
  private key = '';
  private readonly aborter = new AbortController();
  private readonly ctx = activityContext();
  private readonly onCancel = () => this.aborter.abort(new Error('cancelled'));

  constructor() {
    this.ctx?.cancellationSignal.addEventListener('abort', this.onCancel);
    if (this.ctx?.cancellationSignal.aborted) this.onCancel(); // cancelled before the listener: no second 'abort'
  }

  /** Aborted by a failing destination, a cancellation or a failure of the step. */
  get signal(): AbortSignal {
    return this.aborter.signal;
  }

  /** Open `key` in every target; the FanOut writes to all of them. */
  open(targets: BackupStore[], key: string): FanOut {
    this.key = key;
    for (const store of targets)
      this.writers.push({ store, writer: store.openWriter(key, (err) => this.aborter.abort(err)) });
    return new FanOut(this.writers.map((w) => w.writer.stream));
  }

  /** Run `stop` (kill the children feeding the upload) when it is aborted. */
  onAbort(stop: () => void): void {
    this.aborter.signal.addEventListener('abort', stop);
  }

  /** A destination failed or the activity was cancelled while the bytes flowed: that is the step's failure. */
  throwIfAborted(): void {
    if (this.aborter.signal.aborted) throw this.aborter.signal.reason;
  }

  /**
   * Two phases: a file copy becomes visible only once every destination has all the bytes. Then the `.sha256` beside
   * each copy (`sha256sum -c <file>.sha256` works from any of them). The copies written.
   */
  async complete(sha256: string) {
    const versions = await Promise.all(this.writers.map((w) => w.writer.finish()));
    const locations = await Promise.all(this.writers.map((w) => w.writer.publish()));
    const line = checksumLine(sha256, path.posix.basename(this.key));
    await Promise.all(this.writers.map((w) => w.store.put(`${this.key}.sha256`, line)));
    return writtenCopies(
      this.writers.map((w) => w.store),
      locations,
      versions,
    );
  }

  /** Abort every writer and rethrow the first cause (the destination's or the cancellation, over its echo). */
  async fail(err: unknown): Promise<never> {
    const first: unknown = this.aborter.signal.reason;
    const reason = this.aborter.signal.aborted && first instanceof Error ? first : err;
    this.aborter.abort(reason);
    await Promise.all(this.writers.map((w) => w.writer.abort()));
    throw reason;
  }

  /** The step is over: stop listening for its cancellation. */
  close(): void {
    this.ctx?.cancellationSignal.removeEventListener('abort', this.onCancel);
  }
}
