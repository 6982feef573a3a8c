/**
 * add — elementwise sum (residual connections).   kernels/add.wgsl
 *
 * Operands over one storage binding (128 MiB on lavapipe) are split into aligned chunks, one
 * dispatch each (ops/chunks.ts), like every elementwise op.
 */
import ndarray, { type NdArray } from 'ndarray';
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { chunkBinding, dispatchChunked, elementBytes, type SplitOptions } from './chunks.js';
import { actKernel, assertPrecision, precisionOf } from './precision.js';
import { assertSameShape, GRID_X } from './util.js';

const WG = 256;

/** y = a + b (same shape; f32, or f16 → f16). */
export function add(gpu: Gpu, a: Tensor, b: Tensor, options: SplitOptions = {}): Tensor {
  assertSameShape('add', a, b);
  const p = precisionOf('add', a, 'a');
  assertPrecision('add', p, { b });
  const y = gpu.empty(a.shape, p);
  dispatchChunked(gpu, {
    kernel: actKernel(gpu, 'add', p),
    elemBytes: elementBytes(a),
    n: a.size,
    wg: WG,
    constants: { WG, GRID_X },
    bind: (chunk) => [chunkBinding(a, chunk), chunkBinding(b, chunk), chunkBinding(y, chunk)],
    maxBindingBytes: options.maxBindingBytes,
  });
  return y;
}

/** CPU reference (f32; the f16 kernel's reference is `f16Ref(addRef)`, ops/precision.ts). */
export function addRef(a: NdArray<Float32Array>, b: NdArray<Float32Array>): NdArray<Float32Array> {
  assertSameShape('addRef', a, b);
  const out = new Float32Array(a.size);
  for (let i = 0; i < a.size; i++) out[i] = a.data[i] + b.data[i];
  return ndarray(out, a.shape.slice());
}
