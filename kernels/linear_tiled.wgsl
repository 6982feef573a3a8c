// linear_tiled.wgsl — GEMM with a fused epilogue (bias, GELU, layer scale, residual), for M above a handful of rows
// (ConvNeXt pointwise MLPs, LLaMA prefill). ops/linear.ts picks this or linear_matvec.wgsl by M.
//
//   y[m, col0 + n] = φ( Σ_k x[m, k] · w[n, k]  + bias[col0 + n] )      m < M, n < N, k < K
//   then, optionally, y = residual + γ[col0 + n] · y   (LLaMA's o_proj / down_proj + residual; ConvNeXt's
//   pwconv2 + layer scale + residual — PyTorch rounds γ·y, then adds, as here)
//
// x is [M, K] row-major, f32 or f16 (`act`); w is [N, K] row-major (PyTorch's Linear.weight), f32 or
// f16, in `array<u32>` words: f32 as bit patterns, f16 packed two per word (element i = half i & 1 of
// word i >> 1). A row of an f16 weight with odd K starts mid-word, so `main` indexes elements.
// Accumulation is f32. φ is identity or exact GELU, 0.5·v·(1 + erf(v/√2)).
//
// The op may bind only a slice of each operand (weights and activations over the 128 MiB binding
// limit): M, N and the bindings are the slice; yStride is the full width of y and col0 the column
// (and bias index) of w's first bound row.
//
// Bindings:  @0 uniform Params   @1 x: act[M·K]   @2 w: u32 words of [N, K]
//            @3 bias: f32[col0 + N] (unread unless HAS_BIAS)   @4 y: out[M·yStride] (read_write)
//            @5 residual: out[M·yStride] (unread unless RESIDUAL)   @6 scale: f32[col0 + N] (unless LAYER_SCALE)
// Dispatch:  [⌈N / TILE_N⌉, ⌈M / TILE_M⌉] workgroups (sizes per entry point below).
// One workgroup computes a TILE_M × TILE_N block of y: per step of TILE_K it stages x[TILE_M, TILE_K]
// and w[TILE_N, TILE_K] in workgroup memory, transposed to k-major, then each invocation accumulates
// a micro-tile of y in registers from staged rows of x and columns of wᵀ.
//
// Quantized weights (W_BITS = 8 | 4, runtime/quant.ts; `main` only): row n of w is qRowWords words,
// the packed codes then, from word qScaleWord, the f16 group scales; weight_at dequantizes (n, k)
// while staging, so the multiply is the f32 one.
//
// Precision (ops/precision.ts): `act` (x) and `out` (y and the residual) are f32, or f16 in the
// +f16(…) variants — separately, so f16 hidden states can give f32 logits (the lm_head). Weights,
// bias and γ keep their own dtypes. x is widened to f32 as it is fetched, so the staged tiles, the
// products (exact in f32 for two f16 values, as on tensor cores), the sums over K, the GELU and the
// epilogue are f32; `store` rounds to f16 once, at the write of y.
//
// Entry points:
//   main       any M, N, K: scalar loads with bounds checks on every edge; workgroup
//              (TILE_N / 4) × (TILE_M / 4), 4 × 4 micro-tiles strided — rows ty + i·(TILE_M/4),
//              columns tx + j·(TILE_N/4) — so neighbours read neighbouring staged floats and write
//              neighbouring outputs; staged rows are padded by one float so the transposing stores
//              avoid bank conflicts.
//   main_vec4  K % 8 == 0 (every row starts on a 16-byte boundary), TILE_K % 8 == 0: x and w read
//              as 16-byte vectors (4 f32, or 8 packed halves) into registers one K step ahead (so
//              global latency overlaps the multiply), staged as vec4s; 8 × 4 micro-tiles of
//              contiguous rows/columns, so a k step costs 3 vec4 workgroup loads for 32 FMAs;
//              workgroup (TILE_N / 4) × (TILE_M / 8).
//              (An f16 x item is 4 halves, 8 bytes: half the f32 traffic for the same k.)

alias act = f32; // x (f16 in the +f16(act) variants)
alias out = f32; // y and the residual (f16 in the +f16(out) variants)

struct Params {
  M: u32,
  N: u32,
  K: u32,
  yStride: u32,
  col0: u32,
  qRowWords: u32,  // quantized w: words per row (unused otherwise)
  qScaleWord: u32, // quantized w: word of a row where its scales start
}

