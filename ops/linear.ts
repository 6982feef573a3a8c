/**
 * linear — y = x · wᵀ + bias, optionally followed by exact GELU (PyTorch's nn.Linear [+ nn.GELU]),
 * then optionally y = residual + γ · y (a residual add, with ConvNeXt's layer scale) in the same kernel.
 *
 *   x     f32 | f16  [..., K]   an activation; leading dims are flattened to M rows
 *   w     f32 | f16 | q8 | q4 [N, K] PyTorch layout (f16: two halves per u32 word, see runtime/tensor.ts;
 *         q8/q4: per row the packed codes then the f16 group scales, runtime/quant.ts — dequantized in registers)
 *   bias  f32  [N]        optional
 *   y     f32 | f16  [..., N]   x's precision unless `outDtype` says otherwise; accumulated in f32
 *
 * Precision (ops/precision.ts): x is read at its precision (`act` in the kernels), y and the residual
 * are written / read at the output's (`out`): f16 hidden states can give f32 logits (the lm_head,
 * `outDtype: 'f32'`). The products, sums, GELU and epilogue are f32; an f16 y is rounded once, at
 * its store, so the reference of an f16 output is `f16Ref(linearRef)` on the f16 values of x.
 *
 * Two kernels, chosen by M:
 *   M ≤ MATVEC_MAX_M  kernels/linear_matvec.wgsl — decode: stream each weight once, reduce over K
 *                     in workgroup memory.
 *   otherwise         kernels/linear_tiled.wgsl — a register-tiled GEMM over workgroup-memory tiles.
 * Each has a `main_vec4` entry point (16-byte loads) used when K % 8 == 0, else `main` (any K).
 * Quantized weights take `main_vec4` of the matrix-vector kernel when K % 32 == 0, else `main`
 * (and the tiled kernel's `main`: it dequantizes while staging).
 *
 * Operands bigger than maxStorageBufferBindingSize (128 MiB on lavapipe; LLaMA's lm_head or a
 * 4096×11008 f32 weight) are bound in slices: w in ranges of rows (each producing a range of y's
 * columns), x and y in ranges of rows. Slice starts are multiples of 256 bytes, as WebGPU requires.
 */
import ndarray, { type NdArray } from 'ndarray';
import { params, type Binding, type Gpu } from '../runtime/gpu.js';
import { isQuantDType, packQuantized, quantize, quantLayout, type QuantDType } from '../runtime/quant.js';
import { numel, storageBytes, type DType, type Tensor } from '../runtime/tensor.js';
import { erfc64 } from './gelu.js';
import { assertF16Capable, precisionKernel, precisionOf, type Precision } from './precision.js';
import { subgroupKernel } from './subgroups.js';
import { assertDType, check, gcd, grid1d, GRID_X, lcm } from './util.js';

/** What runs after the product, in the same kernel (the epilogue): y = residual + scale · act(x·wᵀ + bias). */
export interface LinearOptions<T = Tensor> {
  activation?: 'gelu';
  /** Added to the output: [..., N], y's shape (LLaMA's residual stream, ConvNeXt's block input). */
  residual?: T;
  /** Per-column layer scale γ [N] applied before the residual (ConvNeXt); needs `residual`. */
  scale?: T;
  /**
   * Precision of y (and of `residual`, which must match it): x's by default. 'f32' from f16 x gives
   * f32 logits from f16 hidden states (the lm_head). The CPU reference computes in f32 and ignores it.
   */
  outDtype?: Precision;
}

/** Up to this many rows of x the matrix-vector kernel is used: MAX_M in linear_matvec.wgsl (a WGSL const: it sizes register arrays; spec/kernels/kernel-constants.spec.ts checks they agree). */
export const MATVEC_MAX_M = 8;

/**
 * linear_tiled.wgsl: output tile per workgroup and K step: (TILE_N / 4)·(TILE_M / 4) = 256
 * invocations for `main`, (TILE_N / 4)·(TILE_M / 8) = 128 for `main_vec4` (TILE_K % 8 == 0 there).
 * Workgroup memory: 16 KiB for main_vec4 with these, the WebGPU default limit.
 */
