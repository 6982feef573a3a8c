/**
 * The safetensors format, read and written here (not via npm `safetensors`, which reads whole files
 * into memory and validates nothing):
 *
 *   [8 bytes: N, u64 little-endian] [N bytes: UTF-8 JSON header] [data section]
 *   header = { "__metadata__"?: {string: string},
 *              "<tensor name>": { "dtype": "F16", "shape": [d0, d1, …], "data_offsets": [begin, end] }, … }
 *
 * `data_offsets` are byte offsets into the data section. The reader enforces what the reference Rust
 * implementation enforces: a sane header length that fits the file, UTF-8 JSON, known dtypes, tensors
 * that tile the data section exactly (no gap, no overlap, no truncation, no trailing bytes), and
 * shape × dtype size == byte range (computed in BigInt, so huge shapes cannot overflow into a match).
 * It also rejects duplicate tensor names, which JSON.parse would silently merge.
 *
 * Tensors are read by offset through a ByteSource, never by loading the file.
 */
import type { ByteSink, ByteSource } from './byte-source.js';
import { named, quote, SafetensorsError } from './errors.js';
import { findDuplicateKey, parseJsonChecked } from './json-keys.js';

export { SafetensorsError } from './errors.js';

/** Bits per element of every safetensors dtype (F4/F6 are packed sub-byte formats). */
export const DTYPE_BITS = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
} as const;

export type StDType = keyof typeof DTYPE_BITS;

export function isStDType(s: unknown): s is StDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BITS, s);
}

export interface TensorInfo {
  name: string;
  dtype: StDType;
  shape: number[];
  /** Byte range [begin, end) in the data section (which starts after the header). */
  begin: number;
  end: number;
}

/** Headers larger than this are refused before anything is allocated (the Rust crate's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

/** Element count of a shape, exactly (BigInt). */
export function numelBig(shape: readonly number[]): bigint {
  let n = 1n;
  for (const d of shape) n *= BigInt(d);
  return n;
}

/** Bytes of `numel` elements of `dtype`, or null when sub-byte elements do not fill whole bytes. */
export function byteSizeBig(dtype: StDType, numel: bigint): bigint | null {
  const bits = numel * BigInt(DTYPE_BITS[dtype]);
  return bits % 8n === 0n ? bits / 8n : null;
}

