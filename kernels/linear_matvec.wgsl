// linear_matvec.wgsl — the linear op for a few rows of x (LLaMA decode: M = 1), where the work is
// streaming the weight matrix once at memory bandwidth. ops/linear.ts picks this for M ≤ MAX_M.
//
//   y[m, col0 + n] = φ( Σ_k x[m, k] · w[n, k]  + bias[col0 + n] )      m < M ≤ MAX_M, n < N, k < K
//   then, optionally, y = residual + γ[col0 + n] · y     (the epilogue of linear_tiled.wgsl)
//
// Layouts, f16 packing, slicing (M, N, yStride, col0) and the GELU are as in linear_tiled.wgsl.
//
// Bindings:  @0 uniform Params   @1 x: act[M·K]   @2 w: u32 words of [N, K]
//            @3 bias: f32[col0 + N] (unread unless HAS_BIAS)   @4 y: out[M·yStride] (read_write)
//            @5 residual: out[M·yStride] (unread unless RESIDUAL)   @6 scale: f32[col0 + N] (unless LAYER_SCALE)
// Dispatch:  ⌈N / (WG / LANES)⌉ workgroups of WG invocations, folded into [GRID_X, …] when that
//            exceeds the per-dimension limit (group = wid.x + wid.y · GRID_X).
// Each workgroup computes WG / LANES output columns n (all M rows); the LANES invocations of one
// column stride over K together — consecutive lanes read consecutive weights, so a column's row of w
// is read in coalesced runs and every weight is read exactly once — keeping M partial sums each,
// then add them up: a tree in workgroup memory, or (the +subgroups variant) subgroup shuffles.
//
// Entry points:
//   main       any K; one element per lane per step (f16 elements are indexed, rows may start mid-word).
//   main_vec4  K % 8 == 0 only: a lane reads 16 bytes of w per step (8 halves or 4 f32) and the
//              matching x as vec4s (16 bytes of f32, 8 of f16). Quantized weights (W_BITS 8 or 4):
//              K % 32 == 0, 16 bytes are 16 int8 or 32 int4 codes of one group, dequantized in
//              registers and scaled once.
//
// Quantized weights (W_BITS = 8 | 4, runtime/quant.ts): row n of w is qRowWords words, the packed
// codes of k = 0 … then, from word qScaleWord, the group scales (f16, two per word); weight_at
// dequantizes element (n, k). Still one binding: the scales sit inside each row.
//
// Precision (ops/precision.ts): `act` (x) and `out` (y and the residual) are f32, or f16 in the
// +f16(…) variants — separately, so f16 hidden states can give f32 logits (the lm_head). Weights,
// bias and γ keep their own dtypes. x is widened to f32 as it is read; the products, the sums over
// K, the GELU and the epilogue are f32 (a product of two f16 values is exact in f32, as on tensor
// cores), and `store` rounds to f16 once, at the write of y.

// Lines starting `//subgroups:` are live only in the `+subgroups` variant of this kernel (ops/subgroups.ts
// strips the marker when the device has `subgroups` and a column's LANES fit in one subgroup): WGSL has
// no conditional compilation, and `enable subgroups;` must not reach a device without the feature.
//subgroups: enable subgroups;

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

const MAX_M: u32 = 8; // private accumulators need a constant count; ops/linear.ts MATVEC_MAX_M keeps M ≤ MAX_M here

override WG: u32 = 256;
override LANES: u32 = 32;
override GRID_X: u32 = 32768;
override W_F16: bool = false;
override W_BITS: u32 = 0; // 0: f32/f16 (W_F16); 8: q8; 4: q4
override HAS_BIAS: bool = false;
override GELU: bool = false;
override SUBGROUPS: bool = false; // the +subgroups variant: lanes reduce by subgroup shuffles, no barriers
override RESIDUAL: bool = false; // y = residual + (LAYER_SCALE ? γ · v : v)
override LAYER_SCALE: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<out>;
@group(0) @binding(5) var<storage, read> residual: array<out>; // laid out as y; unread unless RESIDUAL
@group(0) @binding(6) var<storage, read> scale: array<f32>;    // γ [col0 + N]; unread unless LAYER_SCALE

// The same buffers seen as 16-byte vectors, for main_vec4.
@group(0) @binding(1) var<storage, read> x4: array<vec4<act>>;
@group(0) @binding(2) var<storage, read> w4: array<vec4<u32>>;

// partial[m · WG + invocation]
var<workgroup> partial: array<f32, MAX_M * WG>;

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

/** Four consecutive elements of x (16-byte vector i of the f32 view, 8-byte of the f16 one), in f32. */
fn x_vec4(i: u32) -> vec4<f32> {
  return vec4<f32>(x4[i]);
}

