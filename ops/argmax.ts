/**
 * argmax — first index of each row's maximum (greedy decoding).   kernels/argmax.wgsl
 */
import ndarray, { type NdArray } from 'ndarray';
import { params, type Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { assertDType, check } from './util.js';

const WG = 256;

/**
 * The id argmax and sample return for logits that hold a NaN or +Inf (flagged by the same
 * dispatch; the decode loop reads it back with the token and stops with an error naming the step).
 */
export const NON_FINITE_ID = 0xffffffff;

/** NaN or +Inf: the values the kernels flag (−Inf is an ordinary, masked logit). */
export function nanOrPosInf(v: number): boolean {
  return Number.isNaN(v) || v === Infinity;
}

/** x [R, N] f32 → u32 [R]: for each row the lowest index holding its maximum (NON_FINITE_ID for a row with NaN / +Inf). */
export function argmax(gpu: Gpu, x: Tensor): Tensor {
  check('argmax', x.shape.length === 2 && x.shape[1] > 0, `x must be [R, N] with N > 0, got [${x.shape}]`);
  assertDType('argmax', x, 'x', 'f32');
  const [rows, n] = x.shape;
  const out = gpu.empty([rows], 'u32');
  gpu.dispatch({
    kernel: 'argmax',
    constants: { WG, NON_FINITE: NON_FINITE_ID },
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
    let flagged = false;
    for (let j = 0; j < n; j++) {
      if (nanOrPosInf(x.data[r * n + j])) flagged = true;
      if (x.data[r * n + j] > x.data[r * n + best]) best = j;
    }
    out[r] = flagged ? NON_FINITE_ID : best;
  }
  return ndarray(out, [rows]);
}
