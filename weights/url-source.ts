/**
 * Weights over HTTP, for browsers (and any runtime with `fetch`): a file is read by byte range, so a
 * multi-GB checkpoint streams tensor by tensor and is never held whole in memory.
 *
 *   const ckpt = await Checkpoint.openFrom(new UrlFolderReader('https://host/ConvLLaVA-768/'));
 *
 * Every read is one `Range: bytes=a-b` GET answered by `206 Partial Content`. A server that ignores
 * Range answers 200 with the whole file; then the file is downloaded once into memory and a warning
 * says so (fine for small files, hopeless for a 14 GB model: use a server that honours Range).
 * Cross-origin servers must allow the Range request header (it is CORS-safelisted for one range) and
 * expose Content-Range (Access-Control-Expose-Headers), or the size is taken from a HEAD request.
 */
import type { ByteSource } from './byte-source.js';
import type { ModelFolderReader } from './folder.js';

export interface UrlSourceOptions {
  /** The fetch to use (tests, custom auth). Default: globalThis.fetch. */
  fetch?: typeof fetch;
  /** Extra request options (headers such as Authorization, credentials, …). */
  init?: RequestInit;
  /** Where warnings go (the no-Range fallback). Default console.warn. */
  warn?: (message: string) => void;
}

export class UrlByteSource implements ByteSource {
  private closed = false;

  private constructor(
    readonly name: string,
    readonly size: number,
    private readonly options: UrlSourceOptions,
    /** The whole file, when the server ignored Range and sent it all. */
    private readonly whole: Uint8Array | null,
  ) {}

  /** True if reads are ranged requests; false after the whole-file fallback. */
  get ranged(): boolean {
    return this.whole === null;
  }

  /**
   * Probes the server with a one-byte range: 206 → ranged reads, size from Content-Range (or HEAD);
   * 200 → the response is the whole file, kept in memory, with a warning.
   */
  static async open(url: string | URL, options: UrlSourceOptions = {}): Promise<UrlByteSource> {
    const name = String(url);
    const fetchFn = options.fetch ?? globalThis.fetch;
    const res = await fetchFn(name, withRange(options.init, 'bytes=0-0'));
    if (res.status === 206) {
      const total = totalFromContentRange(res.headers.get('content-range'));
      await res.body?.cancel();
      const size = total ?? (await sizeFromHead(fetchFn, name, options.init));
      return new UrlByteSource(name, size, options, null);
    }
    if (res.status === 416) {
      // Range not satisfiable for byte 0: the file is empty.
      await res.body?.cancel();
      return new UrlByteSource(name, 0, options, null);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`${name}: HTTP ${res.status} ${res.statusText}`.trim());
    }
    const whole = new Uint8Array(await res.arrayBuffer());
    (options.warn ?? console.warn)(
      `${name}: the server ignored the HTTP Range request (answered ${res.status}, not 206), so the whole file ` +
        `(${whole.byteLength} bytes) was downloaded into memory. Serve model weights from a server that supports ` +
        `Range requests to stream them instead.`,
    );
    return new UrlByteSource(name, whole.byteLength, options, whole);
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw new Error(`${this.name}: read after close`);
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`${this.name}: read of ${length} bytes at ${offset} is past the end (${this.size} bytes)`);
    }
    const out = into ? into.subarray(0, length) : new Uint8Array(length);
    if (length === 0) return out;
    if (this.whole) {
      out.set(this.whole.subarray(offset, offset + length));
      return out;
    }
    const fetchFn = this.options.fetch ?? globalThis.fetch;
    const res = await fetchFn(this.name, withRange(this.options.init, `bytes=${offset}-${offset + length - 1}`));
    if (res.status !== 206) {
      await res.body?.cancel();
      throw new Error(`${this.name}: a Range request for bytes ${offset}-${offset + length - 1} got HTTP ${res.status}, not 206 (did the file change on the server?)`);
    }
    const range = res.headers.get('content-range');
    if (range !== null && !range.startsWith(`bytes ${offset}-`)) {
      await res.body?.cancel();
      throw new Error(`${this.name}: asked for bytes ${offset}-${offset + length - 1}, the server sent '${range}'`);
    }
    // Stream the body straight into `out`: no second copy of a large tensor.
    let done = 0;
    const reader = res.body!.getReader();
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) break;
      if (done + value.byteLength > length) {
        await reader.cancel();
        throw new Error(`${this.name}: the server sent more than the ${length} bytes asked for at ${offset}`);
      }
      out.set(value, done);
      done += value.byteLength;
    }
    if (done !== length) throw new RangeError(`${this.name}: got ${done} of ${length} bytes at ${offset} (connection cut?)`);
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** A model folder under a base URL ('https://host/model/' — a missing trailing slash is added). */
export class UrlFolderReader implements ModelFolderReader {
  readonly where: string;

  constructor(
    base: string | URL,
    private readonly options: UrlSourceOptions = {},
  ) {
    const href = new URL(String(base), globalThis.location?.href).href;
    this.where = href.endsWith('/') ? href : `${href}/`;
  }

  nameOf(relPath: string): string {
    return new URL(relPath.split('/').map(encodeURIComponent).join('/'), this.where).href;
  }

  async exists(relPath: string): Promise<boolean> {
    const fetchFn = this.options.fetch ?? globalThis.fetch;
    const res = await fetchFn(this.nameOf(relPath), { ...this.options.init, method: 'HEAD' }).catch(() => null);
    return res?.ok ?? false;
  }

  async readText(relPath: string): Promise<string> {
    const fetchFn = this.options.fetch ?? globalThis.fetch;
    const url = this.nameOf(relPath);
    const res = await fetchFn(url, this.options.init);
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`${url}: HTTP ${res.status} ${res.statusText}`.trim());
    }
    return res.text();
  }

  open(relPath: string): Promise<ByteSource> {
    return UrlByteSource.open(this.nameOf(relPath), this.options);
  }
}

function withRange(init: RequestInit | undefined, range: string): RequestInit {
  const headers = new Headers(init?.headers);
  headers.set('Range', range);
  return { ...init, headers };
}

/** The total of 'bytes a-b/TOTAL', or null ('*', missing or unreadable header). */
function totalFromContentRange(header: string | null): number | null {
  const m = header ? /\/(\d+)\s*$/.exec(header) : null;
  return m ? Number(m[1]) : null;
}

async function sizeFromHead(fetchFn: typeof fetch, url: string, init: RequestInit | undefined): Promise<number> {
  const res = await fetchFn(url, { ...init, method: 'HEAD' });
  const length = res.headers.get('content-length');
  if (!res.ok || length === null) {
    throw new Error(
      `${url}: cannot learn the file size (no readable Content-Range, and HEAD gave ${res.status} without Content-Length); ` +
        `a cross-origin server must send Access-Control-Expose-Headers: Content-Range`,
    );
  }
  return Number(length);
}
