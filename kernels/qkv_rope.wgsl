// qkv_rope.wgsl — a LLaMA attention block's input side in one pass, for a few rows (decode: M = 1):
//
//   h       = x · rsqrt(mean(x²) + eps) · γ              input_layernorm (RMSNorm)        x [M, K]
//   q, k, v = h·Wqᵀ, h·Wkᵀ, h·Wvᵀ                        q_proj, k_proj, v_proj           W [heads·D, K]
//   q, k    = rope(q), rope(k) at position pos + m       HF rotate_half, as kernels/rope.wgsl
//   q → out [M, nH·D];  k, v → rows pos … pos + M − 1 of the layer's KV cache [maxContext, nKv·D]
//
// ops/qkvRope.ts runs it (its CPU reference is the unfused composition of those ops). It replaces
// nine dispatches and two buffer copies with one.
//
// The norm costs no extra pass: rsqrt(…) is one number per row, so Σ_k (x_k·r·γ_k)·w_k =
// r · Σ_k x_k·γ_k·w_k, and each column sums x·γ·w and x² in the same sweep over K (the sum of squares
// is recomputed by every column: M·K multiply-adds, nothing next to streaming the weights).
// RoPE pairs column i of a head with column i + D/2, so one group of LANES invocations computes both
// columns of a pair — two weight rows against the same x — and rotates them before storing.
//
// Work unit u (one column pair, WG / LANES per workgroup): head j = u / (D/2), i = u % (D/2). Heads
// 0 … nH − 1 are q's, the next nKv are k's, the last nKv are v's (not rotated).
// Weights are f32 or f16 (two halves per u32 word, as everywhere); accumulation is f32.
//
// Bindings:  @0 uniform Params   @1 x: act[M·K]   @2 gamma: f32[K]   @3 wq, @4 wk, @5 wv: u32 words
//            @6 q: act[M·nH·D] (out)   @7 kCache, @8 vCache: act[maxContext·nKv·D] (rows pos … written)
// Dispatch:  ⌈units / (WG / LANES)⌉ workgroups, folded into [GRID_X, …] (group = wid.x + wid.y · GRID_X).
// Entry points: `main` (any K) and `main_vec4` (K % 8 == 0: 16-byte loads of w and γ, 8 elements of x
// per load pair).
//
// Precision (ops/precision.ts): `act` — x, q and the KV cache — is f32, or f16 in the +f16(act)
// variant. x is read into f32; the norm's sum of squares, the dot products, rsqrt and the RoPE
// rotation are all f32 (the weights are read as before), so the only rounding points are the stores:
// q and the two cache rows, each rounded once to f16. So it matches the unfused f32 composition on the
// f16 inputs with those outputs rounded, to one f16 ulp (summation order can move a value across a
// rounding boundary); the unfused f16 ops round after every step instead.

// Lines starting `//subgroups:` are live only in the `+subgroups` variant of this kernel (ops/subgroups.ts
// strips the marker when the device has `subgroups` and a column's LANES fit in one subgroup): WGSL has
// no conditional compilation, and `enable subgroups;` must not reach a device without the feature.
//subgroups: enable subgroups;

alias act = f32; // x, q, kCache, vCache (f16 in the +f16(act) variant)

