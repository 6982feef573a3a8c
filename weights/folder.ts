/**
 * A model folder as the checkpoint loader sees it: a few JSON files and some safetensors files,
 * named by paths relative to the folder's root ('config.json', 'vision_tower/model.safetensors').
 * This is the whole storage boundary of weights/checkpoint.ts:
 *
 *   NodeFolderReader   a folder on disk (node-folder.ts; the only one that imports node:fs)
 *   UrlFolderReader    a base URL, files fetched with HTTP Range requests (url-source.ts)
 *   BlobFolderReader   File / Blob objects, e.g. from <input type="file" webkitdirectory> (blob-source.ts)
 *
 * Relative paths always use '/' and are normalised by `insideFolder` before they reach a reader, so
 * a reader never sees '..' or an absolute path.
 */
import type { ByteSource } from './byte-source.js';

export interface ModelFolderReader {
  /** The folder for messages: a path or a URL. */
  readonly where: string;
  /** The name of a file for messages and `TensorInfo.file`: its path or URL. */
  nameOf(relPath: string): string;
  /** True if `relPath` is a readable file (a missing file is `false`, not an error). */
  exists(relPath: string): Promise<boolean>;
  /** The whole file as UTF-8 text (configs, the shard index). Rejects if it is missing. */
  readText(relPath: string): Promise<string>;
  /** Random access to a (possibly multi-GB) file; nothing is read yet beyond what `size` needs. */
  open(relPath: string): Promise<ByteSource>;
}

/**
 * `relPath` resolved against the folder root ('.' and '..' segments applied), or null when it is
 * absolute, uses backslashes, names the root itself or climbs out of the folder. Pure string logic,
 * so the same rule holds on disk and on a web server.
 */
export function insideFolder(relPath: string): string | null {
  if (relPath === '' || relPath.startsWith('/') || relPath.includes('\\') || /^[A-Za-z]:/.test(relPath)) return null;
  const parts: string[] = [];
  for (const segment of relPath.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (parts.length === 0) return null;
      parts.pop();
    } else {
      parts.push(segment);
    }
  }
  return parts.length ? parts.join('/') : null;
}

/** 'a' + 'b.json' → 'a/b.json'; '' + 'b.json' → 'b.json'. */
export function joinRel(dir: string, name: string): string {
  return dir ? `${dir}/${name}` : name;
}