/** The four int8 codes of a word (byte j = element j), sign-extended. */
fn codes_i8(word: u32) -> vec4<f32> {
  return vec4<f32>((vec4<i32>(bitcast<i32>(word)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

/** Four int4 codes of a word, nibbles 4h … 4h + 3 (h = 0 or 1), minus 8. */
fn codes_i4(word: u32, h: u32) -> vec4<f32> {
  let sh = vec4<u32>(0u, 4u, 8u, 12u) + 16u * h;
  return vec4<f32>((vec4<u32>(word) >> sh) & vec4<u32>(15u)) - 8.0;
}

// erfc(z), z ≥ 0, Numerical Recipes `erfcc` (fractional error < 1.2e-7); the why is in linear_tiled.wgsl.
// erfc_pos and gelu are kept identical to linear_tiled.wgsl's by spec/kernels/wgsl-helpers.spec.ts.
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

/** Sums each row's partials over the LANES invocations of a column; lane 0 writes y. */
fn reduce_and_store(n: u32, lid: u32, acc: ptr<function, array<f32, MAX_M>>) {
  let lane = lid % LANES;
  if (SUBGROUPS) {
    // A column's LANES invocations are consecutive invocations of one subgroup (LANES divides the
    // subgroup size): a butterfly of shuffles leaves the sum in every one of them.
    for (var m = 0u; m < MAX_M; m++) {
      if (m < p.M) {
        for (var s = LANES / 2u; s > 0u; s >>= 1u) {
//subgroups:          (*acc)[m] += subgroupShuffleXor((*acc)[m], s);
        }
        if (lane == 0u && n < p.N) {
          store(m, n, (*acc)[m]);
        }
      }
    }
    return;
  }
  for (var m = 0u; m < MAX_M; m++) {
    if (m < p.M) {
      partial[m * WG + lid] = (*acc)[m];
    }
  }
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var m = 0u; m < MAX_M; m++) {
        if (m < p.M) {
          partial[m * WG + lid] += partial[m * WG + lid + s];
        }
      }
    }
    workgroupBarrier();
  }
  if (lane == 0u && n < p.N) {
    for (var m = 0u; m < p.M; m++) {
      store(m, n, partial[m * WG + lid]);
    }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n = (wid.x + wid.y * GRID_X) * (WG / LANES) + lid / LANES;
  var acc: array<f32, MAX_M>;
  if (n < p.N) {
    for (var k = lid % LANES; k < p.K; k += LANES) {
      let wv = weight_at(n, k);
      for (var m = 0u; m < MAX_M; m++) {
        if (m < p.M) {
          acc[m] += wv * f32(x[m * p.K + k]);
        }
      }
    }
  }
  reduce_and_store(n, lid, &acc);
}

@compute @workgroup_size(WG)
fn main_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n = (wid.x + wid.y * GRID_X) * (WG / LANES) + lid / LANES;
  var acc: array<f32, MAX_M>;
  if (n < p.N && W_BITS != 0u) {
    // One vec4<u32> = 16 int8 codes (half a group) or 32 int4 codes (a group); K % 32 == 0.
    let per = select(32u, 16u, W_BITS == 8u);
    let row = n * p.qRowWords;
    for (var c = lid % LANES; c < p.K / per; c += LANES) {
      let q = w4[row / 4u + c];
      let g = (c * per) >> 5u;
      let sw = row + p.qScaleWord + (g >> 1u); // (an entry point sees w through one view: w4 here)
      let s = unpack2x16float(w4[sw / 4u][sw % 4u])[g & 1u];
      for (var m = 0u; m < MAX_M; m++) {
        if (m < p.M) {
          let xi = (m * p.K + c * per) / 4u;
          var d = 0.0;
          if (W_BITS == 8u) {
            d = dot(codes_i8(q.x), x_vec4(xi)) + dot(codes_i8(q.y), x_vec4(xi + 1u)) +
                dot(codes_i8(q.z), x_vec4(xi + 2u)) + dot(codes_i8(q.w), x_vec4(xi + 3u));
          } else {
            for (var j = 0u; j < 4u; j++) {
              d += dot(codes_i4(q[j], 0u), x_vec4(xi + 2u * j)) + dot(codes_i4(q[j], 1u), x_vec4(xi + 2u * j + 1u));
            }
          }
          acc[m] += s * d;
        }
      }
    }
  } else if (n < p.N) {
    let k8 = p.K / 8u; // 16-byte chunks of 8 elements per row (K % 8 == 0)
    for (var c = lid % LANES; c < k8 * select(2u, 1u, W_F16); c += LANES) {
      if (W_F16) {
        // One vec4<u32> = 8 halves = elements 8c … 8c + 7 of row n.
        let q = w4[n * k8 + c];
        let lo = vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y));
        let hi = vec4<f32>(unpack2x16float(q.z), unpack2x16float(q.w));
        for (var m = 0u; m < MAX_M; m++) {
          if (m < p.M) {
            let xi = (m * p.K) / 4u + 2u * c;
            acc[m] += dot(lo, x_vec4(xi)) + dot(hi, x_vec4(xi + 1u));
          }
        }
      } else {
        // One vec4<u32> = 4 f32 = elements 4c … 4c + 3 of row n.
        let q = bitcast<vec4<f32>>(w4[n * 2u * k8 + c]);
        for (var m = 0u; m < MAX_M; m++) {
          if (m < p.M) {
            acc[m] += dot(q, x_vec4((m * p.K) / 4u + c));
          }
        }
      }
    }
  }
  reduce_and_store(n, lid, &acc);
}
