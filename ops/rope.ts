/**
 * rope — rotary position embedding (HF LLaMA `rotate_half` convention).   kernels/rope.wgsl
 *
 * x is [T, nHeads·headDim]: row t holds every head of the token at position positionOffset + t.
 * Each head's vector is split in halves (not interleaved pairs): element i pairs with i + D/2.
 * At f16 activations the rotation is still f32 and y is rounded once (reference `f16Ref(ropeRef)`).
 */
import ndarray, { type NdArray } from 'ndarray';
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { actKernel, precisionOf } from './precision.js';
import { check, grid1d, GRID_X } from './util.js';

const WG = 256;
/** The params block holds inv_freq for at most this many rotation pairs: rope.wgsl's `invFreq: array<vec4f, ROPE_MAX_HALF / 4>` (a uniform array needs a constant size). */
export const ROPE_MAX_HALF = 128;

export interface RopeOptions {
  nHeads: number;
  headDim: number;
  /** Absolute position of row 0 (tokens already in the KV cache). */
  positionOffset: number;
  /** Frequency base (LLaMA: 10000). */
  theta: number;
}

/**
 * inv_freq exactly as HF computes it in float32:
 *   1.0 / (theta ** (torch.arange(0, D, 2).float() / D))
 * Each step is rounded to f32 (Math.fround) as the f32 tensor ops round it.
 */
export function ropeInvFreq(headDim: number, theta: number): Float32Array {
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const exponent = Math.fround(Math.fround(2 * i) / headDim);
    inv[i] = Math.fround(1 / Math.fround(Math.pow(theta, exponent)));
  }
  return inv;
}

/**
 * inv_freq padded to the kernels' uniform array (`invFreq: array<vec4f, ROPE_MAX_HALF / 4>` in rope.wgsl
 * and qkv_rope.wgsl), per (headDim, theta): built once, not per dispatch.
 */
const invFreqBlocks = new Map<string, Float32Array>();
export function invFreqBlock(headDim: number, theta: number): Float32Array {
  const key = `${headDim}:${theta}`;
  let block = invFreqBlocks.get(key);
  if (!block) {
    block = new Float32Array(ROPE_MAX_HALF);
    block.set(ropeInvFreq(headDim, theta));
    invFreqBlocks.set(key, block);
  }
  return block;
}

function checkShape(op: string, shape: readonly number[], o: RopeOptions): number {
  check(op, shape.length === 2, `x must be [T, nHeads·headDim], got [${shape}]`);
  check(op, o.headDim > 0 && o.headDim % 2 === 0, `headDim must be even and positive, got ${o.headDim}`);
  check(
    op,
    shape[1] === o.nHeads * o.headDim,
    `x is [${shape}] but nHeads·headDim = ${o.nHeads}·${o.headDim} = ${o.nHeads * o.headDim}`,
  );
  check(op, Number.isInteger(o.positionOffset) && o.positionOffset >= 0, `positionOffset must be a non-negative integer, got ${o.positionOffset}`);
  return shape[0];
}

/** y = rope(x) for rows at positions positionOffset … positionOffset + T − 1 (f32, or f16 → f16). */
export function rope(gpu: Gpu, x: Tensor, o: RopeOptions): Tensor {
  const T = checkShape('rope', x.shape, o);
  const p = precisionOf('rope', x, 'x');
  const half = o.headDim / 2;
  check('rope', half <= ROPE_MAX_HALF, `headDim ${o.headDim} exceeds the kernel's maximum ${2 * ROPE_MAX_HALF}`);
  const pairs = T * o.nHeads * half;
  const block = new ArrayBuffer(16 + ROPE_MAX_HALF * 4); // Params: pairs, nHeads, headDim, positionOffset, invFreq
  new Uint32Array(block, 0, 4).set([pairs, o.nHeads, o.headDim, o.positionOffset]);
  new Float32Array(block, 16).set(invFreqBlock(o.headDim, o.theta));
  const y = gpu.empty(x.shape, p);
  gpu.dispatch({
    kernel: actKernel(gpu, 'rope', p),
    constants: { WG, GRID_X },
    params: block,
    bindings: [x, y],
    workgroups: grid1d(gpu, pairs, WG),
  });
  return y;
}

/**
 * CPU reference (f32; at f16 use `f16Ref(ropeRef)`), following PyTorch's float32 arithmetic: angle = fround(pos · inv_freq[i]), then
 * cos / sin of that f32 angle (computed in f64 and rounded, as a correctly rounded cosf would).
 */
export function ropeRef(x: NdArray<Float32Array>, o: RopeOptions): NdArray<Float32Array> {
  const T = checkShape('ropeRef', x.shape, o);
  const D = o.headDim;
  const half = D / 2;
  const inv = ropeInvFreq(D, o.theta);
  const out = new Float32Array(x.size);
  for (let t = 0; t < T; t++) {
    const pos = o.positionOffset + t;
    for (let h = 0; h < o.nHeads; h++) {
      const base = (t * o.nHeads + h) * D;
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(pos * inv[i]);
        const c = Math.fround(Math.cos(angle));
        const s = Math.fround(Math.sin(angle));
        const x0 = x.data[base + i];
        const x1 = x.data[base + i + half];
        out[base + i] = x0 * c - x1 * s;
        out[base + i + half] = x1 * c + x0 * s;
      }
    }
  }
  return ndarray(out, x.shape.slice());
}