const TILED = { TILE_M: 64, TILE_N: 64, TILE_K: 16 };
const TILED_VEC4 = { TILE_M: 64, TILE_N: 64, TILE_K: 32 };
/** MAX_LOADS in linear_tiled.wgsl (a WGSL const: it sizes register arrays): main_vec4 fetches each tile in ≤ this many 16-byte loads per invocation. */
export const TILED_MAX_LOADS = 4;
{
  const { TILE_M, TILE_N, TILE_K } = TILED_VEC4;
  const threads = (TILE_M / 8) * (TILE_N / 4);
  if (TILE_K % 8 || (Math.max(TILE_M, TILE_N) * TILE_K) / 4 > TILED_MAX_LOADS * threads) {
    throw new Error(`ops/linear.ts: TILED_VEC4 ${JSON.stringify(TILED_VEC4)} needs TILE_K % 8 == 0 and at most ${TILED_MAX_LOADS} loads per invocation per tile`);
  }
}
/** linear_matvec.wgsl: invocations per workgroup. */
const MATVEC_WG = 256;

/**
 * Invocations that share one output column of a matrix-vector kernel (linear_matvec, qkv_rope,
 * gate_up_swiglu): as many as there are loads in a weight row — 16-byte loads with the vec4 entry
 * point (8 halves or 4 floats), else one element each — rounded down to a power of two, at most 32.
 * 32 lanes × 16 bytes read 512 contiguous bytes of a row per step; a short row (lm_head of a small
 * model: K = 64 is eight 16-byte loads) gets fewer lanes and more columns per workgroup, instead of
 * idle lanes and extra reduction steps. The lanes follow w's loads only: x is the same M·K values
 * for every column (read from cache), 16 or 32 bytes per 16-byte load of w at f32, 8 or 16 at f16.
 */
export function matvecLanes(K: number, vec4: boolean, f16: boolean | DType): number {
  const perLoad = f16 === true || f16 === 'f16' ? 8 : f16 === 'q8' ? 16 : f16 === 'q4' ? 32 : 4; // elements per 16 bytes
  const loads = vec4 ? K / perLoad : K;
  let lanes = 1;
  while (lanes * 2 <= Math.min(32, loads)) lanes *= 2;
  return lanes;
}
/** Binding offsets are kept multiples of this: 256 is the largest minStorageBufferOffsetAlignment WebGPU allows, so every device accepts them. */
const OFFSET_ALIGN = 256;

/** y = act(x · wᵀ + bias). See the file header for shapes. */
export function linear(gpu: Gpu, x: Tensor, w: Tensor, bias?: Tensor, opts: LinearOptions = {}): Tensor {
  return linearWithBindingLimit(gpu, x, w, bias, opts, gpu.limits.maxStorageBufferBindingSize);
}

/**
 * `linear` with an explicit binding-size limit. The op uses the device's limit; specs pass a small
 * one to exercise every way of slicing the operands on small tensors.
 */
