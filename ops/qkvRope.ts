/**
 * qkvRope — the input side of a LLaMA attention block, fused:   kernels/qkv_rope.wgsl
 *
 *   h = rmsNorm(x, γ)                       input_layernorm                      x [M, K]
 *   q = rope(h·Wqᵀ)   k = rope(h·Wkᵀ)   v = h·Wvᵀ                                    W [heads·D, K]
 *   k, v → rows position … position + M − 1 of the KV cache (in place); returns q [M, nH·D]
 *
 * One dispatch for a few rows (M ≤ MATVEC_MAX_M: decode), where the weights are streamed once and the
 * norm and RoPE ride along. Otherwise — a prompt (M large: a GEMM per projection pays), attention
 * biases, or operands over the binding limit — the same result from the unfused ops, which are also
 * the CPU reference (`qkvRopeRef`). Quantized (q8/q4) weights take the `main` entry point, which
 * dequantizes each element (runtime/quant.ts).
 *
 * Precision: x, q and the caches are activations of one precision (ops/precision.ts) — f32, or f16
 * (an f16 cache). The fused f16 kernel rounds only at its stores (q, the cache rows), so its
 * reference is `qkvRopeRef` on the f16 values with q and the caches rounded to f16; the unfused
 * f16 path rounds after every op (h, the projections, the rotations).
 */
import type { NdArray } from 'ndarray';
import type { Gpu } from '../runtime/gpu.js';
import { isQuantDType, quantLayout } from '../runtime/quant.js';
import type { Tensor } from '../runtime/tensor.js';
import { linear, linearRef, matvecLanes, MATVEC_MAX_M } from './linear.js';
import { actKernel, assertPrecision, precisionOf } from './precision.js';
import { rmsNorm, rmsNormRef } from './rmsNorm.js';
import { invFreqBlock, rope, ropeRef, ROPE_MAX_HALF } from './rope.js';
import { writeRows, writeRowsRef } from './rows.js';
import { subgroupKernel } from './subgroups.js';
import { assertDType, check, grid1d, GRID_X } from './util.js';

export interface QkvRopeOptions {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** RoPE frequency base. */
  theta: number;
  /** RMSNorm epsilon. */
  eps: number;
  /** Cache row (absolute position) of x's first row. */
  position: number;
}

/** The three projections (PyTorch Linear weights, optional biases) and the layer's caches [maxContext, nKv·D]. */
export interface QkvOperands<T> {
  gamma: T;
  wq: T;
  wk: T;
  wv: T;
  bq?: T;
  bk?: T;
  bv?: T;
  kCache: T;
  vCache: T;
}

const WG = 128;

/** Checks the shapes; returns M and K. */
function checkShapes(op: string, x: readonly number[], a: QkvOperands<{ shape: readonly number[] }>, o: QkvRopeOptions): { M: number; K: number } {
  check(op, x.length === 2, `x must be [M, hidden], got [${x}]`);
  const [M, K] = x;
  const { heads, kvHeads, headDim: D } = o;
  const expect = (name: string, shape: readonly number[], want: number[]) =>
    check(op, shape.length === want.length && shape.every((d, i) => d === want[i]), `${name} is [${shape}], expected [${want}]`);
  expect('gamma', a.gamma.shape, [K]);
  expect('wq', a.wq.shape, [heads * D, K]);
  expect('wk', a.wk.shape, [kvHeads * D, K]);
  expect('wv', a.wv.shape, [kvHeads * D, K]);
  check(op, a.kCache.shape.length === 2 && a.kCache.shape[1] === kvHeads * D, `kCache is [${a.kCache.shape}], expected [maxContext, ${kvHeads * D}]`);
  check(op, a.vCache.shape.length === 2 && a.vCache.shape[1] === kvHeads * D, `vCache is [${a.vCache.shape}], expected [maxContext, ${kvHeads * D}]`);
  check(op, Number.isInteger(o.position) && o.position >= 0 && o.position + M <= a.kCache.shape[0],
    `rows ${o.position} … ${o.position + M - 1} do not fit the cache of ${a.kCache.shape[0]} positions`);
  return { M, K };
}

