// gate_up_swiglu.wgsl — the first half of a LLaMA MLP in one pass, for a few rows (decode: M = 1):
//
//   h = x · rsqrt(mean(x²) + eps) · γ                post_attention_layernorm (RMSNorm)   x [M, K]
//   y = silu(h · Wgᵀ) · (h · Wuᵀ)                    gate_proj, up_proj, SwiGLU            W [N, K], y [M, N]
//
// ops/gateUpSwiglu.ts runs it (its CPU reference is the unfused composition). Four dispatches in one.
// As in qkv_rope.wgsl, the norm is folded into the sweep: y's two products are r · Σ_k x_k·γ_k·w_k
// with r = rsqrt(Σ x² / K + eps), summed in the same loop. One group of LANES invocations computes
// column n of both projections (two weight rows against the same x). silu is kernels/swiglu.wgsl's.
//
// Bindings:  @0 uniform Params   @1 x: act[M·K]   @2 gamma: f32[K]   @3 wg, @4 wu: u32 words of [N, K]
//            @5 y: act[M·N] (out)
// Dispatch:  ⌈N / (WG / LANES)⌉ workgroups, folded into [GRID_X, …] (group = wid.x + wid.y · GRID_X).
// Entry points: `main` (any K) and `main_vec4` (K % 8 == 0: 16-byte loads of w and γ, 8 elements of x
// per load pair).
//
// Precision (ops/precision.ts): `act` — x and y — is f32, or f16 in the +f16(act) variant. x is read
// into f32; the sum of squares, both dot products, rsqrt and silu(gate)·up are f32, and y is rounded
// once to f16 at its store. So it matches the unfused f32 composition on the f16 input with y rounded,
// to one f16 ulp (summation order); the unfused f16 ops round h, gate and up too.

// Lines starting `//subgroups:` are live only in the `+subgroups` variant of this kernel (ops/subgroups.ts
// strips the marker when the device has `subgroups` and a column's LANES fit in one subgroup): WGSL has
// no conditional compilation, and `enable subgroups;` must not reach a device without the feature.
//subgroups: enable subgroups;

alias act = f32; // x, y (f16 in the +f16(act) variant)

struct Params {
  M: u32,
  N: u32,
  K: u32,
  eps: f32,
  qRowWords: u32,  // quantized weights (W_BITS ≠ 0, entry `main`): words per row
  qScaleWord: u32, // quantized weights: word of a row where its scales start
}

const MAX_M: u32 = 8; // ops/linear.ts MATVEC_MAX_M (spec/kernels/kernel-constants.spec.ts)

override WG: u32 = 128;
override LANES: u32 = 32;
override GRID_X: u32 = 32768;
override W_F16: bool = false;
override W_BITS: u32 = 0; // 0: f32/f16 (W_F16); 8: q8; 4: q4 — entry `main` only
override SUBGROUPS: bool = false; // the +subgroups variant: lanes reduce by subgroup shuffles, no barriers

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> wg: array<u32>;
@group(0) @binding(4) var<storage, read> wu: array<u32>;
@group(0) @binding(5) var<storage, read_write> y: array<act>;

// The same buffers as 4-vectors, for main_vec4 (16 bytes; x4's are 8 at f16).
@group(0) @binding(1) var<storage, read> x4: array<vec4<act>>;
@group(0) @binding(2) var<storage, read> gamma4: array<vec4f>;
@group(0) @binding(3) var<storage, read> wg4: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> wu4: array<vec4<u32>>;

// partial[(s · MAX_M + m) · WG + invocation] for the three sums s: gate, up, x².
var<workgroup> partial: array<f32, 3 * MAX_M * WG>;

/** Element e of weight `which` (0 gate, 1 up): f32 bits, or half e & 1 of word e >> 1. */
fn weight_of(which: u32, e: u32) -> f32 {
  let word = select(e, e >> 1u, W_F16);
  var bits: u32;
  if (which == 0u) { bits = wg[word]; } else { bits = wu[word]; }
  if (W_F16) {
    return unpack2x16float(bits)[e & 1u];
  }
  return bitcast<f32>(bits);
}

/** Word i of weight `which`. */
fn word_of(which: u32, i: u32) -> u32 {
  if (which == 0u) { return wg[i]; }
  return wu[i];
}

/** Element (n, k) of weight `which`: weight_of, or dequantized when W_BITS ≠ 0 (runtime/quant.ts: row n is qRowWords words, codes then f16 group scales from qScaleWord). */
fn weight_at_of(which: u32, n: u32, k: u32) -> f32 {
  if (W_BITS == 0u) {
    return weight_of(which, n * p.K + k);
  }
  let row = n * p.qRowWords;
  let g = k >> 5u; // group of 32
  let s = unpack2x16float(word_of(which, row + p.qScaleWord + (g >> 1u)))[g & 1u];
  if (W_BITS == 8u) {
    return f32(extractBits(bitcast<i32>(word_of(which, row + (k >> 2u))), 8u * (k & 3u), 8u)) * s;
  }
  return (f32(extractBits(word_of(which, row + (k >> 3u)), 4u * (k & 7u), 4u)) - 8.0) * s;
}

