/**
 * gateUpSwiglu — the first half of a LLaMA MLP, fused:   kernels/gate_up_swiglu.wgsl
 *
 *   h = rmsNorm(x, γ)                        post_attention_layernorm             x [M, K]
 *   y = silu(h·Wgᵀ) · (h·Wuᵀ)                gate_proj, up_proj, SwiGLU           W [N, K] → y [M, N]
 *
 * One dispatch for a few rows (M ≤ MATVEC_MAX_M: decode); otherwise (prompts, weights over the
 * binding limit) the unfused ops, which are also the CPU reference (`gateUpSwigluRef`).
 *
 * Precision: y takes x's (ops/precision.ts). The fused f16 kernel rounds only y, so its reference is
 * `gateUpSwigluRef` on the f16 x with y rounded to f16; the unfused f16 path rounds h, gate and up too.
 */
import type { NdArray } from 'ndarray';
import { params, type Gpu } from '../runtime/gpu.js';
import { isQuantDType, quantLayout } from '../runtime/quant.js';
import type { Tensor } from '../runtime/tensor.js';
import { linear, linearRef, matvecLanes, MATVEC_MAX_M } from './linear.js';
import { actKernel, precisionOf } from './precision.js';
import { rmsNorm, rmsNormRef } from './rmsNorm.js';
import { swiglu, swigluRef } from './swiglu.js';
import { subgroupKernel } from './subgroups.js';
import { assertDType, check, grid1d, GRID_X } from './util.js';

const WG = 128;

function checkShapes(op: string, x: readonly number[], gamma: readonly number[], wg: readonly number[], wu: readonly number[]): { M: number; N: number; K: number } {
  check(op, x.length === 2, `x must be [M, hidden], got [${x}]`);
  const [M, K] = x;
  check(op, gamma.length === 1 && gamma[0] === K, `gamma is [${gamma}], expected [${K}]`);
  check(op, wg.length === 2 && wg[1] === K, `gate weight is [${wg}], expected [N, ${K}]`);
  check(op, wu.length === 2 && wu[0] === wg[0] && wu[1] === K, `up weight is [${wu}], expected [${wg[0]}, ${K}] (as gate)`);
  return { M, N: wg[0], K };
}

/** y = silu(rmsNorm(x)·Wgᵀ) · (rmsNorm(x)·Wuᵀ), [M, N] at x's precision. */
export function gateUpSwiglu(gpu: Gpu, x: Tensor, gamma: Tensor, eps: number, wg: Tensor, wu: Tensor): Tensor {
  const { M, N, K } = checkShapes('gateUpSwiglu', x.shape, gamma.shape, wg.shape, wu.shape);
  const p = precisionOf('gateUpSwiglu', x);
  assertDType('gateUpSwiglu', gamma, 'gamma', 'f32');
  const maxBinding = gpu.limits.maxStorageBufferBindingSize;
  if (M > MATVEC_MAX_M || wg.dtype !== wu.dtype || wg.byteLength > maxBinding || wu.byteLength > maxBinding) {
    const h = rmsNorm(gpu, x, gamma, eps);
    const g = linear(gpu, h, wg);
    const u = linear(gpu, h, wu);
    const y = swiglu(gpu, g, u);
    [h, g, u].forEach((t) => t.dispose()); // safe: later users of the buffers are ordered after these dispatches
    return y;
  }
  const y = gpu.empty([M, N], p);
  if (M === 0 || N === 0) return y;
  const quant = isQuantDType(wg.dtype) ? quantLayout(wg.dtype, K) : undefined; // q8/q4: `main`, dequantizing per element
  const vec4 = K % 8 === 0 && K > 0 && !quant;
  const lanes = matvecLanes(K, vec4, wg.dtype);
  const variant = subgroupKernel(gpu, actKernel(gpu, 'gate_up_swiglu', p), lanes); // lanes capped at the subgroup size
  gpu.dispatch({
    kernel: variant.kernel,
    entry: vec4 ? 'main_vec4' : 'main',
    constants: { WG, LANES: variant.lanes, GRID_X, W_F16: wg.dtype === 'f16' ? 1 : 0, W_BITS: wg.dtype === 'q8' ? 8 : wg.dtype === 'q4' ? 4 : 0, SUBGROUPS: variant.SUBGROUPS },
    params: params(['u32', M], ['u32', N], ['u32', K], ['f32', eps], ['u32', quant?.rowWords ?? 0], ['u32', quant?.scaleWord ?? 0]),
    bindings: [x, gamma, wg, wu, y],
    workgroups: grid1d(gpu, N, WG / variant.lanes),
  });
  return y;
}

/** CPU reference: the unfused composition over the ops' references. */
export function gateUpSwigluRef(x: NdArray<Float32Array>, gamma: NdArray<Float32Array>, eps: number, wg: NdArray<Float32Array>, wu: NdArray<Float32Array>): NdArray<Float32Array> {
  checkShapes('gateUpSwigluRef', x.shape, gamma.shape, wg.shape, wu.shape);
  const h = rmsNormRef(x, gamma, eps);
  return swigluRef(linearRef(h, wg), linearRef(h, wu));
}
