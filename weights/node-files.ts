/**
 * Opening files from untrusted places (a stranger's model folder, a user's --image path) on Node.
 *
 * Only regular files are read: a FIFO, a device (/dev/zero, /dev/stdin), a socket or a directory is
 * refused by type before any byte is read. The open itself uses O_NONBLOCK, so opening a FIFO that
 * has no writer returns at once instead of blocking forever; fstat on the open handle then decides
 * (no window between a check and the open). Whole-file reads are capped: a file over its cap is
 * refused by its size, and at most the size seen by fstat is ever read (a file growing while it is
 * read cannot make the read grow).
 */
import { constants, open, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';

/** A refusal (wrong kind of file, over a cap, outside a folder): `code` lets callers tell it from I/O errors. */
export function refused(message: string): Error {
  return Object.assign(new Error(message), { code: 'CONVLLAVA_REFUSED' });
}

/** What a non-regular file is, for messages: "a FIFO (named pipe)", "a character device", … */
export function fileKind(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Opens `path` for reading if it is a regular file; otherwise rejects naming what it is. */
export async function openRegularFile(path: string, label = path): Promise<{ handle: FileHandle; size: number }> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw refused(`${label} is ${fileKind(st)}, not a regular file; only regular files are read`);
    return { handle, size: st.size };
  } catch (e) {
    await handle.close();
    throw e;
  }
}

/** The whole of a regular file of at most `maxBytes` bytes (`what` names the cap in the message). */
export async function readRegularFile(path: string, maxBytes: number, what: string, label = path): Promise<Uint8Array> {
  const { handle, size } = await openRegularFile(path, label);
  try {
    if (size > maxBytes) {
      throw refused(`${label} is ${size} bytes, over the ${maxBytes}-byte limit for ${what}`);
    }
    const out = new Uint8Array(size);
    let done = 0;
    while (done < size) {
      const { bytesRead } = await handle.read(out, done, size - done, done);
      if (bytesRead === 0) throw new Error(`${label}: file ended at ${done} of ${size} bytes (was it truncated while read?)`);
      done += bytesRead;
    }
    return out;
  } finally {
    await handle.close();
  }
}