/** 16-byte word c of weight `which`. */
fn weight4_of(which: u32, c: u32) -> vec4<u32> {
  if (which == 0u) { return wg4[c]; }
  return wu4[c];
}

/** Elements 8c … 8c + 7 of `row` of weight `which` (K % 8 == 0), as two vec4s. The same as qkv_rope.wgsl's. */
fn weight8(which: u32, row: u32, c: u32) -> array<vec4f, 2> {
  let k8 = p.K / 8u;
  if (W_F16) {
    let h = weight4_of(which, row * k8 + c);
    return array<vec4f, 2>(vec4f(unpack2x16float(h.x), unpack2x16float(h.y)), vec4f(unpack2x16float(h.z), unpack2x16float(h.w)));
  }
  let base = (row * k8 + c) * 2u;
  return array<vec4f, 2>(bitcast<vec4f>(weight4_of(which, base)), bitcast<vec4f>(weight4_of(which, base + 1u)));
}

/** silu(g) · u, as kernels/swiglu.wgsl computes it. */
fn swiglu(g: f32, u: f32) -> f32 {
  let e = exp(-abs(g));                                   // in (0, 1]
  let sigmoid = select(e / (1.0 + e), 1.0 / (1.0 + e), g >= 0.0);
  return g * sigmoid * u;
}

/** Adds up each sum over the LANES invocations of column n; invocation l of the group finishes rows l, l + LANES, …. */
/** Row m of column n from its three sums: the norm's scale, SwiGLU, the store. */
fn finish(n: u32, m: u32, sums: vec3f) {
  let rstd = inverseSqrt(sums.z / f32(p.K) + p.eps);
  y[m * p.N + n] = act(swiglu(sums.x * rstd, sums.y * rstd));
}

fn reduce_and_store(n: u32, lid: u32, acc: ptr<function, array<vec3f, MAX_M>>) {
  let lane = lid % LANES;
  if (SUBGROUPS) {
    // A group's LANES invocations are consecutive invocations of one subgroup (LANES divides the
    // subgroup size): a butterfly of shuffles leaves the sums in every one of them.
    for (var m = 0u; m < MAX_M; m++) {
      if (m < p.M) {
        for (var s = LANES / 2u; s > 0u; s >>= 1u) {
//subgroups:          (*acc)[m] += subgroupShuffleXor((*acc)[m], s);
        }
      }
    }
    if (n < p.N) {
      for (var m = lane; m < p.M; m += LANES) {
        finish(n, m, (*acc)[m]);
      }
    }
    return;
  }
  for (var m = 0u; m < MAX_M; m++) {
    if (m < p.M) {
      partial[m * WG + lid] = (*acc)[m].x;
      partial[(MAX_M + m) * WG + lid] = (*acc)[m].y;
      partial[(2u * MAX_M + m) * WG + lid] = (*acc)[m].z;
    }
  }
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var m = 0u; m < MAX_M; m++) {
        if (m < p.M) {
          for (var t = 0u; t < 3u; t++) {
            partial[(t * MAX_M + m) * WG + lid] += partial[(t * MAX_M + m) * WG + lid + s];
          }
        }
      }
    }
    workgroupBarrier();
  }
  if (n >= p.N) { return; }
  let first = lid - lane;
  for (var m = lane; m < p.M; m += LANES) {
    finish(n, m, vec3f(partial[m * WG + first], partial[(MAX_M + m) * WG + first], partial[(2u * MAX_M + m) * WG + first]));
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let n = (wid.x + wid.y * GRID_X) * (WG / LANES) + lid / LANES;
  var acc: array<vec3f, MAX_M>; // (gate, up, x²) per row
  if (n < p.N) {
    for (var k = lid % LANES; k < p.K; k += LANES) {
      let w0 = weight_at_of(0u, n, k);
      let w1 = weight_at_of(1u, n, k);
      let g = gamma[k];
      for (var m = 0u; m < MAX_M; m++) {
        if (m < p.M) {
          let xv = f32(x[m * p.K + k]);
          let xg = xv * g;
          acc[m] += vec3f(xg * w0, xg * w1, xv * xv);
        }
      }
    }
  }
  reduce_and_store(n, lid, &acc);
}

@compute @workgroup_size(WG)
fn main_vec4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let n = (wid.x + wid.y * GRID_X) * (WG / LANES) + lid / LANES;
  var acc: array<vec3f, MAX_M>;
  if (n < p.N) {
    for (var c = lid % LANES; c < p.K / 8u; c += LANES) {
      let w0 = weight8(0u, n, c);
      let w1 = weight8(1u, n, c);
      let g0 = gamma4[2u * c];
      let g1 = gamma4[2u * c + 1u];
      for (var m = 0u; m < MAX_M; m++) {
        if (m < p.M) {
          let xi = (m * p.K) / 4u + 2u * c;
          let a = vec4f(x4[xi]);
          let b = vec4f(x4[xi + 1u]);
          let ag = a * g0;
          let bg = b * g1;
          acc[m] += vec3f(dot(ag, w0[0]) + dot(bg, w0[1]), dot(ag, w1[0]) + dot(bg, w1[1]), dot(a, a) + dot(b, b));
        }
      }
    }
  }
  reduce_and_store(n, lid, &acc);
}
