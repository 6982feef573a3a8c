// sample.wgsl — draw the next token from the logits entirely on the GPU (no logits read-back):
// repetition penalty → temperature → softmax → top-k → top-p → inverse CDF with a CPU-drawn u.
//
//   z_i = logits_i / temperature, except for ids in `recent` (HF RepetitionPenaltyLogitsProcessor):
//         z_i = (logits_i > 0 ? logits_i / penalty : logits_i · penalty) / temperature
//   w_i = e^(z_i − max z)                                     (unnormalised softmax)
//   top-k: keep z_i ≥ the k-th largest z (ties at the threshold are all kept; k = 0 keeps all)
//   top-p: keep z_i ≥ τ, τ the largest value with Σ_{kept, z ≥ τ} w ≥ p · Σ_{kept} w
//          (= HF's "smallest set of most probable tokens with mass ≥ p"; skipped when p ≥ 1)
//   token = the first kept index i (in index order) with Σ_{kept j ≤ i} w_j > u · Σ_{kept} w_j
//
// Logits holding a NaN or +Inf give token = NON_FINITE (flagged in the first sweep, no extra pass).
//
// Thresholds are found without sorting: each z maps to a u32 key that orders like the float
// (`orderKey`), and the threshold key is built bit by bit from the top (radix select): keep bit b
// if "count (or mass) of keys ≥ prefix | b" still meets the target. That is 32 counting passes
// over the values, each a strided sweep plus a tree reduction in workgroup memory.
//
// Bindings:  @0 uniform Params   @1 logits: f32[n]   @2 recent: u32[max(1, nRecent)]
//            @3 z: f32[n] (scratch)   @4 token: u32[1]
// Dispatch:  one workgroup of WG invocations: workgroups (1). Invocation lid sweeps i = lid,
//            lid + WG, … in every pass; for the final inverse-CDF pass it owns the contiguous
//            block [lid·B, (lid + 1)·B), B = ⌈n / WG⌉, so a prefix sum over invocations orders
//            the cumulative mass by index.

struct Params {
  n: u32,
  nRecent: u32,
  topK: u32,           // 0: keep all
  temperature: f32,    // > 0 (greedy decoding passes 1 with topK = 1, u = 0)
  topP: f32,           // ≥ 1: keep all
  penalty: f32,        // 1: no penalty
  u: f32,              // uniform draw in [0, 1)
}

override WG: u32 = 256;   // a power of two
override NON_FINITE: u32;  // ops/argmax.ts NON_FINITE_ID

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> recent: array<u32>;
@group(0) @binding(3) var<storage, read_write> z: array<f32>;
@group(0) @binding(4) var<storage, read_write> token: array<u32>;

var<workgroup> redF: array<f32, WG>;
var<workgroup> redU: array<u32, WG>;
var<workgroup> firstCrossing: atomic<u32>;
var<workgroup> lastKeptPlusOne: atomic<u32>;
var<workgroup> nonFinite: atomic<u32>;   // workgroup memory starts zeroed

/** NaN or +Inf, from the bits (a compiler may fold `v != v` away). */
fn nanOrPosInf(v: f32) -> bool {
  let b = bitcast<u32>(v);
  return (b & 0x7fffffffu) > 0x7f800000u || b == 0x7f800000u;
}

/** A u32 that orders like the f32: flip all bits of negatives, set the sign bit of positives. */
fn orderKey(f: f32) -> u32 {
  let b = bitcast<u32>(f);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn sumF(lid: u32, x: f32) -> f32 {
  redF[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) { redF[lid] += redF[lid + s]; }
    workgroupBarrier();
  }
  let r = redF[0];
  workgroupBarrier();
  return r;
}

fn maxF(lid: u32, x: f32) -> f32 {
  redF[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) { redF[lid] = max(redF[lid], redF[lid + s]); }
    workgroupBarrier();
  }
  let r = redF[0];
  workgroupBarrier();
  return r;
}

fn sumU(lid: u32, x: u32) -> u32 {
  redU[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) { redU[lid] += redU[lid + s]; }
    workgroupBarrier();
  }
  let r = redU[0];
  workgroupBarrier();
  return r;
}

