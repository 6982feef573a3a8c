/**
 * add — elementwise sum (residual connections).   kernels/add.wgsl
 */
import ndarray, { type NdArray } from 'ndarray';
import { params, type Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { assertDType, assertSameShape, grid1d, GRID_X } from './util.js';

const WG = 256;

/** y = a + b (same shape, f32). */
export function add(gpu: Gpu, a: Tensor, b: Tensor): Tensor {
  assertSameShape('add', a, b);
  assertDType('add', a, 'a', 'f32');
  assertDType('add', b, 'b', 'f32');
  const y = gpu.empty(a.shape);
  gpu.dispatch({
    kernel: 'add',
    constants: { WG, GRID_X },
    params: params(['u32', a.size]),
    bindings: [a, b, y],
    workgroups: grid1d(gpu, a.size, WG),
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
