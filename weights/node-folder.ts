/**
 * The Node ModelFolderReader: a model folder on disk. The only place the checkpoint loader touches
 * node:fs / node:path; weights/checkpoint.ts imports it dynamically, from `Checkpoint.open(dir)`.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ByteSource } from './byte-source.js';
import { FileByteSource } from './file-source.js';
import type { ModelFolderReader } from './folder.js';

export class NodeFolderReader implements ModelFolderReader {
  private constructor(readonly where: string) {}

  /** A reader for `dir`; `kind()` says whether it exists (Checkpoint.open reports that). */
  static at(dir: string): NodeFolderReader {
    return new NodeFolderReader(dir);
  }

  /**
   * What `dir` is. (Errors are thrown by the caller: classes from errors.ts must not be created in
   * this dynamically imported module, where a test runner may hold a second copy of them.)
   */
  async kind(): Promise<'folder' | 'not a folder' | 'missing'> {
    const st = await stat(this.where).catch(() => null);
    return !st ? 'missing' : st.isDirectory() ? 'folder' : 'not a folder';
  }

  nameOf(relPath: string): string {
    return relPath ? join(this.where, ...relPath.split('/')) : this.where;
  }

  async exists(relPath: string): Promise<boolean> {
    return (await stat(this.nameOf(relPath)).catch(() => null))?.isFile() ?? false;
  }

  readText(relPath: string): Promise<string> {
    return readFile(this.nameOf(relPath), 'utf8');
  }

  open(relPath: string): Promise<ByteSource> {
    return FileByteSource.open(this.nameOf(relPath));
  }
}