export function linearWithBindingLimit(
  gpu: Gpu,
  x: Tensor,
  w: Tensor,
  bias: Tensor | undefined,
  opts: LinearOptions,
  maxBindingBytes: number,
): Tensor {
  const { M, N, K } = checkLinearShapes('linear', x.shape, w.shape, bias?.shape);
  const act = precisionOf('linear', x, 'x');
  const out = opts.outDtype ?? act;
  check('linear', out === 'f32' || out === 'f16', `outDtype must be 'f32' or 'f16', got '${String(out)}'`);
  assertDType('linear', w, 'w', 'f32', 'f16', 'q8', 'q4');
  if (bias) assertDType('linear', bias, 'bias', 'f32');
  checkEpilogue('linear', [...x.shape.slice(0, -1), N], opts.residual?.shape, opts.scale?.shape);
  if (opts.residual && opts.residual.dtype !== out) {
    throw new Error(`linear: residual is ${opts.residual.dtype} but the output is ${out} (the residual is read at the output's precision: ${opts.outDtype ? 'outDtype' : "x's, as no outDtype is given"}); cast it first`);
  }
  if (opts.scale) assertDType('linear', opts.scale, 'scale', 'f32');
  // The kernels' f16 variants: x's alias `act`, y's and the residual's `out`, each where it is f16.
  const f16Aliases = [...(act === 'f16' ? ['act'] : []), ...(out === 'f16' ? ['out'] : [])];
  if (f16Aliases.length) assertF16Capable(gpu, 'linear');
  const xBytes = act === 'f16' ? 2 : 4;
  const yBytes = out === 'f16' ? 2 : 4;
  if (M === 0 || N === 0) return gpu.empty([...x.shape.slice(0, -1), N], out);

  const f16 = w.dtype === 'f16';
  const quant = isQuantDType(w.dtype) ? quantLayout(w.dtype, K) : undefined;
  const matvec = M <= MATVEC_MAX_M;
  // (K > 0: a vec4 view of an empty x would be a too-small binding; quantized: whole groups, matvec only)
  const vec4 = K > 0 && (quant ? matvec && K % 32 === 0 : K % 8 === 0);
  const tiles = vec4 ? TILED_VEC4 : TILED;
  const lanes = matvecLanes(K, vec4, w.dtype);
  const wRowBytes = quant ? quant.rowWords * 4 : K * (f16 ? 2 : 4);
  // The f16 variant (if any), and of the matvec kernel its subgroup variant (lanes capped at the subgroup size).
  const kernel = matvec
    ? subgroupKernel(gpu, precisionKernel(gpu, 'linear_matvec', f16Aliases), lanes)
    : { kernel: precisionKernel(gpu, 'linear_tiled', f16Aliases), SUBGROUPS: 0, lanes };
  const flags = {
    W_F16: f16 ? 1 : 0,
    W_BITS: w.dtype === 'q8' ? 8 : w.dtype === 'q4' ? 4 : 0,
    HAS_BIAS: bias ? 1 : 0,
    GELU: opts.activation === 'gelu' ? 1 : 0,
    RESIDUAL: opts.residual ? 1 : 0,
    LAYER_SCALE: opts.scale ? 1 : 0,
  };
  // Rows of w per binding (→ columns of y per dispatch), and rows of x and y per binding.
  // The tiled kernel's grid also caps them: one workgroup per tile, ≤ maxComputeWorkgroupsPerDimension.
  const maxGroups = gpu.limits.maxComputeWorkgroupsPerDimension;
  const wRows = rowsPerBinding(N, [wRowBytes], maxBindingBytes, `w [${w.shape}] ${w.dtype}`, matvec ? N : maxGroups * tiles.TILE_N);
  const xyRows = rowsPerBinding(M, [K * xBytes, N * yBytes], maxBindingBytes, `x [${M}, ${K}] ${act} / y [${M}, ${N}] ${out}`, maxGroups * tiles.TILE_M);
  const y = gpu.empty([...x.shape.slice(0, -1), N], out); // (after the checks: a refused call leaks nothing)

  for (let m0 = 0; m0 < M; m0 += xyRows) {
    const rows = Math.min(xyRows, M - m0);
    const xSlice = range(x, m0 * K * xBytes, rows * K * xBytes);
    const ySlice = range(y, m0 * N * yBytes, rows * N * yBytes);
    const residual = opts.residual ? range(opts.residual, m0 * N * yBytes, rows * N * yBytes) : xSlice;
    for (let n0 = 0; n0 < N; n0 += wRows) {
      const cols = Math.min(wRows, N - n0);
      const wStart = quant ? n0 * wRowBytes : storageBytes(w.dtype, n0 * K);
      const wSlice = range(w, wStart, quant ? cols * wRowBytes : storageBytes(w.dtype, n0 * K + cols * K) - wStart);
      gpu.dispatch({
        kernel: kernel.kernel,
        entry: vec4 ? 'main_vec4' : 'main',
        constants: matvec ? { WG: MATVEC_WG, LANES: kernel.lanes, GRID_X, SUBGROUPS: kernel.SUBGROUPS, ...flags } : { ...tiles, ...flags },
        params: params(['u32', rows], ['u32', cols], ['u32', K], ['u32', N], ['u32', n0], ['u32', quant?.rowWords ?? 0], ['u32', quant?.scaleWord ?? 0]),
        // The kernel never reads a binding its flags leave off (bias, residual, scale); x's slice stands in.
        bindings: [xSlice, wSlice, bias ?? xSlice, ySlice, residual, opts.scale ?? xSlice],
        workgroups: matvec ? grid1d(gpu, cols, MATVEC_WG / kernel.lanes) : [Math.ceil(cols / tiles.TILE_N), Math.ceil(rows / tiles.TILE_M)],
      });
    }
  }
  return y;
}

/** Floating-point operations of one linear (a multiply-add counts as 2), for benchmarks. */
export function linearFlops(M: number, N: number, K: number): number {
  return 2 * M * N * K;
}

/**
 * Uploads f32 values as a weight of the given dtype (f16 is rounded to nearest even, as `.half()`;
 * q8/q4 quantize the rows of a [N, K] matrix, runtime/quant.ts).
 */
export function uploadWeight(gpu: Gpu, data: ArrayLike<number>, shape: readonly number[], dtype: 'f32' | 'f16' | QuantDType, label?: string): Tensor {
  if (!isQuantDType(dtype)) return gpu.upload(shape, data, dtype, label);
  check('uploadWeight', shape.length === 2, `a ${dtype} weight must be a matrix [N, K], got [${shape}]`);
  const words = packQuantized(quantize(data, shape[0], shape[1], dtype));
  const t = gpu.weight(shape, dtype, label);
  gpu.writeWords(t, words);
  return t;
}