/** q [M, nH·D] at x's precision; the caches (the same precision) get rows position … position + M − 1. See the file header. */
export function qkvRope(gpu: Gpu, x: Tensor, a: QkvOperands<Tensor>, o: QkvRopeOptions): Tensor {
  const { M, K } = checkShapes('qkvRope', x.shape, a, o);
  const p = precisionOf('qkvRope', x);
  assertPrecision('qkvRope', p, { kCache: a.kCache, vCache: a.vCache });
  assertDType('qkvRope', a.gamma, 'gamma', 'f32');
  const D = o.headDim;
  const wDType = a.wq.dtype;
  const maxBinding = gpu.limits.maxStorageBufferBindingSize;
  const fused =
    M <= MATVEC_MAX_M &&
    !a.bq && !a.bk && !a.bv &&
    a.wk.dtype === wDType && a.wv.dtype === wDType &&
    D % 2 === 0 && D / 2 <= ROPE_MAX_HALF &&
    [a.wq, a.wk, a.wv, a.kCache, a.vCache].every((t) => t.byteLength <= maxBinding);
  if (!fused) return qkvRopeUnfused(gpu, x, a, o);

  const q = gpu.empty([M, o.heads * D], p);
  if (M === 0) return q;
  const quant = isQuantDType(wDType) ? quantLayout(wDType, K) : undefined;
  const block = new ArrayBuffer(32 + ROPE_MAX_HALF * 4 + 16); // Params: 8 words, invFreq, qRowWords, qScaleWord (+ pad)
  const u32 = new Uint32Array(block, 0, 8);
  u32.set([M, K, o.heads, o.kvHeads, D, o.position]);
  new Float32Array(block, 24, 1)[0] = o.eps;
  new Float32Array(block, 32, ROPE_MAX_HALF).set(invFreqBlock(D, o.theta));
  new Uint32Array(block, 32 + ROPE_MAX_HALF * 4, 2).set([quant?.rowWords ?? 0, quant?.scaleWord ?? 0]);
  const units = (o.heads + 2 * o.kvHeads) * (D / 2);
  const vec4 = K % 8 === 0 && K > 0 && !quant;
  const lanes = matvecLanes(K, vec4, wDType);
  const variant = subgroupKernel(gpu, actKernel(gpu, 'qkv_rope', p), lanes); // lanes capped at the subgroup size
  gpu.dispatch({
    kernel: variant.kernel,
    entry: vec4 ? 'main_vec4' : 'main',
    constants: { WG, LANES: variant.lanes, GRID_X, W_F16: wDType === 'f16' ? 1 : 0, W_BITS: wDType === 'q8' ? 8 : wDType === 'q4' ? 4 : 0, SUBGROUPS: variant.SUBGROUPS },
    params: block,
    bindings: [x, a.gamma, a.wq, a.wk, a.wv, q, a.kCache, a.vCache],
    workgroups: grid1d(gpu, units, WG / variant.lanes),
  });
  return q;
}

/** The same from the separate ops (prompts, biases, big operands); at f16 each op rounds its output. */
function qkvRopeUnfused(gpu: Gpu, x: Tensor, a: QkvOperands<Tensor>, o: QkvRopeOptions): Tensor {
  const rot = { headDim: o.headDim, positionOffset: o.position, theta: o.theta };
  const h = rmsNorm(gpu, x, a.gamma, o.eps);
  const qRaw = linear(gpu, h, a.wq, a.bq);
  const kRaw = linear(gpu, h, a.wk, a.bk);
  const v = linear(gpu, h, a.wv, a.bv);
  h.dispose();
  const q = rope(gpu, qRaw, { ...rot, nHeads: o.heads });
  const k = rope(gpu, kRaw, { ...rot, nHeads: o.kvHeads });
  writeRows(gpu, k, a.kCache, o.position);
  writeRows(gpu, v, a.vCache, o.position);
  [qRaw, kRaw, k, v].forEach((t) => t.dispose()); // safe: later users of the buffers are ordered after these dispatches
  return q;
}

/** CPU reference: the unfused composition over the ops' references; writes the caches in place. */
export function qkvRopeRef(x: NdArray<Float32Array>, a: QkvOperands<NdArray<Float32Array>>, o: QkvRopeOptions): NdArray<Float32Array> {
  checkShapes('qkvRopeRef', x.shape, a, o);
  const rot = { headDim: o.headDim, positionOffset: o.position, theta: o.theta };
  const h = rmsNormRef(x, a.gamma, o.eps);
  const q = ropeRef(linearRef(h, a.wq, a.bq), { ...rot, nHeads: o.heads });
  const k = ropeRef(linearRef(h, a.wk, a.bk), { ...rot, nHeads: o.kvHeads });
  a.kCache.data.set(writeRowsRef(k, a.kCache, o.position).data);
  a.vCache.data.set(writeRowsRef(linearRef(h, a.wv, a.bv), a.vCache, o.position).data);
  return q;
}
