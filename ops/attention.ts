/**
 * attention — causal grouped-query scaled-dot-product attention over a KV cache.
 *   kernels/attention_prefill.wgsl                 many queries: flash-attention-style tiles
 *   kernels/attention_decode.wgsl + _combine.wgsl  few queries: split-K over the cache, then merge
 *
 * q [T, nHeads·D] holds queries at absolute positions queryOffset … queryOffset + T − 1; the caches
 * [S, nKvHeads·D] hold keys / values of positions 0 … kvLength − 1 (rows ≥ kvLength are ignored).
 * Query t sees keys 0 … queryOffset + t; head h reads kv head ⌊h / (nHeads / nKvHeads)⌋.
 *
 * Precision: q, the caches and the output share one activation precision (ops/precision.ts): at f16
 * the KV cache is f16, which halves the bytes decode streams. Scores, softmax and P·V are f32 either
 * way (so is decode's split-K partials buffer); the output is rounded once — `f16Ref(attentionRef)`.
 */
import ndarray, { type NdArray } from 'ndarray';
import { params, type Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { actKernel, assertPrecision, precisionOf } from './precision.js';
import { assertSameShape, check } from './util.js';

export interface AttentionOptions {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** Absolute position of query row 0 (= number of tokens cached before this call). */
  queryOffset: number;
  /** Valid rows of the caches (usually queryOffset + T). */
  kvLength: number;
  /** Force a kernel path (tests, benchmarks). Default: 'decode' for T ≤ DECODE_MAX_T, else 'prefill'. */
  path?: 'prefill' | 'decode';
}

/** Up to this many queries the split-K decode path is used. */
export const DECODE_MAX_T = 4;

const PREFILL_TPQ = 8;
/**
 * attention_prefill.wgsl's register-array sizes (WGSL consts, so they cannot be overrides):
 * output dims per invocation (headDim / TPQ) and keys scored per invocation per tile (BK / TPQ).
 * spec/kernels/kernel-constants.spec.ts checks that these copies match the kernel.
 */
export const PREFILL_MAX_DPT = 32;
export const PREFILL_MAX_KPT = 8;
const DECODE_WG = 128;
const COMBINE_WG = 128;

function checkArgs(op: string, qShape: readonly number[], kShape: readonly number[], vShape: readonly number[], o: AttentionOptions): number {
  const { nHeads, nKvHeads, headDim: D } = o;
  check(op, nKvHeads > 0 && nHeads % nKvHeads === 0, `nKvHeads (${nKvHeads}) must divide nHeads (${nHeads})`);
  check(op, qShape.length === 2 && qShape[1] === nHeads * D, `q is [${qShape}] but must be [T, nHeads·headDim = ${nHeads}·${D}]`);
  check(op, kShape.length === 2 && kShape[1] === nKvHeads * D, `kCache is [${kShape}] but q is [${qShape}]: caches must be [S, nKvHeads·headDim = ${nKvHeads}·${D}]`);
  assertSameShape(op, { shape: kShape }, { shape: vShape }, ['kCache', 'vCache']);
  const S = kShape[0];
  check(op, Number.isInteger(o.kvLength) && o.kvLength >= 1 && o.kvLength <= S, `kvLength ${o.kvLength} must be in 1 … S = ${S} (caches [${kShape}])`);
  check(op, Number.isInteger(o.queryOffset) && o.queryOffset >= 0, `queryOffset must be a non-negative integer, got ${o.queryOffset}`);
  return qShape[0];
}

/** Prefill tile sizes that fit the device's workgroup memory: 4·(BQ·(D+1) + BK·(D+1) + BQ·BK) bytes. */
export function prefillTiles(headDim: number, maxWorkgroupBytes: number): { BQ: number; BK: number } {
  for (const [BQ, BK] of [[16, 32], [16, 16], [8, 16], [8, 8]]) {
    if (4 * (BQ * (headDim + 1) + BK * (headDim + 1) + BQ * BK) <= maxWorkgroupBytes) return { BQ, BK };
  }
  throw new Error(`attention: headDim ${headDim} needs more workgroup memory than this device's ${maxWorkgroupBytes} bytes`);
}

/**
 * The decode kernel's chunk choice: keys per workgroup, the largest that still gives at least
 * `targetWorkgroups` workgroups (≈ 2 per SM of a big GPU). Mutable so that a spec can move the
 * chunk boundaries into a tiny model's context; change it only before a model is loaded (the
 * pipelines it implies are compiled at load, see `decodeVariantKeyCounts`).
 */
export const attentionDecodeTuning = { targetWorkgroups: 264 };

const DECODE_CHUNKS = [256, 128, 64] as const;

/** Keys per decode workgroup for `keys` cached keys and `rows` = queries × heads. */
export function decodeChunk(keys: number, rows: number): number {
  const target = attentionDecodeTuning.targetWorkgroups;
  for (const chunk of DECODE_CHUNKS) if (chunk === 64 || Math.ceil(keys / chunk) * rows >= target) return chunk;
  return 64;
}

/**
 * One key count per chunk size the decode kernel can use with `rows` rows and at most `maxKeys`
 * keys, the smallest that selects it: the chunk is a pipeline constant, so a generation that grows
 * past a boundary (1025 and 2049 keys for Vicuna-7B's 32 heads) would compile a pipeline in the
 * middle of decoding unless each of these was compiled at load (llm/warmup.ts).
 */
export function decodeVariantKeyCounts(rows: number, maxKeys: number): number[] {
  // ceil(keys / chunk) · rows ≥ target  ⇔  keys > chunk · (ceil(target / rows) − 1)
  const below = Math.ceil(attentionDecodeTuning.targetWorkgroups / rows) - 1;
  const candidates = [1, ...DECODE_CHUNKS.map((c) => c * Math.max(0, below) + 1)].filter((k) => k <= maxKeys).sort((a, b) => a - b);
  const seen = new Map<number, number>();
  for (const keys of candidates) if (!seen.has(decodeChunk(keys, rows))) seen.set(decodeChunk(keys, rows), keys);
  return [...seen.values()];
}

/** Lanes that share one key's dot product in the decode kernel: up to 8 (128 contiguous bytes), dividing the workgroup. */
function decodeLanesPerKey(vec4PerRow: number): number {
  return vec4PerRow >= 8 ? 8 : vec4PerRow >= 4 ? 4 : vec4PerRow >= 2 ? 2 : 1;
}

/** o = softmax(q·Kᵀ/√D + causal mask)·V per head. Returns [T, nHeads·headDim] at q's precision (f32, or f16 with f16 caches). */
export function attention(gpu: Gpu, q: Tensor, kCache: Tensor, vCache: Tensor, o: AttentionOptions): Tensor {
  const T = checkArgs('attention', q.shape, kCache.shape, vCache.shape, o);
  const p = precisionOf('attention', q, 'q');
  assertPrecision('attention', p, { kCache, vCache });
  const D = o.headDim;
  const scale = 1 / Math.sqrt(D);
  const path = o.path ?? (T <= DECODE_MAX_T ? 'decode' : 'prefill');
  if (path === 'prefill') {
    check('attention', D % PREFILL_TPQ === 0 && D <= PREFILL_TPQ * PREFILL_MAX_DPT, `the prefill kernel needs headDim a multiple of ${PREFILL_TPQ} and ≤ ${PREFILL_TPQ * PREFILL_MAX_DPT}, got ${D}`);
    const { BQ, BK } = prefillTiles(D, gpu.limits.maxComputeWorkgroupStorageSize);
    check('attention', BK % PREFILL_TPQ === 0 && BK / PREFILL_TPQ <= PREFILL_MAX_KPT, `prefill tile BK = ${BK} needs BK / ${PREFILL_TPQ} ≤ ${PREFILL_MAX_KPT}`);
    const out = gpu.empty(q.shape, p);
    gpu.dispatch({
      kernel: actKernel(gpu, 'attention_prefill', p),
      constants: { HEAD_DIM: D, BQ, BK, TPQ: PREFILL_TPQ },
      params: params(['u32', T], ['u32', o.nHeads], ['u32', o.nKvHeads], ['u32', o.queryOffset], ['u32', o.kvLength], ['f32', scale]),
      bindings: [q, kCache, vCache, out],
      workgroups: [Math.ceil(T / BQ), o.nHeads],
    });
    return out;
  }
  check('attention', D % 4 === 0 && D <= 4 * DECODE_WG, `the decode kernel needs headDim a multiple of 4 and ≤ ${4 * DECODE_WG}, got ${D}`);
  const out = gpu.empty(q.shape, p);
  const rows = T * o.nHeads;
  const keys = Math.min(o.kvLength, o.queryOffset + T);
  const chunk = decodeChunk(keys, rows);
  const nChunks = Math.ceil(keys / chunk);
  const partial = gpu.empty([rows, nChunks, D + 2]); // f32 at either precision: internal to the pair
  gpu.dispatch({
    kernel: actKernel(gpu, 'attention_decode', p),
    constants: { HEAD_DIM: D, CHUNK: chunk, WG: DECODE_WG, G: decodeLanesPerKey(D / 4), PARTS: Math.floor(DECODE_WG / (D / 4)) },
    params: params(['u32', T], ['u32', o.nHeads], ['u32', o.nKvHeads], ['u32', o.queryOffset], ['u32', o.kvLength], ['u32', nChunks], ['f32', scale]),
    bindings: [q, kCache, vCache, partial],
    workgroups: [nChunks, rows],
  });
  gpu.dispatch({
    kernel: actKernel(gpu, 'attention_combine', p),
    constants: { HEAD_DIM: D, WG: COMBINE_WG },
    params: params(['u32', rows], ['u32', nChunks]),
    bindings: [partial, out],
    workgroups: [rows],
  });
  partial.dispose(); // safe: later users of the buffer are ordered after these dispatches
  return out;
}

/** CPU reference: two-pass softmax in f64 per (query, head) (f32; the f16 kernels' reference is `f16Ref(attentionRef)`). */
export function attentionRef(
  q: NdArray<Float32Array>,
  kCache: NdArray<Float32Array>,
  vCache: NdArray<Float32Array>,
  o: AttentionOptions,
): NdArray<Float32Array> {
  const T = checkArgs('attentionRef', q.shape, kCache.shape, vCache.shape, o);
  const { nHeads, nKvHeads, headDim: D } = o;
  const group = nHeads / nKvHeads;
  const out = new Float32Array(q.size);
  const scale = 1 / Math.sqrt(D);
  for (let t = 0; t < T; t++) {
    const keys = Math.min(o.kvLength, o.queryOffset + t + 1);
    for (let h = 0; h < nHeads; h++) {
      const kvh = Math.floor(h / group);
      const qBase = (t * nHeads + h) * D;
      const s = new Float64Array(keys);
      let max = -Infinity;
      for (let k = 0; k < keys; k++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q.data[qBase + d] * kCache.data[(k * nKvHeads + kvh) * D + d];
        s[k] = dot * scale;
        max = Math.max(max, s[k]);
      }
      let sum = 0;
      for (let k = 0; k < keys; k++) sum += (s[k] = Math.exp(s[k] - max));
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let k = 0; k < keys; k++) acc += s[k] * vCache.data[(k * nKvHeads + kvh) * D + d];
        out[qBase + d] = acc / sum;
      }
    }
  }
  return ndarray(out, q.shape.slice());
}
