/**
 * sample — pick the next token on the GPU.   kernels/sample_*.wgsl (and kernels/argmax.wgsl)
 *
 * Semantics (HF `generate` with do_sample): repetition penalty over the ids in `recentIds`
 * (logit > 0 → logit / penalty, else logit · penalty; each distinct id once), then / temperature,
 * softmax, top-k (ties at the k-th value are kept), top-p (the smallest set of most probable tokens
 * whose mass is ≥ p, again tie-inclusive), and finally the inverse CDF over the kept tokens in index
 * order at the CPU-drawn uniform `u`: the first kept i whose cumulative probability exceeds u.
 * temperature 0 is greedy: the argmax kernel (or, with a penalty, the sampling kernels keeping only
 * the maximum and u = 0), i.e. the lowest index among the maximal penalised logits.
 *
 * Four dispatches, the first three over chunks of the vocabulary (one workgroup per chunk of 256
 * logits: 125 for Vicuna's 32000), so no workgroup sweeps the whole vocabulary more than once:
 *   1. scan       z = penalised logits / temperature; per chunk: max, min finite z, NaN/+Inf flag
 *   2. histogram  (top-k / top-p only) counts and masses e^(z − m) of z in 512 bins below the max
 *   3. gather     every workgroup picks, from the histogram, the bins that can hold the threshold;
 *                 per chunk: the mass of the tokens above those bins (certainly kept), and the
 *                 candidates inside them (a few tokens for top-k 40 / top-p 0.9)
 *   4. draw       one workgroup: the exact threshold among the candidates (sorted in workgroup
 *                 memory), then the inverse CDF: a prefix sum over the chunks' kept masses picks the
 *                 chunk, a prefix sum inside it the token
 * Each kernel's header has its part of the math. The f32 sums run in a fixed order, so a seed gives
 * the same token on every run; against the f64 reference they differ only by rounding.
 *
 * The token stays on the GPU (a u32 [1] tensor) so the decode loop can feed it to `embedding`
 * without reading the logits back.
 */
