/**
 * argmax — first index of each row's maximum (greedy decoding).   kernels/argmax.wgsl
 *
 * Two dispatches: `chunks` splits each row into chunks of `chunkSize` columns, one workgroup each
 * (so a 32000-logit row keeps 125 workgroups busy, not one), and `rows` picks each row's winner
 * among its chunks' candidates. A row that fits one chunk needs only the first.
 */
import ndarray, { type NdArray } from 'ndarray';
import { params, type Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { assertDType, check } from './util.js';

const WG = 256;
/**
 * How a row of n columns is split: chunkSize columns per workgroup (a multiple of WG), chunks = ⌈n / chunkSize⌉.
 * Default: 256 columns per chunk on a GPU (125 workgroups per 32000-column row), at most 128 chunks;
 * one chunk (one dispatch) on a software rasteriser, where extra workgroups cost more than they save.
 */
export function argmaxChunks(gpu: Gpu, n: number, chunkSize?: number): { chunkSize: number; chunks: number } {
  chunkSize ??= gpu.summary.architecture === 'software' ? WG * Math.ceil(n / WG) : WG * Math.max(1, Math.ceil(n / (WG * 128)));
  check('argmax', Number.isInteger(chunkSize) && chunkSize > 0 && chunkSize % WG === 0, `chunkSize must be a positive multiple of ${WG}, got ${chunkSize}`);
  return { chunkSize, chunks: Math.ceil(n / chunkSize) };
}

/** One compute pipeline an op records: what `gpu.pipeline(kernel, entry, constants)` compiles. */
export interface PipelineSpec {
  kernel: string;
  entry: string;
  constants: Record<string, number>;
}

/** The pipelines argmax uses, for compiling them at model load (nothing compiles during generation). */
export function argmaxPipelines(): PipelineSpec[] {
  const constants = { WG, NON_FINITE: NON_FINITE_ID };
  return [
    { kernel: 'argmax', entry: 'chunks', constants },
    { kernel: 'argmax', entry: 'rows', constants },
  ];
}

/**
 * The id argmax and sample return for logits that hold a NaN or +Inf (flagged by the same
 * dispatch; the decode loop reads it back with the token and stops with an error naming the step).
 */
export const NON_FINITE_ID = 0xffffffff;

/** NaN or +Inf: the values the kernels flag (−Inf is an ordinary, masked logit). */
export function nanOrPosInf(v: number): boolean {
  return Number.isNaN(v) || v === Infinity;
}

/**
 * x [R, N] f32 → u32 [R]: for each row the lowest index holding its maximum (NON_FINITE_ID for a row
 * with NaN / +Inf). `chunkSize`: columns per workgroup of the first pass (default `argmaxChunks`).
 */
export function argmax(gpu: Gpu, x: Tensor, options: { chunkSize?: number } = {}): Tensor {
  check('argmax', x.shape.length === 2 && x.shape[1] > 0, `x must be [R, N] with N > 0, got [${x.shape}]`);
  assertDType('argmax', x, 'x', 'f32');
  const [rows, n] = x.shape;
  check('argmax', rows <= gpu.limits.maxComputeWorkgroupsPerDimension, `${rows} rows exceed ${gpu.limits.maxComputeWorkgroupsPerDimension} workgroups per dimension`);
  const { chunkSize, chunks } = argmaxChunks(gpu, n, options.chunkSize);
  const [pass1, pass2] = argmaxPipelines();
  const p = params(['u32', rows], ['u32', n], ['u32', chunks], ['u32', chunkSize]);
  const out = gpu.empty([rows], 'u32');
  const parts = gpu.empty([chunks > 1 ? rows * chunks * 2 : 1], 'u32', 'argmax-parts'); // (value bits, index) per chunk
  gpu.dispatch({ ...pass1, params: p, bindings: [parts, out, x], workgroups: [chunks, rows] });
  if (chunks > 1) gpu.dispatch({ ...pass2, params: p, bindings: [parts, out], workgroups: [rows] });
  parts.dispose(); // safe: later users of the buffer are ordered after these dispatches
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