override TILE_M: u32 = 64;
override TILE_N: u32 = 64;
override TILE_K: u32 = 16;
override W_F16: bool = false;
override W_BITS: u32 = 0; // 0: f32/f16 (W_F16); 8: q8; 4: q4 (entry `main` only)
override HAS_BIAS: bool = false;
override GELU: bool = false;
override RESIDUAL: bool = false; // y = residual + (LAYER_SCALE ? γ · v : v)
override LAYER_SCALE: bool = false;

const TM: u32 = 4; // rows of the micro-tile (fixed: private arrays need a constant size)
const TN: u32 = 4; // columns of the micro-tile

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<out>;
@group(0) @binding(5) var<storage, read> residual: array<out>; // laid out as y; unread unless RESIDUAL
@group(0) @binding(6) var<storage, read> scale: array<f32>;    // γ [col0 + N]; unread unless LAYER_SCALE

// The same buffers seen as 16-byte vectors, for main_vec4 (an entry point uses one view or the other).
@group(0) @binding(1) var<storage, read> x4: array<vec4<act>>;
@group(0) @binding(2) var<storage, read> w4: array<vec4<u32>>;

// Staged tiles, k-major: xs[k · (TILE_M + 1) + row], ws[k · (TILE_N + 1) + col].
var<workgroup> xs: array<f32, TILE_K * (TILE_M + 1)>;
var<workgroup> ws: array<f32, TILE_K * (TILE_N + 1)>;
// main_vec4's staged tiles, k-major, four rows (columns) per vec4: xs4[k · TILE_M/4 + row/4][row % 4].
var<workgroup> xs4: array<vec4<f32>, TILE_K * TILE_M / 4>;
var<workgroup> ws4: array<vec4<f32>, TILE_K * TILE_N / 4>;

/** Element i of the bound weight (f32 bits, or half i & 1 of word i >> 1). The same in every kernel reading weights (spec/kernels/wgsl-helpers.spec.ts). */
fn weight(i: u32) -> f32 {
  if (W_F16) {
    return unpack2x16float(w[i >> 1u])[i & 1u];
  }
  return bitcast<f32>(w[i]);
}

/** Element (n, k) of the bound weight, dequantized when W_BITS ≠ 0. The same in every kernel reading quantized weights (spec/kernels/wgsl-helpers.spec.ts). */
fn weight_at(n: u32, k: u32) -> f32 {
  if (W_BITS == 0u) {
    return weight(n * p.K + k);
  }
  let row = n * p.qRowWords;
  let g = k >> 5u; // group of 32
  let s = unpack2x16float(w[row + p.qScaleWord + (g >> 1u)])[g & 1u];
  if (W_BITS == 8u) {
    return f32(extractBits(bitcast<i32>(w[row + (k >> 2u)]), 8u * (k & 3u), 8u)) * s;
  }
  return (f32(extractBits(w[row + (k >> 3u)], 4u * (k & 7u), 4u)) - 8.0) * s;
}

// erfc(z) for z ≥ 0 by the Chebyshev fit of Numerical Recipes (Press et al., 2nd ed., §6.2,
// `erfcc`): fractional error < 1.2e-7 everywhere, so both erf near 0 and the far negative tail of
// GELU (where 1 + erf(v/√2) = erfc(|v|/√2) is tiny) keep f32 relative accuracy. Abramowitz–Stegun
// 7.1.26 would give 1.5e-7 *absolute* error, i.e. no relative accuracy in that tail.
// erfc_pos and gelu are kept identical to linear_matvec.wgsl's by spec/kernels/wgsl-helpers.spec.ts.
fn erfc_pos(z: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.5 * z);
  let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
             t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  return t * exp(-z * z + poly);
}

/** Exact GELU: 0.5·v·(1 + erf(v/√2)) = 0.5·v·erfc(−v/√2). */
fn gelu(v: f32) -> f32 {
  let e = erfc_pos(abs(v) * 0.70710678118654752);
  return 0.5 * v * select(e, 2.0 - e, v > 0.0);
}

/** Writes one output: adds the bias, applies the activation, then the layer scale and residual. The same in linear_matvec.wgsl (spec/kernels/wgsl-helpers.spec.ts). */
fn store(m: u32, n: u32, acc: f32) {
  var v = acc;
  if (HAS_BIAS) {
    v += bias[p.col0 + n];
  }
  if (GELU) {
    v = gelu(v);
  }
  let i = m * p.yStride + p.col0 + n;
  if (LAYER_SCALE) {
    v = scale[p.col0 + n] * v;
  }
  if (RESIDUAL) {
    v = f32(residual[i]) + v;
  }
  y[i] = out(v); // the one rounding of the f16 variants
}

