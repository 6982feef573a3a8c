/**
 * rmsNorm — RMSNorm over the last dimension (LLaMA; HF LlamaRMSNorm computed in f32).
 *   kernels/rms_norm.wgsl
 */
import ndarray, { type NdArray } from 'ndarray';
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { chunkBinding, dispatchRowChunks, elementBytes, type SplitOptions } from './chunks.js';
import { actKernel, precisionOf } from './precision.js';
import { assertDType, check } from './util.js';

/**
 * y = x / sqrt(mean(x²) + eps) · gamma over the last dim C; x [..., C] f32 or f16 (y takes its
 * precision; the mean square is f32 either way), gamma [C] an f32 weight.
 */
export function rmsNorm(gpu: Gpu, x: Tensor, gamma: Tensor, eps: number, options: SplitOptions = {}): Tensor {
  const C = x.shape[x.shape.length - 1];
  check('rmsNorm', x.shape.length >= 1 && C > 0, `x must be [..., C] with C > 0, got [${x.shape}]`);
  check('rmsNorm', gamma.shape.length === 1 && gamma.shape[0] === C, `gamma is [${gamma.shape}] but x is [${x.shape}]: gamma must be [${C}]`);
  const p = precisionOf('rmsNorm', x);
  assertDType('rmsNorm', gamma, 'gamma', 'f32');
  const y = gpu.empty(x.shape, p);
  dispatchRowChunks(gpu, {
    kernel: actKernel(gpu, 'rms_norm', p),
    elemBytes: elementBytes(x),
    rows: x.size / C,
    C,
    eps,
    bind: (chunk) => [chunkBinding(x, chunk), gamma, chunkBinding(y, chunk)],
    maxBindingBytes: options.maxBindingBytes,
  });
  return y;
}

/** CPU reference (double precision; at f16: `f16Ref(rmsNormRef)`). */
export function rmsNormRef(x: NdArray<Float32Array>, gamma: NdArray<Float32Array>, eps: number): NdArray<Float32Array> {
  const C = gamma.size;
  const out = new Float32Array(x.size);
  for (let base = 0; base < x.size; base += C) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += x.data[base + c] ** 2;
    const invRms = 1 / Math.sqrt(ss / C + eps);
    for (let c = 0; c < C; c++) out[base + c] = x.data[base + c] * invRms * gamma.data[c];
  }
  return ndarray(out, x.shape.slice());
}
