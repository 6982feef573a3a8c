/**
 * add — elementwise sum (residual connections).   kernels/add.wgsl
 *
 * Operands over one storage binding (128 MiB on lavapipe) are split into aligned chunks, one
 * dispatch each (ops/chunks.ts), like every elementwise op.
 */
import ndarray, { type NdArray } from 'ndarray';
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { chunkBinding, dispatchChunked, type SplitOptions } from './chunks.js';
import { assertDType, assertSameShape, GRID_X } from './util.js';

const WG = 256;

/** y = a + b (same shape, f32). */
export function add(gpu: Gpu, a: Tensor, b: Tensor, options: SplitOptions = {}): Tensor {
  assertSameShape('add', a, b);
  assertDType('add', a, 'a', 'f32');
  assertDType('add', b, 'b', 'f32');
  const y = gpu.empty(a.shape);
  dispatchChunked(gpu, {
    kernel: 'add',
    n: a.size,
    wg: WG,
    constants: { WG, GRID_X },
    bind: (chunk) => [chunkBinding(a, chunk), chunkBinding(b, chunk), chunkBinding(y, chunk)],
    maxBindingBytes: options.maxBindingBytes,
  });
  return y;
}

/** CPU reference. */
export function addRef(a: NdArray<Float32Array>, b: NdArray<Float32Array>): NdArray<Float32Array> {
  assertSameShape('addRef', a, b);
  const out = new Float32Array(a.size);
  for (let i = 0; i < a.size; i++) out[i] = a.data[i] + b.data[i];
  return ndarray(out, a.shape.slice());
}
