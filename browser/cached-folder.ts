/**
 * A model folder under a URL, downloaded once and kept in the browser's Cache API, so a second visit
 * (or a reload) reads the weights from disk instead of the network.
 *
 *   const reader = await CachedUrlFolderReader.create('https://host/ConvLLaVA-768/', {
 *     onProgress: ({ file, loaded, total }) => …,          // bytes
 *   });
 *   const model = await ConvLlava.load(await Checkpoint.openFrom(reader));
 *
 * Each file the checkpoint opens is fetched whole on first use, its body streamed straight into the
 * cache named `cacheName` under its URL (counting bytes for `onProgress`; a cut-off download is
 * deleted, never kept), then read by byte range from the cached Blob (the browser keeps it on disk,
 * so a multi-GB shard is not held in memory). A file
 * already in the cache costs no request. Without the Cache API (an insecure origin, a Node worker),
 * files are fetched into memory and nothing is kept; `cached` says which happened.
 */
import { BlobByteSource } from '../weights/blob-source.js';
import type { ByteSource } from '../weights/byte-source.js';
import type { ModelFolderReader } from '../weights/folder.js';

/** Download progress of a model folder, in bytes. */
export interface DownloadProgress {
  /** The file (path inside the folder) this event is about. */
  file: string;
  /** Bytes of this file so far, and its size (0 while unknown). */
  loaded: number;
  total: number;
  /** Bytes of every file opened so far: downloaded or read from the cache, and their sizes. */
  loadedAll: number;
  totalAll: number;
  /** True when the file came from the cache (no download). */
  fromCache: boolean;
}

export interface CachedFolderOptions {
  /** Cache API cache name. Default 'convllava-models'. */
  cacheName?: string;
  onProgress?: (p: DownloadProgress) => void;
  fetch?: typeof fetch;
}

export class CachedUrlFolderReader implements ModelFolderReader {
  readonly where: string;
  /** Files read from the cache and downloaded by this reader so far. */
  readonly fromCache: string[] = [];
  readonly downloaded: string[] = [];
  private readonly sizes = new Map<string, { loaded: number; total: number }>();
  private readonly blobs = new Map<string, Promise<Blob | null>>();

  private constructor(
    base: string,
    private readonly cache: Cache | null,
    private readonly options: CachedFolderOptions,
  ) {
    this.where = base;
  }

  static async create(base: string | URL, options: CachedFolderOptions = {}): Promise<CachedUrlFolderReader> {
    const href = new URL(String(base), globalThis.location?.href).href;
    const cache = typeof caches !== 'undefined' ? await caches.open(options.cacheName ?? 'convllava-models').catch(() => null) : null;
    return new CachedUrlFolderReader(href.endsWith('/') ? href : `${href}/`, cache, options);
  }

  /** True when files are kept in the Cache API (false: fetched into memory, not kept). */
  get cached(): boolean {
    return this.cache !== null;
  }

  nameOf(relPath: string): string {
    return new URL(relPath.split('/').map(encodeURIComponent).join('/'), this.where).href;
  }

  async exists(relPath: string): Promise<boolean> {
    return (await this.blob(relPath)) !== null;
  }

  async readText(relPath: string): Promise<string> {
    return (await this.required(relPath)).text();
  }

  async open(relPath: string): Promise<ByteSource> {
    return new BlobByteSource(await this.required(relPath), this.nameOf(relPath));
  }

  private async required(relPath: string): Promise<Blob> {
    const blob = await this.blob(relPath);
    if (!blob) throw new Error(`${this.nameOf(relPath)}: not found (HTTP 404)`);
    return blob;
  }

  /** The file as a Blob (from the cache, or downloaded and cached), or null if the server has none. */
  private blob(relPath: string): Promise<Blob | null> {
    let p = this.blobs.get(relPath);
    if (!p) {
      p = this.load(relPath);
      this.blobs.set(relPath, p);
    }
    return p;
  }

  private async load(relPath: string): Promise<Blob | null> {
    const url = this.nameOf(relPath);
    const hit = await this.cache?.match(url);
    if (hit) {
      const blob = await hit.blob();
      this.fromCache.push(relPath);
      this.report(relPath, blob.size, blob.size, true);
      return blob;
    }
    const res = await (this.options.fetch ?? globalThis.fetch)(url);
    // A dev server's single-page fallback answers index.html for any path: that is no model file.
    const html = /^text\/html/.test(res.headers.get('content-type') ?? '') && !relPath.endsWith('.html');
    if (res.status === 404 || (res.ok && html)) {
      await res.body?.cancel();
      return null;
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`${url}: HTTP ${res.status} ${res.statusText}`.trim());
    }
    const total = Number(res.headers.get('content-length') ?? 0);
    const type = res.headers.get('content-type') ?? 'application/octet-stream';
    let loaded = 0;
    this.report(relPath, 0, total, false);
    // Count the bytes as they flow; with a cache the stream goes straight into it (no copy in memory).
    const counted = res.body!.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform: (chunk, controller) => {
          loaded += chunk.byteLength;
          this.report(relPath, loaded, total, false);
          controller.enqueue(chunk);
        },
      }),
    );
    const cut = () => new Error(`${url}: got ${loaded} of ${total} bytes (connection cut?)`);
    if (this.cache) {
      await this.cache.put(url, new Response(counted, { headers: total ? { 'content-length': String(total), 'content-type': type } : { 'content-type': type } }));
      // An interrupted download must not stay in the cache as if it were the file.
      if (total && loaded !== total) {
        await this.cache.delete(url);
        throw cut();
      }
      this.downloaded.push(relPath);
      // Read back from the cache: the browser keeps that Blob on disk instead of in this tab's memory.
      const stored = await this.cache.match(url);
      if (!stored) throw new Error(`${url}: stored in the Cache API but not found there again (storage quota?)`);
      return stored.blob();
    }
    const blob = await new Response(counted).blob();
    if (total && loaded !== total) throw cut();
    this.downloaded.push(relPath);
    return new Blob([blob], { type });
  }

  private report(file: string, loaded: number, total: number, fromCache: boolean): void {
    this.sizes.set(file, { loaded, total: Math.max(total, loaded) });
    let loadedAll = 0;
    let totalAll = 0;
    for (const s of this.sizes.values()) {
      loadedAll += s.loaded;
      totalAll += s.total;
    }
    this.options.onProgress?.({ file, loaded, total, loadedAll, totalAll, fromCache });
  }
}

/** Deletes every model this origin cached (the cache named `cacheName`). */
export async function clearModelCache(cacheName = 'convllava-models'): Promise<boolean> {
  return typeof caches !== 'undefined' ? caches.delete(cacheName) : false;
}