/** Σ e^(z_i − m) over the keys ≥ threshold. */
fn massAtLeast(lid: u32, threshold: u32, m: f32) -> f32 {
  var mass = 0.0;
  for (var i = lid; i < p.n; i += WG) {
    let zi = z[i];
    if (orderKey(zi) >= threshold) { mass += exp(zi - m); }
  }
  return sumF(lid, mass);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  // 1. penalty and temperature
  for (var i = lid; i < p.n; i += WG) {
    let l = logits[i];
    if (nanOrPosInf(l)) { atomicOr(&nonFinite, 1u); }
    z[i] = l / p.temperature;
  }
  storageBarrier();
  for (var j = lid; j < p.nRecent; j += WG) {
    let id = recent[j];
    if (id < p.n) {
      let l = logits[id];
      z[id] = select(l * p.penalty, l / p.penalty, l > 0.0) / p.temperature;  // duplicates write the same value
    }
  }
  storageBarrier();

  var localMax = -3.0e38;
  for (var i = lid; i < p.n; i += WG) { localMax = max(localMax, z[i]); }
  let m = maxF(lid, localMax);

  // 2. top-k: the k-th largest key
  var kKey = 0u;
  if (p.topK > 0u && p.topK < p.n) {
    for (var bit = 31i; bit >= 0i; bit--) {
      let candidate = kKey | (1u << u32(bit));
      var count = 0u;
      for (var i = lid; i < p.n; i += WG) { count += select(0u, 1u, orderKey(z[i]) >= candidate); }
      if (sumU(lid, count) >= p.topK) { kKey = candidate; }
    }
  }

  // 3. top-p: the largest key whose upper set (within top-k) holds mass ≥ p
  var threshold = kKey;
  if (p.topP < 1.0) {
    let needed = p.topP * massAtLeast(lid, kKey, m);
    var pKey = 0u;
    for (var bit = 31i; bit >= 0i; bit--) {
      let candidate = pKey | (1u << u32(bit));
      if (massAtLeast(lid, max(candidate, kKey), m) >= needed) { pKey = candidate; }
    }
    threshold = max(pKey, kKey);
  }

  // 4. inverse CDF over the kept tokens in index order
  let block = (p.n + WG - 1u) / WG;
  let b0 = min(lid * block, p.n);
  let b1 = min(b0 + block, p.n);
  var own = 0.0;
  var lastKept = 0xffffffffu;
  for (var i = b0; i < b1; i++) {
    let zi = z[i];
    if (orderKey(zi) >= threshold) {
      own += exp(zi - m);
      lastKept = i;
    }
  }
  // inclusive prefix sum of the block masses over invocations (Hillis–Steele)
  redF[lid] = own;
  if (lid == 0u) {
    atomicStore(&firstCrossing, 0xffffffffu);
    atomicStore(&lastKeptPlusOne, 0u);
  }
  workgroupBarrier();
  for (var s = 1u; s < WG; s *= 2u) {
    var add = 0.0;
    if (lid >= s) { add = redF[lid - s]; }
    workgroupBarrier();
    redF[lid] += add;
    workgroupBarrier();
  }
  let goal = p.u * redF[WG - 1u];
  let before = select(0.0, redF[max(lid, 1u) - 1u], lid > 0u);
  // Blocks tile [0, total) with shared float boundaries, so exactly one block holds the target
  // (none when rounding puts u · total at the very top). Inside it, the sequential running sum
  // may round differently from the scan: if it never passes the target, its last kept token wins.
  if (before <= goal && goal < redF[lid]) {
    var run = before;
    var chosen = lastKept;
    for (var i = b0; i < b1; i++) {
      let zi = z[i];
      if (orderKey(zi) >= threshold) {
        run += exp(zi - m);
        if (run > goal) {
          chosen = i;
          break;
        }
      }
    }
    atomicMin(&firstCrossing, chosen);
  }
  if (lastKept != 0xffffffffu) { atomicMax(&lastKeptPlusOne, lastKept + 1u); }
  workgroupBarrier();
  if (lid == 0u) {
    let first = atomicLoad(&firstCrossing);
    // rounding can leave u · total just above the last partial sum: take the last kept token
    let picked = select(first, atomicLoad(&lastKeptPlusOne) - 1u, first == 0xffffffffu);
    token[0] = select(picked, NON_FINITE, atomicLoad(&nonFinite) != 0u);
  }
}
