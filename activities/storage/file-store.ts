/** The local destination: a directory; an object is a `.partial` file fsynced, then renamed into place. */
import { once } from 'node:events';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { ErrorType, type BackupDestinationName } from '../../contract';
import { driverFailure, failure } from '../errors';
import type { BackupStore, BackupWriter, StoredObject } from './store';

function fileFailure(label: string, err: Error): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const message = `local destination ${label}: ${err.message}`;
  if (code === 'EACCES' || code === 'EPERM') return failure(ErrorType.AccessDenied, message, { destination: label });
  return driverFailure(code, ErrorType.FileSystemError, message, { destination: label });
}

export class FileStore implements BackupStore {
  readonly kind = 'file' as const;
  readonly region = null;
  readonly offsite = false;
  readonly lock = null;
  readonly label: string;

  constructor(
    readonly name: BackupDestinationName,
    private readonly root: string,
  ) {
    this.label = root;
  }

  private file(key: string): string {
    return path.join(this.root, ...key.split('/'));
  }

  location(key: string): string {
    return this.file(key);
  }

  openWriter(key: string, onError: (err: Error) => void): BackupWriter {
    const file = this.file(key);
    const partial = `${file}.partial`;
    const pass = new PassThrough({ highWaterMark: 1024 * 1024 });
    let out: WriteStream | undefined;
    // The directory is created before the first byte arrives; the pass-through holds bytes meanwhile.
    const written = (async () => {
      await mkdir(path.dirname(file), { recursive: true });
      if (pass.destroyed) return; // aborted before the file was opened
      out = createWriteStream(partial);
      pass.pipe(out);
      await once(out, 'close');
      if (out.errored) throw out.errored;
    })();
    written.catch((err: Error) => onError(fileFailure(this.label, err)));
    return {
      stream: pass,
      finish: async () => {
        pass.end();
        await written;
        // Durable before visible: fsync now, rename in publish().
        const fh = await open(partial, 'r+');
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
        return {};
      },
      publish: async () => {
        await rename(partial, file);
        return file;
      },
      abort: async () => {
        pass.destroy();
        // pipe() does not close the file when its source is destroyed.
        out?.destroy();
        await written.catch(() => undefined);
        await rm(partial, { force: true });
      },
    };
  }

  async read(key: string): Promise<Readable> {
    const file = this.file(key);
    try {
      await stat(file);
    } catch {
      throw failure(ErrorType.ResourceNotFound, `${file} does not exist`, { destination: this.name });
    }
    return createReadStream(file, { highWaterMark: 1024 * 1024 });
  }

  async put(key: string, body: string): Promise<void> {
    const file = this.file(key);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(`${file}.partial`, body);
    await rename(`${file}.partial`, file);
  }

  async get(key: string): Promise<string | null> {
    try {
      return await readFile(this.file(key), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async list(prefix: string): Promise<StoredObject[]> {
    const dir = this.file(prefix);
    const out: StoredObject[] = [];
    const walk = async (abs: string, rel: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(abs, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      for (const e of entries) {
        const childRel = `${rel}${e.name}`;
        if (e.isDirectory()) await walk(path.join(abs, e.name), `${childRel}/`);
        else out.push({ key: childRel, size: (await stat(path.join(abs, e.name))).size });
      }
    };
    await walk(dir, prefix.endsWith('/') ? prefix : `${prefix}/`);
    return out.sort((a, b) => a.key.localeCompare(b.key));
  }

  async remove(keys: string[]): Promise<void> {
    const dirs = new Set<string>();
    for (const key of keys) {
      await rm(this.file(key), { force: true });
      dirs.add(path.dirname(this.file(key)));
    }
    // Empty backup directories go too, so the tree lists only backups that exist.
    // Deepest first, then each parent once it is empty (an attempt's directory, then its backup's).
    const all = new Set<string>();
    for (const dir of dirs)
      for (let d = dir; d.startsWith(this.root) && d !== this.root; d = path.dirname(d)) all.add(d);
    for (const dir of [...all].sort((a, b) => b.length - a.length)) await rmdir(dir).catch(() => undefined);
  }

  lockedUntil(): Promise<string | null> {
    return Promise.resolve(null);
  }

  checkObjectLock(): Promise<void> {
    return Promise.resolve();
  }
}
