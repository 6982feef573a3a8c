/**
 * swiglu — the LLaMA MLP's gate: silu(gate) · up.   kernels/swiglu.wgsl
 *
 * f16 activations are read as f16, computed in f32 and rounded once at the store (reference:
 * `f16Ref(swigluRef)`).
 */
import ndarray, { type NdArray } from 'ndarray';
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { chunkBinding, dispatchChunked, elementBytes, type SplitOptions } from './chunks.js';
import { actKernel, assertPrecision, precisionOf } from './precision.js';
import { assertSameShape, GRID_X } from './util.js';

const WG = 256;

/** y = silu(gate) · up, same shape; f32, or f16 → f16 (gate and up share one precision). */
export function swiglu(gpu: Gpu, gate: Tensor, up: Tensor, options: SplitOptions = {}): Tensor {
  assertSameShape('swiglu', gate, up, ['gate', 'up']);
  const p = precisionOf('swiglu', gate, 'gate');
  assertPrecision('swiglu', p, { up });
  const y = gpu.empty(gate.shape, p);
  dispatchChunked(gpu, {
    kernel: actKernel(gpu, 'swiglu', p),
    elemBytes: elementBytes(gate),
    n: gate.size,
    wg: WG,
    constants: { WG, GRID_X },
    bind: (chunk) => [chunkBinding(gate, chunk), chunkBinding(up, chunk), chunkBinding(y, chunk)],
    maxBindingBytes: options.maxBindingBytes,
  });
  return y;
}

/** CPU reference (double precision; the f16 kernel's is `f16Ref(swigluRef)`). */
export function swigluRef(gate: NdArray<Float32Array>, up: NdArray<Float32Array>): NdArray<Float32Array> {
  assertSameShape('swigluRef', gate, up, ['gate', 'up']);
  const out = new Float32Array(gate.size);
  for (let i = 0; i < gate.size; i++) {
    const g = gate.data[i];
    out[i] = (g / (1 + Math.exp(-g))) * up.data[i];
  }
  return ndarray(out, gate.shape.slice());
}