/** Accumulates the staged TILE_K slice into the micro-tile of invocation (tx, ty). */
fn multiply_staged(tx: u32, ty: u32, acc: ptr<function, array<vec4<f32>, TM>>) {
  let wgx = TILE_N / TN;
  let wgy = TILE_M / TM;
  for (var k = 0u; k < TILE_K; k++) {
    let xrow = k * (TILE_M + 1u) + ty;
    let wrow = k * (TILE_N + 1u) + tx;
    let b = vec4<f32>(ws[wrow], ws[wrow + wgx], ws[wrow + 2u * wgx], ws[wrow + 3u * wgx]);
    for (var i = 0u; i < TM; i++) {
      (*acc)[i] += xs[xrow + i * wgy] * b;
    }
  }
}

/** Writes the micro-tile of invocation (tx, ty) of the workgroup at (n0, m0). */
fn store_tile(n0: u32, m0: u32, tx: u32, ty: u32, acc: ptr<function, array<vec4<f32>, TM>>) {
  for (var i = 0u; i < TM; i++) {
    let m = m0 + ty + i * (TILE_M / TM);
    for (var j = 0u; j < TN; j++) {
      let n = n0 + tx + j * (TILE_N / TN);
      if (m < p.M && n < p.N) {
        store(m, n, (*acc)[i][j]);
      }
    }
  }
}

@compute @workgroup_size(TILE_N / TN, TILE_M / TM)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let threads = (TILE_N / TN) * (TILE_M / TM);
  let flat = lid.y * (TILE_N / TN) + lid.x;
  let n0 = wid.x * TILE_N;
  let m0 = wid.y * TILE_M;
  var acc: array<vec4<f32>, TM>;

  for (var k0 = 0u; k0 < p.K; k0 += TILE_K) {
    // Stage: consecutive invocations read consecutive k of one row (coalesced), zero past the edges.
    for (var e = flat; e < TILE_M * TILE_K; e += threads) {
      let r = e / TILE_K;
      let k = e % TILE_K;
      var v = 0.0;
      if (m0 + r < p.M && k0 + k < p.K) {
        v = f32(x[(m0 + r) * p.K + k0 + k]);
      }
      xs[k * (TILE_M + 1u) + r] = v;
    }
    for (var e = flat; e < TILE_N * TILE_K; e += threads) {
      let r = e / TILE_K;
      let k = e % TILE_K;
      var v = 0.0;
      if (n0 + r < p.N && k0 + k < p.K) {
        v = weight_at(n0 + r, k0 + k);
      }
      ws[k * (TILE_N + 1u) + r] = v;
    }
    workgroupBarrier();
    multiply_staged(lid.x, lid.y, &acc);
    workgroupBarrier();
  }
  store_tile(n0, m0, lid.x, lid.y, &acc);
}

const VTM: u32 = 8; // main_vec4 micro-tile: rows
const VTN: u32 = 4; // main_vec4 micro-tile: columns (one vec4)
const MAX_LOADS: u32 = 4; // main_vec4: vector items of each tile one invocation fetches (linear.ts: TILED_MAX_LOADS)

/**
 * Global → registers: invocation `flat`'s share of the x and w tiles at k0, zero past the edges.
 * One item is 4 consecutive k of one row of x (16 bytes of f32, or 8 of f16, widened to f32 here),
 * or 16 bytes of one row of w (8 halves or 4 f32). Rows vary fastest across invocations so the
 * transposing stores in stage_tiles hit distinct banks (the rest of each 32-byte sector is read by
 * the items TILE_M later, from L1).
 */
