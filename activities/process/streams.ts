/** The streams every backup and restore pipeline passes its bytes through: counted, hashed, fanned out. */
import { createHash } from 'node:crypto';
import { Transform, Writable, type TransformCallback } from 'node:stream';

/** Counts the bytes on their way (a tool's raw output before zstd). */
export class Counter extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

/** SHA-256 and size of a stream, on the fly. */
export class Digest extends Transform {
  bytes = 0;
  private readonly hash = createHash('sha256');
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    cb(null, chunk);
  }
  hex(): string {
    return this.hash.digest('hex');
  }
}

/** One stream in, every destination out; moves on only when every destination has taken the chunk. */
export class FanOut extends Writable {
  constructor(private readonly targets: Writable[]) {
    super({ highWaterMark: 1024 * 1024 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    let waiting = 0;
    const drained = () => {
      if (--waiting === 0) cb();
    };
    for (const t of this.targets) {
      if (!t.write(chunk)) {
        waiting++;
        t.once('drain', drained);
      }
    }
    if (waiting === 0) cb();
  }
}
