/**
 * The Node ModelFolderReader: a model folder on disk. The only place the checkpoint loader touches
 * node:fs / node:path; weights/checkpoint.ts imports it dynamically, from `Checkpoint.open(dir)`.
 *
 * Threat model: the folder (or the archive it came from) is a stranger's. Every file it names is
 * resolved (realpath: every symlink followed) and must land inside the folder, so a shard or a
 * config that is a symlink to `~/.ssh/id_rsa` or `/etc/passwd` is refused, naming the entry and
 * where it points. One exception, which users rely on: a Hugging Face hub cache snapshot
 * (`…/models--org--name/snapshots/<rev>/`), whose files are symlinks into the same repo's `blobs/`.
 * Only regular files are opened (node-files.ts), and JSON files are read up to MAX_JSON_BYTES.
 */
import { lstat, readlink, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, sep } from 'node:path';
import type { ByteSource } from './byte-source.js';
import { FileByteSource } from './file-source.js';
import type { ModelFolderReader } from './folder.js';
import { fileKind, readRegularFile, refused } from './node-files.js';

/** Largest config / index JSON read (a 7B index is ~30 KB; a 1 GiB "config" is refused by size). */
export const MAX_JSON_BYTES = 16 << 20;

export class NodeFolderReader implements ModelFolderReader {
  private roots: Promise<{ real: string; blobs: string | null }> | null = null;

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

  /** False when nothing is there; rejects when something is there that must not be read. */
  async exists(relPath: string): Promise<boolean> {
    return (await this.resolve(relPath)) !== null;
  }

  async readText(relPath: string): Promise<string> {
    const file = await this.resolve(relPath);
    if (!file) throw Object.assign(new Error(`${this.nameOf(relPath)}: no such file`), { code: 'ENOENT' });
    const bytes = await readRegularFile(file.real, MAX_JSON_BYTES, 'a JSON file of a model folder', this.nameOf(relPath));
    return new TextDecoder().decode(bytes);
  }

  async open(relPath: string): Promise<ByteSource> {
    const file = await this.resolve(relPath);
    if (!file) throw Object.assign(new Error(`${this.nameOf(relPath)}: no such file`), { code: 'ENOENT' });
    return FileByteSource.open(file.real, this.nameOf(relPath));
  }

  /** The folder's real path, and the HF cache's blobs/ folder when the folder is a snapshot. */
  private folderRoots(): Promise<{ real: string; blobs: string | null }> {
    this.roots ??= realpath(this.where).then((real) => {
      const snapshots = dirname(real);
      const isSnapshot = basename(snapshots) === 'snapshots' && basename(dirname(snapshots)).startsWith('models--');
      return { real, blobs: isSnapshot ? join(dirname(snapshots), 'blobs') : null };
    });
    return this.roots;
  }

  /**
   * `relPath` (already normalised by insideFolder) → its real path, or null when nothing is there.
   * Rejects (code CONVLLAVA_REFUSED) when it resolves outside the folder or is not a regular file.
   */
  private async resolve(relPath: string): Promise<{ real: string; size: number } | null> {
    const name = this.nameOf(relPath);
    let real: string;
    try {
      real = await realpath(name);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ELOOP') throw refused(`${name}: a loop of symbolic links`);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
      const link = await lstat(name).catch(() => null);
      if (link?.isSymbolicLink()) throw refused(`${name}: a symbolic link to ${await readlink(name)}, which does not exist`);
      return null;
    }
    const { real: root, blobs } = await this.folderRoots();
    if (!within(real, root) && !(blobs && within(real, blobs))) {
      throw refused(
        `${name}: resolves to ${real}, outside the model folder ${root}; refused (files of a model folder must lie ` +
          `inside it; symlinks are followed only within it, or from a Hugging Face cache snapshot into its blobs/)`,
      );
    }
    const st = await stat(real);
    if (!st.isFile()) throw refused(`${name}: is ${fileKind(st)}, not a regular file; refused`);
    return { real, size: st.size };
  }
}

function within(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder.endsWith(sep) ? folder : folder + sep);
}
