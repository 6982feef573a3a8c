/**
 * Weights from File / Blob objects (a browser's file picker or drag and drop): each read slices the
 * blob, so the browser reads only that byte range from disk.
 *
 *   <input type="file" webkitdirectory>  →  input.files
 *   const ckpt = await Checkpoint.openFrom(BlobFolderReader.fromFiles(input.files));
 */
import type { ByteSource } from './byte-source.js';
import type { ModelFolderReader } from './folder.js';
import { insideFolder } from './folder.js';

export class BlobByteSource implements ByteSource {
  private closed = false;

  constructor(
    private readonly blob: Blob,
    /** For messages: the file's name or path. */
    readonly name: string = (blob as File).name ?? 'blob',
  ) {}

  get size(): number {
    return this.blob.size;
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw new Error(`${this.name}: read after close`);
    if (offset < 0 || length < 0 || offset + length > this.blob.size) {
      throw new RangeError(`${this.name}: read of ${length} bytes at ${offset} is past the end (${this.blob.size} bytes)`);
    }
    const bytes = new Uint8Array(await this.blob.slice(offset, offset + length).arrayBuffer());
    if (bytes.byteLength !== length) throw new RangeError(`${this.name}: got ${bytes.byteLength} of ${length} bytes at ${offset}`);
    if (!into) return bytes;
    const out = into.subarray(0, length);
    out.set(bytes);
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** A model folder given as blobs keyed by their path inside the folder ('vision_tower/config.json'). */
export class BlobFolderReader implements ModelFolderReader {
  private readonly files = new Map<string, Blob>();

  constructor(
    files: Map<string, Blob> | Record<string, Blob>,
    readonly where = 'model',
  ) {
    for (const [path, blob] of files instanceof Map ? files : Object.entries(files)) {
      const rel = insideFolder(path);
      if (rel === null) throw new Error(`BlobFolderReader: '${path}' is not a path inside the model folder`);
      this.files.set(rel, blob);
    }
  }

  /**
   * Files from `<input type="file" webkitdirectory>` or a drop: each File's webkitRelativePath
   * ('ConvLLaVA-768/vision_tower/config.json') minus the picked folder's own name. Files without a
   * relative path (a plain multi-file pick) keep their bare name, so pick the folder, not its files.
   */
  static fromFiles(files: Iterable<File> | ArrayLike<File>): BlobFolderReader {
    const list = Array.from(files as ArrayLike<File>);
    const paths = list.map((f) => f.webkitRelativePath || f.name);
    const top = paths.every((p) => p.includes('/')) ? paths[0]?.split('/')[0] : undefined;
    const strip = top !== undefined && paths.every((p) => p.startsWith(`${top}/`));
    return new BlobFolderReader(
      new Map(list.map((f, i) => [strip ? paths[i].slice(top!.length + 1) : paths[i], f])),
      strip ? top : 'model',
    );
  }

  nameOf(relPath: string): string {
    return `${this.where}/${relPath}`;
  }

  async exists(relPath: string): Promise<boolean> {
    return this.files.has(relPath);
  }

  async readText(relPath: string): Promise<string> {
    return this.blob(relPath).text();
  }

  async open(relPath: string): Promise<ByteSource> {
    return new BlobByteSource(this.blob(relPath), this.nameOf(relPath));
  }

  private blob(relPath: string): Blob {
    const blob = this.files.get(relPath);
    if (!blob) throw new Error(`${this.nameOf(relPath)}: not among the ${this.files.size} files given`);
    return blob;
  }
}