/**
 * CPU reference: plain loops in f64, rounded to f32 after the activation; the epilogue then rounds
 * as PyTorch's separate ops do (γ·y to f32, then the residual add). f16 weights come in as f32 values.
 */
export function linearRef(
  x: NdArray<Float32Array>,
  w: NdArray<Float32Array>,
  bias?: NdArray<Float32Array>,
  opts: LinearOptions<NdArray<Float32Array>> = {},
): NdArray<Float32Array> {
  const { M, N, K } = checkLinearShapes('linearRef', x.shape, w.shape, bias?.shape);
  checkEpilogue('linearRef', [...x.shape.slice(0, -1), N], opts.residual?.shape, opts.scale?.shape);
  const out = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = bias ? bias.data[n] : 0;
      for (let k = 0; k < K; k++) s += x.data[m * K + k] * w.data[n * K + k];
      let v = Math.fround(opts.activation === 'gelu' ? geluRef(s) : s);
      if (opts.scale) v = Math.fround(opts.scale.data[n] * v);
      if (opts.residual) v = opts.residual.data[m * N + n] + v;
      out[m * N + n] = v;
    }
  }
  return ndarray(out, [...x.shape.slice(0, -1), N]);
}

/** Exact GELU in f64: 0.5·v·(1 + erf(v/√2)) = 0.5·v·erfc(−v/√2), with ops/gelu.ts's erfc64. */
export function geluRef(v: number): number {
  return 0.5 * v * erfc64(-v / Math.SQRT2);
}

/** Checks x [..., K], w [N, K], bias [N]; returns the GEMM sizes. Errors name the shapes involved. */
function checkLinearShapes(
  op: string,
  xShape: readonly number[],
  wShape: readonly number[],
  biasShape?: readonly number[],
): { M: number; N: number; K: number } {
  check(op, xShape.length >= 1, `x must have at least one dimension, got [${xShape}]`);
  check(op, wShape.length === 2, `w must be [N, K] (PyTorch Linear.weight), got [${wShape}]`);
  const [N, K] = wShape;
  check(op, xShape[xShape.length - 1] === K, `shape mismatch: x is [${xShape}] but w is [${wShape}]; x's last dim must equal w's K = ${K}`);
  if (biasShape) {
    check(op, biasShape.length === 1 && biasShape[0] === N, `shape mismatch: bias is [${biasShape}] but w is [${wShape}]; bias must be [${N}]`);
  }
  return { M: numel(xShape.slice(0, -1)), N, K };
}

/** The epilogue's operands: residual shaped as y, scale [N] (and only with a residual). */
function checkEpilogue(op: string, yShape: readonly number[], residual?: readonly number[], scale?: readonly number[]): void {
  if (residual) {
    check(op, residual.length === yShape.length && residual.every((d, i) => d === yShape[i]),
      `residual is [${residual}] but the output is [${yShape}]; they must have the same shape`);
  }
  if (scale) {
    check(op, residual !== undefined, 'a layer scale is applied with a residual add (scale without residual)');
    check(op, scale.length === 1 && scale[0] === yShape[yShape.length - 1],
      `scale is [${scale}] but the output has ${yShape[yShape.length - 1]} columns; scale must be [${yShape[yShape.length - 1]}]`);
  }
}

/**
 * How many rows of `bytesPerRow` bytes one binding may hold: as many as fit under the limit (and
 * ≤ maxRows), in multiples of the smallest row count whose byte size is a multiple of 256 for every
 * operand sliced by these rows (so every slice starts on an allowed offset). All `rows` when they fit.
 */
function rowsPerBinding(rows: number, bytesPerRow: number[], maxBindingBytes: number, what: string, maxRows: number): number {
  const widest = Math.max(...bytesPerRow);
  if (rows * widest <= maxBindingBytes && rows <= maxRows) return rows;
  const step = bytesPerRow.reduce((s, b) => lcm(s, OFFSET_ALIGN / gcd(b, OFFSET_ALIGN)), 1);
  const fit = Math.floor(Math.min(maxBindingBytes / widest, maxRows) / step) * step;
  check(
    'linear',
    fit > 0,
    `${what} cannot be bound in slices of ≤ ${maxBindingBytes} bytes starting at multiples of ${OFFSET_ALIGN} bytes ` +
      `(the smallest aligned slice is ${step} rows of ${widest} bytes)`,
  );
  return fit;
}

function range(t: Tensor, offset: number, size: number): Binding {
  return { tensor: t, offset, size: Math.max(4, Math.ceil(size / 4) * 4) };
}

