/**
 * layerScaleResidual — ConvNeXt's layer scale and residual add in one pass.
 *   kernels/layer_scale_residual.wgsl
 *
 *   y = residual + gamma · x        gamma [C] scales the last dimension
 */
import ndarray, { type NdArray } from 'ndarray';
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { chunkBinding, dispatchChunked, type SplitOptions } from './chunks.js';
import { assertDType, assertSameShape, check, GRID_X } from './util.js';

const WG = 256;

/** y = residual + gamma · x; x and residual [..., C] (same shape), gamma [C]; all f32. */
export function layerScaleResidual(gpu: Gpu, x: Tensor, gamma: Tensor, residual: Tensor, options: SplitOptions = {}): Tensor {
  assertSameShape('layerScaleResidual', x, residual, ['x', 'residual']);
  const C = x.shape[x.shape.length - 1];
  check('layerScaleResidual', gamma.shape.length === 1 && gamma.shape[0] === C,
    `gamma is [${gamma.shape}] but x is [${x.shape}]: gamma must be [${C}] (the last dim of x)`);
  assertDType('layerScaleResidual', x, 'x', 'f32');
  assertDType('layerScaleResidual', gamma, 'gamma', 'f32');
  assertDType('layerScaleResidual', residual, 'residual', 'f32');
  const y = gpu.empty(x.shape);
  dispatchChunked(gpu, {
    kernel: 'layer_scale_residual',
    n: x.size,
    unit: C,
    extraParams: [C],
    wg: WG,
    constants: { WG, GRID_X },
    bind: (chunk) => [chunkBinding(x, chunk), chunkBinding(residual, chunk), gamma, chunkBinding(y, chunk)],
    maxBindingBytes: options.maxBindingBytes,
  });
  return y;
}

/** CPU reference. */
export function layerScaleResidualRef(
  x: NdArray<Float32Array>,
  gamma: NdArray<Float32Array>,
  residual: NdArray<Float32Array>,
): NdArray<Float32Array> {
  assertSameShape('layerScaleResidualRef', x, residual, ['x', 'residual']);
  const C = gamma.size;
  const out = new Float32Array(x.size);
  for (let i = 0; i < x.size; i++) out[i] = residual.data[i] + gamma.data[i % C] * x.data[i];
  return ndarray(out, x.shape.slice());
}