export interface ParsedHeader {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

/**
 * Validates a header (the N bytes after the length prefix) against a data section of `dataLength`
 * bytes. `file` only names the file in errors.
 */
export function parseHeader(headerBytes: Uint8Array, dataLength: number, file: string): ParsedHeader {
  const fail = (message: string, tensor?: string): never => {
    throw new SafetensorsError(`${file}: ${message}`, file, tensor);
  };

  let text: string;
  try {
    // ignoreBOM keeps a byte-order mark in the text, so JSON.parse rejects it as the Rust parser does.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    return fail('the header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = parseJsonChecked(text); // leading / trailing JSON whitespace (writers pad with spaces) is allowed
  } catch (e) {
    return fail(`the header is ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return fail('the header must be a JSON object of tensor descriptions');
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate) {
    const what = duplicate.objectPath === '$' ? `tensor name ${named(duplicate.key)}` : `key ${named(duplicate.key)} in ${duplicate.objectPath}`;
    return fail(`the header lists ${what} twice`, duplicate.objectPath === '$' ? duplicate.key : undefined);
  }

  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (value === null) continue;
      if (typeof value !== 'object' || Array.isArray(value)) return fail('__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') return fail(`__metadata__[${named(k)}] must be a string, got ${quote(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    tensors.set(name, parseTensorInfo(name, value, fail));
  }

  // The tensors must tile [0, dataLength) exactly, in offset order.
  const ordered = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: TensorInfo | null = null;
  for (const t of ordered) {
    if (t.begin > cursor) {
      const after = previous ? `after ${named(previous.name)} (ends at ${cursor})` : 'at the start of the data section';
      return fail(`gap of ${t.begin - cursor} bytes ${after} before tensor ${named(t.name)} (begins at ${t.begin})`, t.name);
    }
    if (t.begin < cursor) {
      return fail(`tensor ${named(t.name)} (bytes ${t.begin}–${t.end}) overlaps ${named(previous!.name)} (ends at ${cursor})`, t.name);
    }
    cursor = t.end;
    previous = t;
  }
  if (cursor > dataLength) {
    return fail(
      `the tensors need ${cursor} bytes of data but the file holds only ${dataLength} after the header ` +
        `(truncated by ${cursor - dataLength} bytes; ${named(previous!.name)} ends at ${cursor})`,
      previous!.name,
    );
  }
  if (cursor < dataLength) {
    return fail(`${dataLength - cursor} trailing bytes after the last tensor (the tensors cover ${cursor} of ${dataLength} data bytes)`);
  }
  return { tensors, metadata };
}

function parseTensorInfo(name: string, value: unknown, fail: (m: string, t?: string) => never): TensorInfo {
  const where = `tensor ${named(name)}`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail(`${where}: expected {dtype, shape, data_offsets}, got ${quote(value)}`, name);
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (!isStDType(dtype)) {
    return fail(`${where}: unknown dtype ${quote(dtype)} (known: ${Object.keys(DTYPE_BITS).join(', ')})`, name);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    return fail(`${where}: shape must be an array of non-negative integers, got ${quote(shape)}`, name);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
  ) {
    return fail(`${where}: data_offsets must be two non-negative integers [begin, end], got ${quote(offsets)}`, name);
  }
  const [begin, end] = offsets as number[];
  if (end < begin) return fail(`${where}: data_offsets [${begin}, ${end}] end before they begin`, name);
  const numel = numelBig(shape);
  const bytes = byteSizeBig(dtype, numel);
  if (bytes === null) {
    return fail(`${where}: ${numel} elements of ${dtype} (${DTYPE_BITS[dtype]} bits) do not fill whole bytes`, name);
  }
  if (bytes !== BigInt(end - begin)) {
    return fail(
      `${where}: shape [${shape.join(', ')}] of ${dtype} needs ${bytes} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
      name,
    );
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

/** An open .safetensors file: validated header in memory, tensor bytes read on demand. */
export class SafetensorsFile {
  private constructor(
    private readonly source: ByteSource,
    readonly tensors: Map<string, TensorInfo>,
    readonly metadata: Record<string, string>,
    /** Where the data section starts in the file (8 + header length). */
    readonly dataStart: number,
  ) {}

  /** The file's path (or the source's name). */
  get path(): string {
    return this.source.name;
  }

  /** Opens and validates a file on disk (Node). */
  static async open(path: string): Promise<SafetensorsFile> {
    const { FileByteSource } = await import('./file-source.js');
    let source: ByteSource;
    try {
      source = await FileByteSource.open(path);
    } catch (e) {
      throw new SafetensorsError(`${path}: cannot open (${(e as Error).message})`, path);
    }
    return SafetensorsFile.fromSource(source);
  }

  /** Validates the header of any byte source; closes the source if it is invalid. */
  static async fromSource(source: ByteSource): Promise<SafetensorsFile> {
    const file = source.name;
    try {
      if (source.size < 8) {
        throw new SafetensorsError(`${file}: ${source.size} bytes is too short for a safetensors file (8-byte header length missing)`, file);
      }
      const prefix = await source.read(0, 8);
      const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
      if (n > BigInt(MAX_HEADER_BYTES)) {
        // The length is not printed: in a file that is not safetensors these are its first 8 bytes.
        throw new SafetensorsError(`${file}: the 8-byte header length exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`, file);
      }
      const headerLength = Number(n);
      if (8 + headerLength > source.size) {
        throw new SafetensorsError(`${file}: the 8-byte header length runs past the end of the ${source.size}-byte file (truncated, or not a safetensors file?)`, file);
      }
      const header = await source.read(8, headerLength);
      const { tensors, metadata } = parseHeader(header, source.size - 8 - headerLength, file);
      return new SafetensorsFile(source, tensors, metadata, 8 + headerLength);
    } catch (e) {
      await source.close();
      throw e;
    }
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(`${this.path}: no tensor ${named(name)}`, this.path, name);
    return t;
  }

  /** All bytes of one tensor (little-endian, as stored). */
  readBytes(name: string, into?: Uint8Array): Promise<Uint8Array> {
    const t = this.info(name);
    return this.readRange(name, 0, t.end - t.begin, into);
  }

  /** `length` bytes starting `offset` bytes into tensor `name` (for chunked streaming). */
  async readRange(name: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    const t = this.info(name);
    if (offset < 0 || length < 0 || offset + length > t.end - t.begin) {
      throw new SafetensorsError(`${this.path}: byte range ${offset}+${length} is outside tensor ${named(name)} (${t.end - t.begin} bytes)`, this.path, name);
    }
    try {
      return await this.source.read(this.dataStart + t.begin + offset, length, into);
    } catch (e) {
      throw new SafetensorsError(`${this.path}: reading tensor ${named(name)} failed (${(e as Error).message})`, this.path, name);
    }
  }

  close(): Promise<void> {
    return this.source.close();
  }
}

/** One tensor to write. `data` is its bytes, or a function yielding them in chunks (streamed). */
export interface TensorToWrite {
  name: string;
  dtype: StDType;
  shape: number[];
  data: ArrayBufferView | (() => AsyncIterable<ArrayBufferView> | Iterable<ArrayBufferView>);
}

/**
 * Writes a .safetensors file. With an array, the header is computed from the shapes first and each
 * tensor's data is streamed straight to the file, so multi-GB files need only one chunk in memory.
 * An async iterable of tensors (count unknown up front) is spooled to a side file, then copied after
 * the header. The file appears atomically (written under a temporary name, then renamed); on any
 * error nothing is left behind.
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorToWrite[] | AsyncIterable<TensorToWrite>,
  metadata?: Record<string, string>,
): Promise<void> {
  const { FileByteSink } = await import('./file-source.js');
  const out = await FileByteSink.create(path);
  try {
    if (Array.isArray(tensors)) {
      const { header, infos } = encodeHeader(tensors, metadata, path);
      await out.write(0, header);
      let position = header.byteLength;
      for (let i = 0; i < tensors.length; i++) {
        position += await writeTensorData(out, position, tensors[i], infos[i], path);
      }
    } else {
      await writeSpooled(out, tensors, metadata, FileByteSink, path);
    }
    await out.commit();
  } catch (e) {
    await out.abort();
    throw e;
  }
}

async function writeSpooled(
  out: ByteSink,
  tensors: AsyncIterable<TensorToWrite>,
  metadata: Record<string, string> | undefined,
  Sink: { create(path: string): Promise<ByteSink> },
  path: string,
): Promise<void> {
  const spool = await Sink.create(`${path}.spool`);
  try {
    const described: TensorToWrite[] = [];
    let dataLength = 0;
    for await (const t of tensors) {
      described.push(t);
      const { infos } = encodeHeader(described, undefined, path); // validates names and sizes as they arrive
      dataLength += await writeTensorData(spool, dataLength, t, infos[infos.length - 1], path);
      described[described.length - 1] = { ...t, data: new Uint8Array(0) }; // do not keep the data alive
    }
    const { header } = encodeHeader(described, metadata, path);
    await out.write(0, header);
    const data = await spool.readBack();
    try {
      const chunk = new Uint8Array(Math.max(1, Math.min(COPY_CHUNK, dataLength)));
      for (let at = 0; at < dataLength; at += chunk.length) {
        const piece = await data.read(at, Math.min(chunk.length, dataLength - at), chunk);
        await out.write(header.byteLength + at, piece);
      }
    } finally {
      await data.close();
    }
  } finally {
    await spool.abort();
  }
}

/** Writes one tensor's bytes at `position`; checks they match its shape × dtype. Returns the count. */
async function writeTensorData(sink: ByteSink, position: number, t: TensorToWrite, info: TensorInfo, path: string): Promise<number> {
  let written = 0;
  const pieces = ArrayBuffer.isView(t.data) ? [t.data] : t.data();
  for await (const piece of pieces) {
    await sink.write(position + written, new Uint8Array(piece.buffer, piece.byteOffset, piece.byteLength));
    written += piece.byteLength;
  }
  const expected = info.end - info.begin;
  if (written !== expected) {
    throw new SafetensorsError(`${path}: tensor ${named(t.name)}: [${t.shape}] ${t.dtype} is ${expected} bytes but its data has ${written}`, path, t.name);
  }
  return written;
}

const COPY_CHUNK = 16 << 20;

/**
 * The header bytes for tensors laid out in the given order: JSON padded with spaces so the data section
 * starts 8-byte aligned (as the Rust writer does). Returns the bytes and each tensor's offsets.
 */
export function encodeHeader(
  tensors: { name: string; dtype: StDType; shape: number[] }[],
  metadata?: Record<string, string>,
  file = '(writer)',
): { header: Uint8Array; infos: TensorInfo[]; dataLength: number } {
  const fail = (message: string, tensor: string): never => {
    throw new SafetensorsError(`${file}: tensor ${named(tensor)}: ${message}`, file, tensor);
  };
  const json: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) json.__metadata__ = metadata;
  const infos: TensorInfo[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__') fail(`'__metadata__' cannot be a tensor name`, t.name);
    if (Object.prototype.hasOwnProperty.call(json, t.name)) fail('listed twice', t.name);
    if (!isStDType(t.dtype)) fail(`unknown dtype '${t.dtype}'`, t.name);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`bad shape [${t.shape}]`, t.name);
    const bytes = byteSizeBig(t.dtype, numelBig(t.shape));
    if (bytes === null) fail(`[${t.shape}] ${t.dtype} is not a whole number of bytes`, t.name);
    const info = { name: t.name, dtype: t.dtype, shape: [...t.shape], begin: offset, end: offset + Number(bytes!) };
    json[t.name] = { dtype: info.dtype, shape: info.shape, data_offsets: [info.begin, info.end] };
    infos.push(info);
    offset = info.end;
  }
  const text = new TextEncoder().encode(JSON.stringify(json));
  const padded = Math.ceil(text.length / 8) * 8;
  const header = new Uint8Array(8 + padded).fill(0x20);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(text, 8);
  return { header, infos, dataLength: offset };
}
