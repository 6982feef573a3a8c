/**
 * Random-access bytes: the one thing the safetensors reader needs from storage. Implementations:
 * a file through a FileHandle at a position (file-source.ts, Node), HTTP Range requests
 * (url-source.ts), a `File` / `Blob` slice (blob-source.ts), and bytes in memory (below).
 */
export interface ByteSource {
  /** A name for messages (the file path or URL). */
  readonly name: string;
  /** Total length in bytes (may exceed 4 GiB: offsets are plain numbers, exact below 2^53). */
  readonly size: number;
  /**
   * Reads exactly `length` bytes at `offset` into `into` (if given, at least `length` long) or a new
   * array. Rejects if the source ends first.
   */
  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Bytes already in memory (tests, small files, a browser ArrayBuffer). */
export class MemoryByteSource implements ByteSource {
  constructor(
    readonly name: string,
    private readonly bytes: Uint8Array,
  ) {}

  get size(): number {
    return this.bytes.byteLength;
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (offset < 0 || offset + length > this.bytes.byteLength) {
      throw new RangeError(`${this.name}: read of ${length} bytes at ${offset} is past the end (${this.bytes.byteLength})`);
    }
    const out = into ? into.subarray(0, length) : new Uint8Array(length);
    out.set(this.bytes.subarray(offset, offset + length));
    return out;
  }

  async close(): Promise<void> {}
}

/**
 * Positional writes to a file that appears only on `commit()` (written under a temporary name, then
 * renamed), and vanishes on `abort()`. Node implements it in file-source.ts; a browser variant could
 * wrap a FileSystemWritableFileStream.
 */
export interface ByteSink {
  readonly name: string;
  write(position: number, bytes: Uint8Array): Promise<void>;
  /** Bytes written so far, as a ByteSource (for spooling); valid until commit/abort. */
  readBack(): Promise<ByteSource>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}
