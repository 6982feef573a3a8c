/**
 * layerNorm — LayerNorm over the last dimension (ConvNeXt, PyTorch semantics: biased variance).
 *   kernels/layer_norm.wgsl
 */
import ndarray, { type NdArray } from 'ndarray';
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { chunkBinding, dispatchRowChunks, elementBytes, type SplitOptions } from './chunks.js';
import { actKernel, precisionOf } from './precision.js';
import { assertDType, check } from './util.js';

/**
 * y = (x − mean) / sqrt(var + eps) · gamma + beta over the last dim C; x [..., C] f32 or f16 (y takes
 * its precision; statistics are f32 either way), gamma / beta [C] f32 weights.
 */
export function layerNorm(gpu: Gpu, x: Tensor, gamma: Tensor, beta: Tensor, eps: number, options: SplitOptions = {}): Tensor {
  const C = x.shape[x.shape.length - 1];
  check('layerNorm', x.shape.length >= 1 && C > 0, `x must be [..., C] with C > 0, got [${x.shape}]`);
  for (const [name, t] of [['gamma', gamma], ['beta', beta]] as const) {
    check('layerNorm', t.shape.length === 1 && t.shape[0] === C, `${name} is [${t.shape}] but x is [${x.shape}]: ${name} must be [${C}]`);
    assertDType('layerNorm', t, name, 'f32');
  }
  const p = precisionOf('layerNorm', x);
  const y = gpu.empty(x.shape, p);
  dispatchRowChunks(gpu, {
    kernel: actKernel(gpu, 'layer_norm', p),
    elemBytes: elementBytes(x),
    rows: x.size / C,
    C,
    eps,
    bind: (chunk) => [chunkBinding(x, chunk), gamma, beta, chunkBinding(y, chunk)],
    maxBindingBytes: options.maxBindingBytes,
  });
  return y;
}

/** CPU reference: two-pass mean / biased variance in double precision (at f16: `f16Ref(layerNormRef)`). */
export function layerNormRef(
  x: NdArray<Float32Array>,
  gamma: NdArray<Float32Array>,
  beta: NdArray<Float32Array>,
  eps: number,
): NdArray<Float32Array> {
  const C = gamma.size;
  const out = new Float32Array(x.size);
  for (let base = 0; base < x.size; base += C) {
    let sum = 0;
    for (let c = 0; c < C; c++) sum += x.data[base + c];
    const mean = sum / C;
    let ss = 0;
    for (let c = 0; c < C; c++) ss += (x.data[base + c] - mean) ** 2;
    const invStd = 1 / Math.sqrt(ss / C + eps);
    for (let c = 0; c < C; c++) out[base + c] = (x.data[base + c] - mean) * invStd * gamma.data[c] + beta.data[c];
  }
  return ndarray(out, x.shape.slice());
}