fn fetch_tiles(m0: u32, n0: u32, k0: u32, flat: u32,
               xr: ptr<function, array<vec4<f32>, MAX_LOADS>>, wr: ptr<function, array<vec4<u32>, MAX_LOADS>>) {
  let threads = (TILE_N / VTN) * (TILE_M / VTM);
  let per_w = select(4u, 8u, W_F16); // elements of w per vec4<u32>
  for (var i = 0u; i < MAX_LOADS; i++) {
    let e = flat + i * threads;
    let r = e % TILE_M;
    let q = e / TILE_M;
    var v = vec4<f32>(0.0);
    if (e < TILE_M * TILE_K / 4u && m0 + r < p.M && k0 + 4u * q < p.K) {
      v = vec4<f32>(x4[(m0 + r) * (p.K / 4u) + k0 / 4u + q]);
    }
    (*xr)[i] = v;
  }
  for (var i = 0u; i < MAX_LOADS; i++) {
    let e = flat + i * threads;
    let r = e % TILE_N;
    let q = e / TILE_N;
    var h = vec4<u32>(0u);
    if (e < TILE_N * TILE_K / per_w && n0 + r < p.N && k0 + per_w * q < p.K) {
      h = w4[(n0 + r) * (p.K / per_w) + k0 / per_w + q];
    }
    (*wr)[i] = h;
  }
}

/** Registers → workgroup memory, transposed to k-major; f16 weights are unpacked here. */
fn stage_tiles(flat: u32, xr: ptr<function, array<vec4<f32>, MAX_LOADS>>, wr: ptr<function, array<vec4<u32>, MAX_LOADS>>) {
  let threads = (TILE_N / VTN) * (TILE_M / VTM);
  for (var i = 0u; i < MAX_LOADS; i++) {
    let e = flat + i * threads;
    if (e < TILE_M * TILE_K / 4u) {
      let r = e % TILE_M;
      let q = e / TILE_M;
      let v = (*xr)[i];
      for (var c = 0u; c < 4u; c++) {
        xs4[(4u * q + c) * (TILE_M / 4u) + r / 4u][r % 4u] = v[c];
      }
    }
  }
  let per_w = select(4u, 8u, W_F16);
  for (var i = 0u; i < MAX_LOADS; i++) {
    let e = flat + i * threads;
    if (e < TILE_N * TILE_K / per_w) {
      let r = e % TILE_N;
      let q = e / TILE_N;
      let h = (*wr)[i];
      if (W_F16) {
        let lo = vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
        let hi = vec4<f32>(unpack2x16float(h.z), unpack2x16float(h.w));
        for (var c = 0u; c < 4u; c++) {
          ws4[(8u * q + c) * (TILE_N / 4u) + r / 4u][r % 4u] = lo[c];
          ws4[(8u * q + 4u + c) * (TILE_N / 4u) + r / 4u][r % 4u] = hi[c];
        }
      } else {
        let v = bitcast<vec4<f32>>(h);
        for (var c = 0u; c < 4u; c++) {
          ws4[(4u * q + c) * (TILE_N / 4u) + r / 4u][r % 4u] = v[c];
        }
      }
    }
  }
}

@compute @workgroup_size(TILE_N / VTN, TILE_M / VTM)
fn main_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let flat = lid.y * (TILE_N / VTN) + lid.x;
  let n0 = wid.x * TILE_N;
  let m0 = wid.y * TILE_M;
  var acc: array<vec4<f32>, VTM>;
  var xr: array<vec4<f32>, MAX_LOADS>;
  var wr: array<vec4<u32>, MAX_LOADS>;

  // Software pipeline: the global loads of tile k0 + TILE_K are in flight while tile k0 is multiplied.
  fetch_tiles(m0, n0, 0u, flat, &xr, &wr);
  for (var k0 = 0u; k0 < p.K; k0 += TILE_K) {
    stage_tiles(flat, &xr, &wr);
    workgroupBarrier();
    if (k0 + TILE_K < p.K) {
      fetch_tiles(m0, n0, k0 + TILE_K, flat, &xr, &wr);
    }
    for (var k = 0u; k < TILE_K; k++) {
      let b = ws4[k * (TILE_N / 4u) + lid.x];
      let a0 = xs4[k * (TILE_M / 4u) + 2u * lid.y];
      let a1 = xs4[k * (TILE_M / 4u) + 2u * lid.y + 1u];
      acc[0] += a0.x * b;
      acc[1] += a0.y * b;
      acc[2] += a0.z * b;
      acc[3] += a0.w * b;
      acc[4] += a1.x * b;
      acc[5] += a1.y * b;
      acc[6] += a1.z * b;
      acc[7] += a1.w * b;
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < VTM; i++) {
    let m = m0 + lid.y * VTM + i;
    for (var j = 0u; j < VTN; j++) {
      let n = n0 + lid.x * VTN + j;
      if (m < p.M && n < p.N) {
        store(m, n, acc[i][j]);
      }
    }
  }
}
