/**
 * The Node ByteSource: a file read by position through fs/promises, so a multi-GB checkpoint is
 * never read whole. Positions are numbers (exact up to 2^53), so files over 4 GiB work.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { ByteSource } from './byte-source.js';

/** Node rejects single reads over 2 GiB − 1; larger reads are split into pieces of this size. */
const MAX_READ = 1 << 30;

export class FileByteSource implements ByteSource {
  private constructor(
    readonly name: string,
    readonly size: number,
    private handle: FileHandle | null,
  ) {}

  static async open(path: string): Promise<FileByteSource> {
    const handle = await open(path, 'r');
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw new Error(`${path} is not a regular file`);
      return new FileByteSource(path, stat.size, handle);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (!this.handle) throw new Error(`${this.name}: read after close`);
    if (offset < 0 || offset + length > this.size) {
      throw new RangeError(`${this.name}: read of ${length} bytes at ${offset} is past the end (${this.size} bytes)`);
    }
    const out = into ? into.subarray(0, length) : new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const want = Math.min(MAX_READ, length - done);
      const { bytesRead } = await this.handle.read(out, done, want, offset + done);
      if (bytesRead === 0) throw new RangeError(`${this.name}: file ended at ${offset + done} (was it truncated while open?)`);
      done += bytesRead;
    }
    return out;
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    await h?.close();
  }
}