import { params, type Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { argmax, argmaxPipelines, nanOrPosInf, NON_FINITE_ID, type PipelineSpec } from './argmax.js';
import { assertDType, check } from './util.js';

const WG = 256;
/** Histogram bins (sample_histogram.wgsl): a multiple of WG. */
const BINS = 2 * WG;
/** At most this many chunks: sample_draw.wgsl gives each chunk one invocation. */
const MAX_CHUNKS = WG;
/** Words of kernels/sample_*.wgsl's `part` buffer: HEADER, then RECORD per chunk (checked by the spec). */
export const SAMPLE_PART_HEADER = 8;
export const SAMPLE_PART_RECORD = 8;

/**
 * How the vocabulary is split: chunkSize logits per workgroup (a multiple of WG), chunks = ⌈n / chunkSize⌉.
 * Default: 256 logits per chunk on a GPU (125 workgroups for 32000 logits), at most 128 chunks; one
 * chunk on a software rasteriser, where each extra workgroup costs more than it saves (measured on
 * lavapipe: see README).
 */
export function sampleChunks(gpu: Gpu, n: number, chunkSize?: number): { chunkSize: number; chunks: number } {
  chunkSize ??= gpu.summary.architecture === 'software' ? WG * Math.ceil(n / WG) : WG * Math.max(1, Math.ceil(n / (WG * 128)));
  check('sample', Number.isInteger(chunkSize) && chunkSize > 0 && chunkSize % WG === 0, `chunkSize must be a positive multiple of ${WG}, got ${chunkSize}`);
  const chunks = Math.ceil(n / chunkSize);
  check('sample', chunks <= MAX_CHUNKS, `chunkSize ${chunkSize} splits ${n} logits into ${chunks} chunks, over ${MAX_CHUNKS}`);
  return { chunkSize, chunks };
}

/**
 * Candidates sample_draw.wgsl sorts in workgroup memory: the largest power of two whose keys
 * (4 bytes each) fit beside its WG-sized arrays, at most 4096 (more fall back to a radix select).
 */
function candidateCapacity(gpu: Gpu): number {
  const available = gpu.limits.maxComputeWorkgroupStorageSize - 4 * 4 * WG - 64;
  let cap = WG;
  while (cap * 2 * 4 <= available && cap < 4096) cap *= 2;
  return cap;
}

/**
 * Every pipeline `sample` can record (argmax's included), for compiling them at model load so
 * nothing compiles during generation.
 */
export function samplePipelines(gpu: Gpu): PipelineSpec[] {
  return [
    ...argmaxPipelines(),
    { kernel: 'sample_scan', entry: 'main', constants: { WG, BINS } },
    { kernel: 'sample_histogram', entry: 'main', constants: { WG, BINS } },
    { kernel: 'sample_gather', entry: 'main', constants: { WG, BINS } },
    { kernel: 'sample_draw', entry: 'main', constants: { WG, CAP: candidateCapacity(gpu), NON_FINITE: NON_FINITE_ID } },
  ];
}

export interface SampleOptions {
  /** 0 → greedy. */
  temperature: number;
  /** Keep the k most probable tokens; 0 → all. */
  topK: number;
  /** Nucleus mass in (0, 1]; 1 → all. */
  topP: number;
  /** HF repetition_penalty; 1 → none. */
  repetitionPenalty: number;
  /** Ids the penalty applies to (the prompt and the tokens generated so far), u32 [M]. */
  recentIds?: Tensor;
  /**
   * Use only the first `recentCount` ids of recentIds (default: all M), so a decode loop can keep
   * one preallocated id buffer and append each sampled token to it on the GPU.
   */
  recentCount?: number;
  /** Uniform draw in [0, 1) from the caller's seeded PRNG. */
  u: number;
  /**
   * Logits per workgroup in dispatches 1–3, a multiple of 256 (default: by adapter, `sampleChunks`).
   * The token does not depend on it beyond f32 rounding; specs set it to test many chunks anywhere.
   */
  chunkSize?: number;
}

function checkOptions(op: string, n: number, o: Omit<SampleOptions, 'recentIds'>): void {
  check(op, n > 0, 'logits must not be empty');
  check(op, o.temperature >= 0, `temperature must be ≥ 0, got ${o.temperature}`);
  check(op, Number.isInteger(o.topK) && o.topK >= 0, `topK must be a non-negative integer, got ${o.topK}`);
  check(op, o.topP > 0 && o.topP <= 1, `topP must be in (0, 1], got ${o.topP}`);
  check(op, o.repetitionPenalty > 0, `repetitionPenalty must be > 0, got ${o.repetitionPenalty}`);
  check(op, o.u >= 0 && o.u < 1, `u must be in [0, 1), got ${o.u}`);
}

/** logits [N] (or [1, N]) f32 → u32 [1]: the sampled token id. */
export function sample(gpu: Gpu, logits: Tensor, o: SampleOptions): Tensor {
  check('sample', logits.shape.length === 1 || (logits.shape.length === 2 && logits.shape[0] === 1), `logits must be [N] or [1, N], got [${logits.shape}]`);
  assertDType('sample', logits, 'logits', 'f32');
  const n = logits.size;
  checkOptions('sample', n, o);
  const recentCount = o.recentCount ?? o.recentIds?.size ?? 0;
  if (o.recentIds) {
    assertDType('sample', o.recentIds, 'recentIds', 'u32');
    check('sample', o.recentIds.shape.length === 1, `recentIds must be [M], got [${o.recentIds.shape}]`);
  }
  check(
    'sample',
    Number.isInteger(recentCount) && recentCount >= 0 && recentCount <= (o.recentIds?.size ?? 0),
    `recentCount ${recentCount} must be an integer in 0 … ${o.recentIds?.size ?? 0} (recentIds [${o.recentIds?.shape ?? ''}])`,
  );
  const penalised = recentCount > 0 && o.repetitionPenalty !== 1;
  const greedy = o.temperature === 0;
  if (greedy && !penalised) return argmax(gpu, logits.reshape([1, n]), { chunkSize: o.chunkSize }).reshape([1]);

  const [, , scan, histogram, gather, draw] = samplePipelines(gpu);
  const { chunkSize, chunks } = sampleChunks(gpu, n, o.chunkSize);
  const topK = greedy ? 1 : o.topK;
  const topP = greedy ? 1 : o.topP;
  const truncating = (topK > 0 && topK < n) || topP < 1;
  // histogram masses are fixed point in units of 2^-S, S the largest with n · 2^S < 2^32
  const fixedOne = 2 ** Math.floor(Math.log2((2 ** 32 - 1) / n));
  const p = params(
    ['u32', n],
    ['u32', penalised ? recentCount : 0],
    ['u32', topK],
    ['u32', chunks],
    ['u32', chunkSize],
    ['f32', greedy ? 1 : o.temperature],
    ['f32', topP],
    ['f32', o.repetitionPenalty],
    ['f32', greedy ? 0 : o.u],
    ['f32', fixedOne],
  );
  const recent = penalised ? o.recentIds! : gpu.empty([1], 'u32');
  const z = gpu.empty([n], 'f32', 'sample-z');
  const part = gpu.empty([SAMPLE_PART_HEADER + SAMPLE_PART_RECORD * chunks], 'u32', 'sample-part');
  const hist = gpu.empty([2 * BINS], 'u32', 'sample-hist');
  const cand = gpu.empty([chunks * chunkSize], 'u32', 'sample-candidates');
  const token = gpu.empty([1], 'u32');
  gpu.dispatch({ ...scan, params: p, bindings: [logits, recent, z, part, hist], workgroups: [chunks] });
  if (truncating) gpu.dispatch({ ...histogram, params: p, bindings: [z, part, hist], workgroups: [chunks] });
  gpu.dispatch({ ...gather, params: p, bindings: [z, part, hist, cand], workgroups: [chunks] });
  gpu.dispatch({ ...draw, params: p, bindings: [z, part, cand, token], workgroups: [1] });
  // safe: later users of these buffers are ordered after these dispatches
  [z, part, hist, cand].forEach((t) => t.dispose());
  if (recent !== o.recentIds) recent.dispose();
  return token;
}

/**
 * The distribution the sampler draws from, in f64: probability of each token after penalty,
 * temperature, top-k and top-p (0 for removed tokens). `sampleRef` and the specs use it.
 */
export function samplingDistribution(logits: ArrayLike<number>, o: Omit<SampleOptions, 'recentIds' | 'u'> & { recentIds?: ArrayLike<number> }): Float64Array {
  const n = logits.length;
  const greedy = o.temperature === 0;
  const temperature = greedy ? 1 : o.temperature;
  const z = new Float64Array(n);
  for (let i = 0; i < n; i++) z[i] = Math.fround(logits[i] / temperature);
  if (o.recentIds && o.repetitionPenalty !== 1) {
    for (let j = 0; j < o.recentIds.length; j++) {
      const id = o.recentIds[j];
      if (id >= n) continue;
      const l = logits[id];
      const penalised = Math.fround(l > 0 ? l / o.repetitionPenalty : l * o.repetitionPenalty);
      z[id] = Math.fround(penalised / temperature);
    }
  }
  const topK = greedy ? 1 : o.topK;
  const topP = greedy ? 1 : o.topP;
  const sorted = Array.from(z).sort((a, b) => b - a);
  const kth = topK > 0 && topK < n ? sorted[topK - 1] : -Infinity;
  const max = sorted[0];
  const w = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) if (z[i] >= kth) total += w[i] = Math.exp(z[i] - max);
  let threshold = kth;
  if (topP < 1) {
    // walk distinct values downwards; the first whose upper set holds ≥ p of the mass is τ
    let mass = 0;
    for (let s = 0; s < n && sorted[s] >= kth; ) {
      const value = sorted[s];
      while (s < n && sorted[s] === value) mass += Math.exp(sorted[s++] - max);
      if (mass >= topP * total) {
        threshold = value;
        break;
      }
    }
  }
  let kept = 0;
  for (let i = 0; i < n; i++) {
    if (z[i] >= threshold) kept += w[i];
    else w[i] = 0;
  }
  for (let i = 0; i < n; i++) w[i] /= kept;
  return w;
}

/** CPU reference: the token the GPU sampler picks for the same inputs and u (NON_FINITE_ID for NaN / +Inf logits). */
export function sampleRef(logits: ArrayLike<number>, o: Omit<SampleOptions, 'recentIds'> & { recentIds?: ArrayLike<number> }): number {
  checkOptions('sampleRef', logits.length, o);
  for (let i = 0; i < logits.length; i++) if (nanOrPosInf(logits[i])) return NON_FINITE_ID;
  const probs = samplingDistribution(logits, o);
  const u = o.temperature === 0 ? 0 : o.u;
  let run = 0;
  let last = -1;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) continue;
    run += probs[i];
    last = i;
    if (run > u) return i;
  }
  return last;
}
