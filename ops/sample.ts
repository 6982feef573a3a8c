/**
 * sample — pick the next token on the GPU.   kernels/sample.wgsl (and kernels/argmax.wgsl)
 *
 * Semantics (HF `generate` with do_sample): repetition penalty over the ids in `recentIds`
 * (logit > 0 → logit / penalty, else logit · penalty; each distinct id once), then / temperature,
 * softmax, top-k (ties at the k-th value are kept), top-p (the smallest set of most probable tokens
 * whose mass is ≥ p, again tie-inclusive), and finally the inverse CDF over the kept tokens in index
 * order at the CPU-drawn uniform `u`: the first kept i whose cumulative probability exceeds u.
 * temperature 0 is greedy: the argmax kernel (or, with a penalty, the sampling kernel keeping only
 * the maximum and u = 0), i.e. the lowest index among the maximal penalised logits.
 *
 * The token stays on the GPU (a u32 [1] tensor) so the decode loop can feed it to `embedding`
 * without reading the logits back.
 */
import { params, type Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { argmax, nanOrPosInf, NON_FINITE_ID } from './argmax.js';
import { assertDType, check } from './util.js';

/**
 * One workgroup does everything, so on a GPU make it as wide as the device allows (up to 1024).
 * On a software rasteriser (lavapipe) wide workgroups only cost compile time, so 256 there.
 */
function workgroupSize(gpu: Gpu): number {
  if (gpu.summary.architecture === 'software') return 256;
  const limit = Math.min(gpu.limits.maxComputeInvocationsPerWorkgroup, gpu.limits.maxComputeWorkgroupSizeX);
  let wg = 256; // WebGPU's guaranteed minimum; the kernel needs a power of two
  while (wg * 2 <= Math.min(limit, 1024)) wg *= 2;
  return wg;
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
  if (greedy && !penalised) return argmax(gpu, logits.reshape([1, n])).reshape([1]);

  const recent = penalised ? o.recentIds! : gpu.empty([1], 'u32');
  const z = gpu.empty([n]);
  const token = gpu.empty([1], 'u32');
  gpu.dispatch({
    kernel: 'sample',
    constants: { WG: workgroupSize(gpu), NON_FINITE: NON_FINITE_ID },
    params: params(
      ['u32', n],
      ['u32', penalised ? recentCount : 0],
      ['u32', greedy ? 1 : o.topK],
      ['f32', greedy ? 1 : o.temperature],
      ['f32', greedy ? 1 : o.topP],
      ['f32', o.repetitionPenalty],
      ['f32', greedy ? 0 : o.u],
    ),
    bindings: [logits, recent, z, token],
    workgroups: [1],
  });
  z.dispose(); // safe: later users of these buffers are ordered after this dispatch
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
