/**
 * The Node side of `writeSafetensors` (see safetensors.ts): streams tensor bytes to a file handle.
 */
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { SafetensorsError } from './errors.js';
import { encodeHeader, type TensorToWrite } from './safetensors.js';
import { FileByteSource } from './file-source.js';

const COPY_CHUNK = 16 << 20;

export async function writeSafetensorsFile(
  path: string,
  tensors: TensorToWrite[] | AsyncIterable<TensorToWrite>,
  metadata?: Record<string, string>,
): Promise<void> {
  const tmp = `${path}.${process.pid}.partial`;
  try {
    if (Array.isArray(tensors)) await writeKnown(tmp, path, tensors, metadata);
    else await writeSpooled(tmp, path, tensors, metadata);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    await rm(`${tmp}.data`, { force: true });
    if (e instanceof SafetensorsError) throw new SafetensorsError(`${path}: ${e.message}`, path, e.tensor);
    throw e;
  }
}

/** Header first (shapes known), then every tensor's bytes in order. */
async function writeKnown(tmp: string, path: string, tensors: TensorToWrite[], metadata?: Record<string, string>): Promise<void> {
  const { header, infos } = encodeHeader(tensors, metadata);
  const fh = await open(tmp, 'w');
  try {
    await writeAll(fh, header, 0);
    let position = header.byteLength;
    for (let i = 0; i < tensors.length; i++) {
      const written = await writeTensorData(fh, tensors[i], position);
      const expected = infos[i].end - infos[i].begin;
      if (written !== expected) {
        throw new SafetensorsError(
          `tensor '${tensors[i].name}': [${tensors[i].shape}] ${tensors[i].dtype} is ${expected} bytes but its data has ${written}`,
          path,
          tensors[i].name,
        );
      }
      position += written;
    }
  } finally {
    await fh.close();
  }
}

/** Tensors arrive one by one: spool their data to a side file, then write header + copy. */
async function writeSpooled(tmp: string, path: string, tensors: AsyncIterable<TensorToWrite>, metadata?: Record<string, string>): Promise<void> {
  const described: { name: string; dtype: TensorToWrite['dtype']; shape: number[] }[] = [];
  const spool = await open(`${tmp}.data`, 'w');
  let dataLength = 0;
  try {
    for await (const t of tensors) {
      described.push({ name: t.name, dtype: t.dtype, shape: t.shape });
      const { infos } = encodeHeader(described); // validates names / sizes as we go
      const expected = infos[infos.length - 1].end - infos[infos.length - 1].begin;
      const written = await writeTensorData(spool, t, dataLength);
      if (written !== expected) {
        throw new SafetensorsError(`tensor '${t.name}': [${t.shape}] ${t.dtype} is ${expected} bytes but its data has ${written}`, path, t.name);
      }
      dataLength += written;
    }
  } finally {
    await spool.close();
  }
  const { header } = encodeHeader(described, metadata);
  const out = await open(tmp, 'w');
  const data = await FileByteSource.open(`${tmp}.data`);
  try {
    await writeAll(out, header, 0);
    const chunk = new Uint8Array(Math.min(COPY_CHUNK, Math.max(dataLength, 1)));
    for (let at = 0; at < dataLength; at += chunk.length) {
      const piece = await data.read(at, Math.min(chunk.length, dataLength - at), chunk);
      await writeAll(out, piece, header.byteLength + at);
    }
  } finally {
    await data.close();
    await out.close();
    await rm(`${tmp}.data`, { force: true });
  }
}

async function writeTensorData(fh: FileHandle, t: TensorToWrite, position: number): Promise<number> {
  if (ArrayBuffer.isView(t.data)) {
    await writeAll(fh, bytesOf(t.data), position);
    return t.data.byteLength;
  }
  let written = 0;
  for await (const piece of t.data()) {
    await writeAll(fh, bytesOf(piece), position + written);
    written += piece.byteLength;
  }
  return written;
}

function bytesOf(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

async function writeAll(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await fh.write(bytes, done, Math.min(bytes.byteLength - done, 1 << 30), position + done);
    done += bytesWritten;
  }
}