struct Params {
  M: u32,
  K: u32,
  qHeads: u32,
  kvHeads: u32,
  headDim: u32,
  pos: u32,          // cache row (position) of x's row 0
  eps: f32,
  _pad: u32,
  invFreq: array<vec4f, 32>,  // inv_freq[i] = invFreq[i / 4][i % 4], i < D / 2 ≤ 128 (ops/rope.ts ROPE_MAX_HALF)
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
@group(0) @binding(3) var<storage, read> wq: array<u32>;
@group(0) @binding(4) var<storage, read> wk: array<u32>;
@group(0) @binding(5) var<storage, read> wv: array<u32>;
@group(0) @binding(6) var<storage, read_write> q: array<act>;
@group(0) @binding(7) var<storage, read_write> kCache: array<act>;
@group(0) @binding(8) var<storage, read_write> vCache: array<act>;

// The same buffers as 4-vectors, for main_vec4 (16 bytes; x4's are 8 at f16).
@group(0) @binding(1) var<storage, read> x4: array<vec4<act>>;
@group(0) @binding(2) var<storage, read> gamma4: array<vec4f>;
@group(0) @binding(3) var<storage, read> wq4: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> wk4: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> wv4: array<vec4<u32>>;

// partial[(s · MAX_M + m) · WG + invocation] for the three sums s: column i, column i + D/2, x².
var<workgroup> partial: array<f32, 3 * MAX_M * WG>;

/** Element e of weight `which` (0 q, 1 k, 2 v): f32 bits, or half e & 1 of word e >> 1. */
fn weight_of(which: u32, e: u32) -> f32 {
  let word = select(e, e >> 1u, W_F16);
  var bits: u32;
  if (which == 0u) { bits = wq[word]; } else if (which == 1u) { bits = wk[word]; } else { bits = wv[word]; }
  if (W_F16) {
    return unpack2x16float(bits)[e & 1u];
  }
  return bitcast<f32>(bits);
}

/** Word i of weight `which`. */
fn word_of(which: u32, i: u32) -> u32 {
  if (which == 0u) { return wq[i]; }
  if (which == 1u) { return wk[i]; }
  return wv[i];
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
  if (which == 0u) { return wq4[c]; }
  if (which == 1u) { return wk4[c]; }
  return wv4[c];
}

/** Elements 8c … 8c + 7 of `row` of weight `which` (K % 8 == 0), as two vec4s. */
fn weight8(which: u32, row: u32, c: u32) -> array<vec4f, 2> {
  let k8 = p.K / 8u;
  if (W_F16) {
    let h = weight4_of(which, row * k8 + c);
    return array<vec4f, 2>(vec4f(unpack2x16float(h.x), unpack2x16float(h.y)), vec4f(unpack2x16float(h.z), unpack2x16float(h.w)));
  }
  let base = (row * k8 + c) * 2u;
  return array<vec4f, 2>(bitcast<vec4f>(weight4_of(which, base)), bitcast<vec4f>(weight4_of(which, base + 1u)));
}

const DP1: f32 = 0.78515625;
const DP2: f32 = 2.4187564849853515625e-4;
const DP3: f32 = 3.77489497744594108e-8;
const FOUR_OVER_PI: f32 = 1.27323954473516;

/** (sin a, cos a) for a ≥ 0, accurate to ~1 ulp for a < 8192. The same as kernels/rope.wgsl's. */
fn sincos_accurate(a: f32) -> vec2f {
  var j = u32(a * FOUR_OVER_PI);
  j = j + (j & 1u);                    // round the octant up to even: reduced arg in [-π/4, π/4]
  let jf = f32(j);
  let r = ((a - jf * DP1) - jf * DP2) - jf * DP3;
  let z = r * r;
  let s = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
  let c = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
  // quadrant q = (j / 2) mod 4: rotate (sin, cos) by q · π/2
  switch ((j >> 1u) & 3u) {
    case 0u: { return vec2f(s, c); }
    case 1u: { return vec2f(c, -s); }
    case 2u: { return vec2f(-s, -c); }
    default: { return vec2f(-c, s); }
  }
}

/** The unit's weight (0 q, 1 k, 2 v), its head within that weight, and the pair's first row. */
struct Unit { valid: bool, which: u32, head: u32, i: u32, row: u32 }

fn unit_of(wid: vec3u, lid: u32) -> Unit {
  let half = p.headDim / 2u;
  let u = (wid.x + wid.y * GRID_X) * (WG / LANES) + lid / LANES;
  let j = u / half;
  let i = u % half;
  let valid = j < p.qHeads + 2u * p.kvHeads;
  var which = 0u;
  var head = j;
  if (j >= p.qHeads + p.kvHeads) { which = 2u; head = j - p.qHeads - p.kvHeads; }
  else if (j >= p.qHeads) { which = 1u; head = j - p.qHeads; }
  return Unit(valid, which, head, i, head * p.headDim + i);
}

/**
 * Adds up each sum over the LANES invocations of a unit; invocation l of the unit then finishes rows
 * l, l + LANES, …: the norm's scale, the rotation, the store.
 */
/** Row m of a unit from its three sums: the norm's scale, the rotation, the store. */
fn finish(un: Unit, m: u32, sums: vec3f) {
  let rstd = inverseSqrt(sums.z / f32(p.K) + p.eps);
  var y0 = sums.x * rstd;
  var y1 = sums.y * rstd;
  if (un.which < 2u) {
    let sc = sincos_accurate(f32(p.pos + m) * p.invFreq[un.i / 4u][un.i % 4u]);
    let r0 = y0 * sc.y - y1 * sc.x;
    let r1 = y1 * sc.y + y0 * sc.x;
    y0 = r0;
    y1 = r1;
  }
  let half = p.headDim / 2u;
  if (un.which == 0u) {
    let at = m * p.qHeads * p.headDim + un.row;
    q[at] = act(y0);
    q[at + half] = act(y1);
  } else {
    let at = (p.pos + m) * p.kvHeads * p.headDim + un.row;
    if (un.which == 1u) {
      kCache[at] = act(y0);
      kCache[at + half] = act(y1);
    } else {
      vCache[at] = act(y0);
      vCache[at + half] = act(y1);
    }
  }
}

fn reduce_and_store(un: Unit, lid: u32, acc: ptr<function, array<vec3f, MAX_M>>) {
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
    if (un.valid) {
      for (var m = lane; m < p.M; m += LANES) {
        finish(un, m, (*acc)[m]);
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
  if (!un.valid) { return; }
  let first = lid - lane;
  for (var m = lane; m < p.M; m += LANES) {
    finish(un, m, vec3f(partial[m * WG + first], partial[(MAX_M + m) * WG + first], partial[(2u * MAX_M + m) * WG + first]));
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let un = unit_of(wid, lid);
  var acc: array<vec3f, MAX_M>; // (column i, column i + D/2, x²) per row
  if (un.valid) {
    let other = un.row + p.headDim / 2u;
    for (var k = lid % LANES; k < p.K; k += LANES) {
      let w0 = weight_at_of(un.which, un.row, k);
      let w1 = weight_at_of(un.which, other, k);
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
  reduce_and_store(un, lid, &acc);
}

@compute @workgroup_size(WG)
fn main_vec4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let un = unit_of(wid, lid);
  var acc: array<vec3f, MAX_M>;
  if (un.valid) {
    let other = un.row + p.headDim / 2u;
    for (var c = lid % LANES; c < p.K / 8u; c += LANES) {
      let w0 = weight8(un.which, un.row, c);
      let w1 = weight8(un.which, other, c);
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
  reduce_and_store(un, lid, &acc);
}
