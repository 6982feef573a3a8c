// attention_decode.wgsl — causal grouped-query attention for few queries over a long KV cache
// (token-by-token decoding), split-K: phase 1 of 2 (kernels/attention_combine.wgsl is phase 2).
//
// Keys are cut into chunks of CHUNK; one workgroup handles one (chunk, query, head) and writes an
// unnormalised partial result for its chunk c:
//   m_c = max_k s_k,  l_c = Σ_k e^(s_k − m_c),  acc_c = Σ_k e^(s_k − m_c) · V[k, g(h)]
//   s_k = q[t, h] · K[k, g(h)] / √D   over the chunk's keys k ≤ queryOffset + t, k < kvLength
// so that many workgroups stream the cache in parallel even for one query (32 heads alone would
// leave most of a large GPU idle).
//
// Bindings:  @0 uniform Params   @1 q: act[T, nHeads·D]   @2 k: act[S, nKvHeads·D]
//            @3 v: act[S, nKvHeads·D]   @4 partial: f32[T·nHeads, nChunks, D + 2]  (acc…, m, l)
// Dispatch:  workgroups (nChunks, T · nHeads), WG invocations each.
// Scores: a group of G lanes per key, lane j reading vec4s j, j + G, … of the key's row (G lanes
// read G·16 contiguous bytes: coalesced), partial dots summed through workgroup memory; WG / G keys
// per round. Softmax statistics: tree reductions in workgroup memory. P·V: invocation e owns the
// vec4 of output dims e % (D/4) for the keys e / (D/4), + PARTS, … (each key's V row is read by
// D/4 adjacent lanes as whole vec4s), and the PARTS partial sums are added at the end.
//
// Precision (ops/precision.ts): `act` is f32, or f16 in the +f16(act) variant (q and the KV cache:
// at f16 the cache rows this kernel streams are half the bytes). Rows are read as vec4<act> and
// widened: the scores, softmax statistics and P·V sums are f32, and so is `partial` (internal to
// the split-K pair); nothing is rounded here — attention_combine.wgsl rounds the output once.

alias act = f32;

struct Params {
  T: u32,
  nHeads: u32,
  nKvHeads: u32,
  queryOffset: u32,
  kvLength: u32,
  nChunks: u32,
  scale: f32,          // 1 / √D
}

override HEAD_DIM: u32 = 128;  // D, a multiple of 4
override CHUNK: u32 = 256;     // keys per workgroup
override WG: u32 = 128;        // a power of two
override G: u32 = 8;           // lanes per key in the score phase (divides WG)
override PARTS: u32 = 4;       // ⌊WG / (D/4)⌋ ≥ 1: key subsets summed in parallel per output vec4

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<act>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<act>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<act>>;
@group(0) @binding(4) var<storage, read_write> partial: array<f32>;

var<workgroup> qv: array<vec4f, HEAD_DIM / 4>;
var<workgroup> probs: array<f32, CHUNK>;
var<workgroup> red: array<f32, WG>;
var<workgroup> pv: array<vec4f, WG>;

const MASKED: f32 = -1e30;

fn reduceMax(lid: u32, x: f32) -> f32 {
  red[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn reduceSum(lid: u32, x: f32) -> f32 {
  red[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let D = HEAD_DIM;
  let D4 = D / 4u;
  let chunk = wid.x;
  let row = wid.y;                      // t · nHeads + h
  let t = row / p.nHeads;
  let h = row % p.nHeads;
  let kvh = h / (p.nHeads / p.nKvHeads);
  let kEnd = min(p.kvLength, p.queryOffset + t + 1u);
  let c0 = chunk * CHUNK;
  let c1 = min(c0 + CHUNK, kEnd);
  let n = select(0u, c1 - c0, c1 > c0);  // visible keys in this chunk (0: none)

  for (var e = lid; e < D4; e += WG) { qv[e] = vec4<f32>(q[(row * D) / 4u + e]) * p.scale; }
  workgroupBarrier();

  // scores, G lanes per key
  let lane = lid % G;
  let slot = lid / G;
  for (var r0 = 0u; r0 < n; r0 += WG / G) {
    let key = c0 + r0 + slot;
    var part = 0.0;
    if (key < c1) {
      let base = (key * p.nKvHeads + kvh) * D4;
      for (var c = lane; c < D4; c += G) { part += dot(qv[c], vec4<f32>(k[base + c])); }
    }
    red[lid] = part;
    workgroupBarrier();
    if (lane == 0u) {
      var s = MASKED;
      if (key < c1) {
        s = 0.0;
        for (var j = 0u; j < G; j++) { s += red[lid + j]; }
      }
      if (r0 + slot < CHUNK) { probs[r0 + slot] = s; }
    }
    workgroupBarrier();
  }
  var localMax = MASKED;
  for (var kk = lid; kk < n; kk += WG) { localMax = max(localMax, probs[kk]); }
  let m = reduceMax(lid, localMax);

  var localSum = 0.0;
  for (var kk = lid; kk < n; kk += WG) {
    let pk = exp(probs[kk] - m);
    probs[kk] = pk;
    localSum += pk;
  }
  let l = reduceSum(lid, localSum);   // its barriers also publish probs

  // P·V
  if (lid < D4 * PARTS) {
    let d4 = lid % D4;
    var sum = vec4f(0.0);
    for (var kk = lid / D4; kk < n; kk += PARTS) {
      sum += probs[kk] * vec4<f32>(v[((c0 + kk) * p.nKvHeads + kvh) * D4 + d4]);
    }
    pv[lid] = sum;
  }
  workgroupBarrier();

  let out = (row * p.nChunks + chunk) * (D + 2u);
  for (var d4 = lid; d4 < D4; d4 += WG) {
    var sum = vec4f(0.0);
    for (var part = 0u; part < PARTS; part++) { sum += pv[part * D4 + d4]; }
    partial[out + 4u * d4] = sum.x;
    partial[out + 4u * d4 + 1u] = sum.y;
    partial[out + 4u * d4 + 2u] = sum.z;
    partial[out + 4u * d4 + 3u] = sum.w;
  }
  if (lid == 0u) {
    partial[out + D] = m;
    partial[out + D + 1u] = l;
  }
}
