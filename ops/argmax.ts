/**
 * argmax — first index of each row's maximum (greedy decoding).   kernels/argmax.wgsl
 */
import ndarray, { type NdArray } from 'ndarray';
import { params, type Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { assertDType, check } from './util.js';

const WG = 256;

/** x [R, N] f32 → u32 [R]: for each row the lowest index holding its maximum. */
export function argmax(gpu: Gpu, x: Tensor): Tensor {
  check('argmax', x.shape.length === 2 && x.shape[1] > 0, `x must be [R, N] with N > 0, got [${x.shape}]`);
  assertDType('argmax', x, 'x', 'f32');
  const [rows, n] = x.shape;
  const out = gpu.empty([rows], 'u32');
  gpu.dispatch({
    kernel: 'argmax',
    constants: { WG },
    params: params(['u32', rows], ['u32', n]),
    bindings: [x, out],
    workgroups: [rows],
  });
  return out;
}

/** CPU reference. */
export function argmaxRef(x: NdArray<Float32Array>): NdArray<Uint32Array> {
  const [rows, n] = x.shape;
  const out = new Uint32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let j = 1; j < n; j++) if (x.data[r * n + j] > x.data[r * n + best]) best = j;
    out[r] = best;
  }
  return ndarray(out, [rows]);
}
