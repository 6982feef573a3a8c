/**
 * embedding — gather token rows of the embedding table.   kernels/embedding.wgsl
 *
 * The table may exceed one storage binding (LLaMA-7B: 32000 × 4096 f16 = 262 MB > 128 MiB), so it
 * is bound in row ranges of at most maxStorageBufferBindingSize bytes, 256-byte aligned, with one
 * dispatch per range; each dispatch fills the output rows whose ids fall in its range.
 *
 * Out-of-range ids: when the ids are given on the CPU (an array), an id ≥ V throws, naming the
 * position and V. When they are a GPU tensor (e.g. the sampler's output) they cannot be checked
 * without a read-back, so the kernel writes a zero row for any id ≥ V instead of reading out of
 * bounds.
 *
 * The table is a weight (any dtype); the output rows are activations, f32 by default or f16 with
 * `{ dtype: 'f16' }` (each element rounded once to f16: exact for an f16 table). A model running
 * in f16 asks for f16 rows here, and every op downstream follows their precision.
 */
import ndarray, { type NdArray } from 'ndarray';
import { params, type Gpu } from '../runtime/gpu.js';
import { isQuantDType, quantLayout } from '../runtime/quant.js';
import { Tensor, type DType } from '../runtime/tensor.js';
import { actKernel, type Precision } from './precision.js';
import { assertDType, check, gcd, grid1d, GRID_X } from './util.js';

const WG = 256;

/** Row ranges [rowStart, rowStart + rowCount) whose bytes each fit one binding, with 256-aligned starts. */
export function embeddingChunks(vocab: number, dim: number, dtype: DType, maxBindingBytes: number, align = 256): { rowStart: number; rowCount: number }[] {
  const rowBytes = tableRowBytes(dtype, dim);
  const rowAlign = align / gcd(rowBytes, align); // rows per aligned step
  // room for the rounding of an f16 chunk's end up to a whole word
  const maxRows = Math.floor((maxBindingBytes - 4) / rowBytes);
  const rowsPerChunk = vocab <= maxRows ? vocab : Math.floor(maxRows / rowAlign) * rowAlign;
  if (rowsPerChunk <= 0) throw new Error(`embedding: one ${rowAlign}-row aligned range of ${rowBytes}-byte rows exceeds the ${maxBindingBytes}-byte binding limit`);
  const chunks = [];
  for (let rowStart = 0; rowStart < vocab; rowStart += rowsPerChunk) {
    chunks.push({ rowStart, rowCount: Math.min(rowsPerChunk, vocab - rowStart) });
  }
  return chunks;
}

/** Bytes of one table row: f32, f16 (two per word), or a quantized row (runtime/quant.ts). */
function tableRowBytes(dtype: DType, dim: number): number {
  return isQuantDType(dtype) ? quantLayout(dtype, dim).rowWords * 4 : dtype === 'f16' ? 2 * dim : 4 * dim;
}

/** Options of `embedding`. */
export interface EmbeddingOptions {
  /** Precision of the output rows (activations): 'f32' (default) or 'f16'. */
  dtype?: Precision;
}

/**
 * y[t] = table[ids[t]].  ids: u32 tensor [T] or CPU ids; table [V, D] f32 | f16 | q8 | q4 → y [T, D]
 * f32, or f16 with `{ dtype: 'f16' }`.
 */
export function embedding(gpu: Gpu, ids: Tensor | ArrayLike<number>, table: Tensor, options: EmbeddingOptions = {}): Tensor {
  const p = options.dtype ?? 'f32';
  check('embedding', p === 'f32' || p === 'f16', `options.dtype (the output rows' precision) must be 'f32' or 'f16', got '${p}'`);
  check('embedding', table.shape.length === 2, `table must be [V, D], got [${table.shape}]`);
  assertDType('embedding', table, 'table', 'f32', 'f16', 'q8', 'q4');
  const kernel = actKernel(gpu, 'embedding', p); // before any upload: throws on a device without shader-f16
  const [vocab, dim] = table.shape;
  const chunks = embeddingChunks(vocab, dim, table.dtype, gpu.limits.maxStorageBufferBindingSize, gpu.limits.minStorageBufferOffsetAlignment);
  let idTensor: Tensor;
  if (ids instanceof Tensor) {
    check('embedding', ids.shape.length === 1, `ids must be [T], got [${ids.shape}]`);
    assertDType('embedding', ids, 'ids', 'u32');
    idTensor = ids;
  } else {
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t];
      if (!Number.isInteger(id) || id < 0 || id >= vocab) {
        throw new Error(`embedding: ids[${t}] = ${id} is not a token id of the [${table.shape}] table (0 ≤ id < ${vocab})`);
      }
    }
    idTensor = gpu.upload([ids.length], ids, 'u32');
  }
  const T = idTensor.shape[0];
  const y = gpu.empty([T, dim], p);
  const n = T * dim;
  const rowBytes = tableRowBytes(table.dtype, dim);
  const quant = isQuantDType(table.dtype) ? quantLayout(table.dtype, dim) : undefined;
  for (const { rowStart, rowCount } of chunks) {
    const offset = rowStart * rowBytes;
    const size = Math.min(Math.ceil((rowCount * rowBytes) / 4) * 4, table.byteLength - offset);
    gpu.dispatch({
      kernel,
      entry: quant ? 'main_q' : table.dtype === 'f16' ? 'main_f16' : 'main',
      constants: quant ? { WG, GRID_X, W_BITS: table.dtype === 'q8' ? 8 : 4 } : { WG, GRID_X },
      params: params(['u32', n], ['u32', dim], ['u32', rowStart], ['u32', rowCount], ['u32', vocab], ['u32', quant?.rowWords ?? 0], ['u32', quant?.scaleWord ?? 0]),
      bindings: [idTensor, { tensor: table, offset, size }, y],
      workgroups: grid1d(gpu, n, WG),
    });
  }
  if (idTensor !== ids) {
    // Submit before the ids buffer goes back to the pool: a later upload into it is a queue write,
    // which would otherwise land before this (not yet submitted) dispatch reads it.
    gpu.flush();
    idTensor.dispose();
  }
  return y;
}

/** CPU reference (ids ≥ V give zero rows, like the kernel; f16 rows: `f16Ref(embeddingRef)`). */
export function embeddingRef(ids: ArrayLike<number>, table: NdArray<Float32Array>): NdArray<Float32Array> {
  const [vocab, dim] = table.shape;
  const out = new Float32Array(ids.length * dim);
  for (let t = 0; t < ids.length; t++) {
    if (ids[t] >= vocab) continue;
    for (let d = 0; d < dim; d++) out[t * dim + d] = table.data[ids[t] * dim + d];
  }
  return ndarray(out, [ids.length, dim]);
}
