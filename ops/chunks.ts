/**
 * Splitting work whose operands exceed one storage binding.
 *
 * WebGPU caps one binding at `maxStorageBufferBindingSize` (128 MiB on lavapipe and by default on
 * most desktop GPUs) and needs binding offsets that are multiples of
 * `minStorageBufferOffsetAlignment` (256 bytes). A 384×384×768 f32 MLP activation is 453 MB, so the
 * elementwise and row-wise ops cut their flat index range into chunks that each fit one binding and
 * start on an aligned offset, and dispatch once per chunk with the chunk bound as a byte range.
 */
import { params, type Binding, type Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { grid1d, GRID_X, lcm } from './util.js';

/** Elements [start, start + count) of a flat index range. */
export interface Chunk {
  start: number;
  count: number;
}

/**
 * Cuts n elements of `elemBytes` bytes (4: f32, 2: f16 activations) into chunks of at most
 * `maxBytes` (default: the device's binding limit) whose starts are 256-byte aligned; `unit` forces
 * every chunk except the last to be a multiple of `unit` elements (whole rows for the row-wise ops).
 * `what` names the caller in errors.
 */
export function f32Chunks(gpu: Gpu, n: number, unit = 1, maxBytes?: number, what = 'f32Chunks', elemBytes = 4): Chunk[] {
  const limit = Math.min(maxBytes ?? Infinity, gpu.limits.maxStorageBufferBindingSize);
  if (n * elemBytes <= limit) return [{ start: 0, count: n }];
  const alignElems = gpu.limits.minStorageBufferOffsetAlignment / elemBytes;
  const step = lcm(alignElems, unit);
  const per = Math.floor(limit / elemBytes / step) * step;
  if (per === 0) {
    throw new Error(`${what}: a unit of ${unit} ${elemBytes}-byte elements (aligned to ${alignElems}) does not fit one ${limit}-byte binding`);
  }
  const chunks: Chunk[] = [];
  for (let start = 0; start < n; start += per) chunks.push({ start, count: Math.min(per, n - start) });
  return chunks;
}

/**
 * The byte range of an f32 or f16 tensor that holds `chunk` (the whole tensor when it is one chunk).
 * An f16 range ending mid-word is widened to the word (bindings are whole 4-byte words).
 */
export function chunkBinding(t: Tensor, chunk: Chunk): Binding {
  if (chunk.start === 0 && chunk.count === t.size) return t;
  const bytes = elementBytes(t);
  const offset = chunk.start * bytes;
  return { tensor: t, offset, size: Math.min(Math.ceil((chunk.count * bytes) / 4) * 4, t.byteLength - offset) };
}

/** Bytes per element of an f32 / f16 (activation) tensor. */
export function elementBytes(t: Tensor): 2 | 4 {
  return t.dtype === 'f16' ? 2 : 4;
}

/** Options of the ops that split big operands; tests shrink the limit to exercise the split. */
export interface SplitOptions {
  /** Largest binding to use, in bytes (default and maximum: the device's maxStorageBufferBindingSize). */
  maxBindingBytes?: number;
}

/**
 * Records a kernel over a flat f32 index range of `n` elements, one dispatch per chunk (see
 * `f32Chunks`); `bind(chunk)` returns that dispatch's storage bindings (use `chunkBinding` for the
 * operands that are split, whole tensors for shared vectors such as gamma). The kernel's Params block
 * is `{ n, ...extraParams }` with n the chunk's element count, and its grid is `grid1d` over n.
 */
export function dispatchChunked(
  gpu: Gpu,
  d: {
    kernel: string;
    n: number;
    wg: number;
    constants: Record<string, number>;
    bind: (chunk: Chunk) => Binding[];
    /** Chunks start on multiples of `unit` elements (whole rows); default 1. */
    unit?: number;
    extraParams?: number[];
    maxBindingBytes?: number;
    /** Bytes per element of the split operands (2 for f16 activations); default 4. */
    elemBytes?: number;
  },
): void {
  for (const chunk of f32Chunks(gpu, d.n, d.unit ?? 1, d.maxBindingBytes, d.kernel, d.elemBytes)) {
    const extra = (d.extraParams ?? []).map((v): ['u32', number] => ['u32', v]);
    gpu.dispatch({
      kernel: d.kernel,
      constants: d.constants,
      params: params(['u32', chunk.count], ...extra),
      bindings: d.bind(chunk),
      workgroups: grid1d(gpu, chunk.count, d.wg),
    });
  }
}

/**
 * Records a row-wise kernel (one segment of threads per row, kernels/layer_norm.wgsl style) over
 * `rows` rows of C f32 values, split into chunks of whole rows that fit one binding. The kernel's
 * Params are `{ rows, C, eps }` with rows counted within the chunk; `bind(chunk)` gives its bindings.
 */
export function dispatchRowChunks(
  gpu: Gpu,
  d: {
    kernel: string;
    rows: number;
    C: number;
    eps: number;
    bind: (chunk: Chunk) => Binding[];
    maxBindingBytes?: number;
    /** Bytes per element of the split operands (2 for f16 activations); default 4. */
    elemBytes?: number;
  },
): void {
  const maxThreads = Math.min(1024, gpu.limits.maxComputeInvocationsPerWorkgroup, gpu.limits.maxComputeWorkgroupSizeX);
  const TPR = threadsPerRow(d.C, maxThreads);
  const WG = Math.max(256, TPR);
  for (const chunk of f32Chunks(gpu, d.rows * d.C, d.C, d.maxBindingBytes, `${d.kernel} (rows of ${d.C})`, d.elemBytes)) {
    const rows = chunk.count / d.C;
    gpu.dispatch({
      kernel: d.kernel,
      constants: { WG, TPR, GRID_X },
      params: params(['u32', rows], ['u32', d.C], ['f32', d.eps]),
      bindings: d.bind(chunk),
      workgroups: grid1d(gpu, rows, WG / TPR),
    });
  }
}

/**
 * Row elements each thread should own: the row kernels keep this many in registers (their
 * `const CACHED`, which must stay a WGSL const because it sizes a register array). If the two
 * ever differ only speed changes: elements past CACHED are re-read from memory, still correct.
 */
export const ROW_ELEMS_PER_THREAD = 8;

/**
 * Threads per row for a row of C floats: the smallest power of two in [32, maxThreads] that leaves
 * each thread at most ROW_ELEMS_PER_THREAD elements, so rows up to 8·maxThreads floats are read
 * from memory once.
 */
export function threadsPerRow(C: number, maxThreads: number): number {
  let tpr = 32;
  while (tpr < maxThreads && tpr * ROW_ELEMS_PER_THREAD < C) tpr *= 2;
  return tpr;
}

/**
 * Binds elements [start, end) of an f32 or f16 tensor t from the aligned byte offset at or below
 * `start` (for ranges that cannot start aligned, e.g. image rows of W·C floats); `elementOffset` is
 * where `start` lands inside the binding, for the kernel to add. The whole tensor is bound as itself.
 */
export function f32Range(gpu: Gpu, t: Tensor, start: number, end: number): { binding: Binding; elementOffset: number } {
  if (start === 0 && end === t.size) return { binding: t, elementOffset: 0 };
  const bytes = elementBytes(t);
  const align = gpu.limits.minStorageBufferOffsetAlignment;
  const offset = Math.floor((start * bytes) / align) * align;
  const size = Math.min(Math.ceil((end * bytes - offset) / 4) * 4, t.byteLength - offset);
  return { binding: { tensor: t, offset, size }, elementOffset: start - offset / bytes };
}
