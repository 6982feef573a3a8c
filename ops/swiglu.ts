/**
 * swiglu — the LLaMA MLP's gate: silu(gate) · up.   kernels/swiglu.wgsl
 */
import ndarray, { type NdArray } from 'ndarray';
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { chunkBinding, dispatchChunked, type SplitOptions } from './chunks.js';
import { assertDType, assertSameShape, GRID_X } from './util.js';

const WG = 256;

/** y = silu(gate) · up, same shape, f32. */
export function swiglu(gpu: Gpu, gate: Tensor, up: Tensor, options: SplitOptions = {}): Tensor {
  assertSameShape('swiglu', gate, up, ['gate', 'up']);
  assertDType('swiglu', gate, 'gate', 'f32');
  assertDType('swiglu', up, 'up', 'f32');
  const y = gpu.empty(gate.shape);
  dispatchChunked(gpu, {
    kernel: 'swiglu',
    n: gate.size,
    wg: WG,
    constants: { WG, GRID_X },
    bind: (chunk) => [chunkBinding(gate, chunk), chunkBinding(up, chunk), chunkBinding(y, chunk)],
    maxBindingBytes: options.maxBindingBytes,
  });
  return y;
}

/** CPU reference (double precision). */
export function swigluRef(gate: NdArray<Float32Array>, up: NdArray<Float32Array>): NdArray<Float32Array> {
  assertSameShape('swigluRef', gate, up, ['gate', 'up']);
  const out = new Float32Array(gate.size);
  for (let i = 0; i < gate.size; i++) {
    const g = gate.data[i];
    out[i] = (g / (1 + Math.exp(-g))) * up.data[i];
  }
  return ndarray(out, gate.shape.slice());
}
