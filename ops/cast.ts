/**
 * cast — an activation tensor converted to f32 or f16.   kernels/cast.wgsl
 *
 * The model casts at its edges: pixel values (and embedding rows) into f16 on the way in, and any
 * activation it reads back on the CPU, or hands to f32-only code, to f32 on the way out.
 *
 *   f32 → f16   round to nearest, ties to even (PyTorch's .half()): overflow → ±inf, subnormals kept
 *   f16 → f32   exact
 *   same dtype  a copy (a buffer copy, no kernel)
 *
 * The result is always a new tensor. Operands over one storage binding are split into aligned
 * chunks, one dispatch each (ops/chunks.ts), like every elementwise op.
 */
import ndarray, { type NdArray } from 'ndarray';
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { chunkBinding, dispatchChunked, type SplitOptions } from './chunks.js';
import { precisionKernel, precisionOf, roundF16Array, type Precision } from './precision.js';
import { check, GRID_X } from './util.js';

const WG = 256;

/** y = x converted to `dtype` (f32 or f16), same shape; always a new tensor. */
export function cast(gpu: Gpu, x: Tensor, dtype: Precision, options: SplitOptions = {}): Tensor {
  const from = precisionOf('cast', x, 'x');
  check('cast', dtype === 'f32' || dtype === 'f16', `dtype must be 'f32' or 'f16', got '${dtype}'`);
  const y = gpu.empty(x.shape, dtype);
  if (from === dtype) {
    gpu.copy(x, 0, y, 0, x.byteLength);
    return y;
  }
  dispatchChunked(gpu, {
    // the f16 side's alias switched: +f16(dst) is f32 → f16, +f16(src) is f16 → f32
    kernel: precisionKernel(gpu, 'cast', [dtype === 'f16' ? 'dst' : 'src']),
    n: x.size,
    wg: WG,
    constants: { WG, GRID_X, ROUND_TO_F16: dtype === 'f16' ? 1 : 0 },
    // chunks sized for the f32 side (4 bytes) and starting on 128 elements, so both the f32 and the
    // f16 binding offsets are 256-byte aligned
    elemBytes: 4,
    unit: 128,
    bind: (chunk) => [chunkBinding(x, chunk), chunkBinding(y, chunk)],
    maxBindingBytes: options.maxBindingBytes,
  });
  return y;
}

/** CPU reference: the values as `dtype` holds them (f16: rounded to nearest even; f32: a copy). */
export function castRef(x: NdArray<Float32Array>, dtype: Precision): NdArray<Float32Array> {
  const out = Float32Array.from(x.data);
  return ndarray(dtype === 'f16' ? roundF16Array(out) : out, x.shape.slice());
}
