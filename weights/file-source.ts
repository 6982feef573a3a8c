/**
 * The Node ByteSource: a file read by position through fs/promises, so a multi-GB checkpoint is
 * never read whole. Positions are numbers (exact up to 2^53), so files over 4 GiB work.
 */
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import type { ByteSink, ByteSource } from './byte-source.js';
import { openRegularFile } from './node-files.js';

/** Node rejects single reads over 2 GiB − 1; larger reads are split into pieces of this size. */
const MAX_READ = 1 << 30;

export class FileByteSource implements ByteSource {
  private constructor(
    readonly name: string,
    readonly size: number,
    private handle: FileHandle | null,
  ) {}

  /**
   * Opens a regular file (a FIFO or device is refused without blocking, see node-files.ts); `name`
   * labels messages (default `path`; a model folder passes the entry's name, not its real path).
   */
  static async open(path: string, name = path): Promise<FileByteSource> {
    const { handle, size } = await openRegularFile(path, name);
    return new FileByteSource(name, size, handle);
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

/** The Node ByteSink: writes `<path>.<pid>.partial`, renamed to `path` on commit. */
export class FileByteSink implements ByteSink {
  private constructor(
    readonly name: string,
    private readonly tempPath: string,
    private handle: FileHandle | null,
  ) {}

  static async create(path: string): Promise<FileByteSink> {
    const tempPath = `${path}.${process.pid}.partial`;
    return new FileByteSink(path, tempPath, await open(tempPath, 'w'));
  }

  async write(position: number, bytes: Uint8Array): Promise<void> {
    if (!this.handle) throw new Error(`${this.name}: write after commit/abort`);
    let done = 0;
    while (done < bytes.byteLength) {
      const { bytesWritten } = await this.handle.write(bytes, done, Math.min(bytes.byteLength - done, MAX_READ), position + done);
      done += bytesWritten;
    }
  }

  async readBack(): Promise<ByteSource> {
    await this.handle?.sync();
    return FileByteSource.open(this.tempPath);
  }

  async commit(): Promise<void> {
    await this.closeHandle();
    await rename(this.tempPath, this.name);
  }

  async abort(): Promise<void> {
    await this.closeHandle().catch(() => {});
    await rm(this.tempPath, { force: true });
  }

  private async closeHandle(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    await h?.close();
  }
}
