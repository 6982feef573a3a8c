// sample_draw.wgsl — sampling, dispatch 4 of 4 (ops/sample.ts has the whole algorithm): the exact
// top-k / top-p threshold among the candidates of dispatch 3, then the inverse CDF.
//
//   m = max z; certain = Σ_g certain_g (tokens above every candidate), all = Σ_g all_g
//   top-k: kth = the (k − before)-th largest candidate (before = Σ_g certainCount_g); T = certain +
//          Σ_{candidates ≥ kth} e^(z − m); without top-k T = all
//   top-p: τ = the largest candidate value with certain + Σ_{candidates ≥ τ} e^(z − m) ≥ p · T
//          (walking the candidates from the largest, the first position whose running mass reaches
//          p · T; its ties are kept too). Kept: z ≥ max(τ, kth).
//   token = the first kept index i (in index order) with Σ_{kept j ≤ i} e^(z_j − m) > u · Σ_kept:
//          per chunk the kept mass (certain_g + its kept candidates), a prefix sum over chunks picks
//          the chunk, a prefix sum over its elements the token. Rounding can leave u · total past
//          the last partial sum: then the last kept token with a non-zero mass wins.
//   NaN or +Inf logits (flagged by dispatch 1) give token = NON_FINITE; all z = −Inf gives n − 1 (as
//   the reference, whose probabilities are then NaN).
// Up to CAP candidates are sorted in workgroup memory (bitonic, descending); more (a vocabulary
// whose values crowd one bin, e.g. all equal) fall back to a radix select over the candidates in
// storage: the threshold key built bit by bit, each bit one counting (or mass) pass.
//
// Bindings:  @0 uniform Params   @1 z: f32[n]   @2 part: u32[HEADER + RECORD · chunks]
//            @3 cand: u32[chunks · chunkSize] (f32 bits)   @4 token: u32[1]
// Dispatch:  one workgroup: workgroups (1). Needs chunks ≤ WG (ops/sample.ts sizes the chunks).

struct Params {
  n: u32,
  nRecent: u32,
  topK: u32,
  chunks: u32,
  chunkSize: u32,
  temperature: f32,
  topP: f32,
  penalty: f32,
  u: f32,
  fixedOne: f32,
}

override WG: u32 = 256;       // a power of two
override CAP: u32 = 2048;     // candidates sorted in workgroup memory: a power of two ≥ WG
override NON_FINITE: u32;     // ops/argmax.ts NON_FINITE_ID

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> part: array<u32>;
@group(0) @binding(3) var<storage, read> cand: array<u32>;
@group(0) @binding(4) var<storage, read_write> token: array<u32>;

const HEADER: u32 = 8u;
const RECORD: u32 = 8u;
const R_MAX: u32 = 0u;
const R_FLAG: u32 = 2u;
const R_CAND: u32 = 3u;
const R_CERTAIN: u32 = 4u;
const R_ALL: u32 = 5u;
const R_CERTAIN_COUNT: u32 = 6u;
const R_FINITE: u32 = 7u;
const H_LO: u32 = 0u;
const H_HI: u32 = 1u;

const F32_MAX: f32 = 0x1.fffffep+127f;
const NONE: u32 = 0xffffffffu;

var<workgroup> keys: array<u32, CAP>;
var<workgroup> redF: array<f32, WG>;
var<workgroup> redU: array<u32, WG>;
var<workgroup> chunkIncl: array<f32, WG>;   // inclusive prefix of the chunks' kept masses
var<workgroup> candStart: array<u32, WG>;   // where each chunk's candidates start in `keys`
var<workgroup> pick: atomic<u32>;
var<workgroup> lastA: atomic<u32>;
var<workgroup> lastB: atomic<u32>;
var<workgroup> sharedU: u32;
var<workgroup> sharedF: f32;

/** A u32 that orders like the f32: flip all bits of negatives, set the sign bit of positives. */
fn orderKey(f: f32) -> u32 {
  let b = bitcast<u32>(f);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

/** The f32 whose orderKey is k. */
fn keyValue(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
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

/** Σ x over the workgroup, the same value in every invocation (uniform: it steers loops with barriers). */
fn sumU(lid: u32, x: u32) -> u32 {
  redU[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) { redU[lid] += redU[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { sharedU = redU[0]; }
  return workgroupUniformLoad(&sharedU);
}

/** Prefix sums of x over the invocations (Hillis–Steele): (exclusive, inclusive), read from one array so blocks tile exactly. */
fn scanF(lid: u32, x: f32) -> vec2f {
  redF[lid] = x;
  workgroupBarrier();
  for (var s = 1u; s < WG; s *= 2u) {
    var add = 0.0;
    if (lid >= s) { add = redF[lid - s]; }
    workgroupBarrier();
    redF[lid] += add;
    workgroupBarrier();
  }
  let r = vec2f(select(0.0, redF[max(lid, 1u) - 1u], lid > 0u), redF[lid]);
  workgroupBarrier();
  return r;
}

fn record(g: u32, field: u32) -> u32 {
  return part[HEADER + RECORD * g + field];
}

/** Σ over the candidates with key ≥ t of 1 (count) or e^(z − m), in a fixed order. */
fn candidatesAtLeast(lid: u32, t: u32, m: f32) -> vec2f {
  var count = 0u;
  var mass = 0.0;
  for (var g = 0u; g < p.chunks; g++) {
    let size = record(g, R_CAND);
    for (var j = lid; j < size; j += WG) {
      let zj = bitcast<f32>(cand[g * p.chunkSize + j]);
      if (orderKey(zj) >= t) {
        count++;
        mass += exp(zj - m);
      }
    }
  }
  return vec2f(f32(sumU(lid, count)), sumF(lid, mass));
}

/** The threshold key among c ≤ CAP candidates, sorted in workgroup memory. */
fn thresholdSorted(lid: u32, c: u32, m: f32, certain: f32, all: f32, before: u32, truncK: bool, truncP: bool) -> u32 {
  for (var g = 0u; g < p.chunks; g++) {
    let size = record(g, R_CAND);
    let at = candStart[g];
    for (var j = lid; j < size; j += WG) { keys[at + j] = orderKey(bitcast<f32>(cand[g * p.chunkSize + j])); }
  }
  var size = 1u;
  while (size < c) { size *= 2u; }
  for (var j = c + lid; j < size; j += WG) { keys[j] = 0u; }   // 0 sorts below every value
  workgroupBarrier();
  for (var k = 2u; k <= size; k *= 2u) {   // bitonic sort, descending
    for (var j = k / 2u; j > 0u; j /= 2u) {
      for (var i = lid; i < size; i += WG) {
        let l = i ^ j;
        if (l > i) {
          let a = keys[i];
          let b = keys[l];
          if (select(a > b, a < b, (i & k) == 0u)) {
            keys[i] = b;
            keys[l] = a;
          }
        }
      }
      workgroupBarrier();
    }
  }
  let kthKey = keys[select(c - 1u, p.topK - before - 1u, truncK)];
  if (!truncP) { return kthKey; }
  // the kept positions 0 … last: the k-th value's ties after it are kept too
  if (lid == 0u) { atomicStore(&pick, 0u); }
  workgroupBarrier();
  for (var s = lid; s < c; s += WG) {
    if (keys[s] >= kthKey) { atomicMax(&pick, s); }
  }
  workgroupBarrier();
  if (lid == 0u) { sharedU = atomicLoad(&pick); }
  let last = workgroupUniformLoad(&sharedU);
  // running mass over positions 0 … last, in blocks of `per` positions per invocation
  let per = (last + WG) / WG;
  let s0 = min(lid * per, last + 1u);
  let s1 = min(s0 + per, last + 1u);
  var own = 0.0;
  for (var s = s0; s < s1; s++) { own += exp(keyValue(keys[s]) - m); }
  let excl = scanF(lid, own).x;
  var total = all;
  if (truncK) {
    if (s0 <= last && last < s1) {
      var run = excl;
      for (var s = s0; s <= last; s++) { run += exp(keyValue(keys[s]) - m); }
      sharedF = certain + run;
    }
    total = workgroupUniformLoad(&sharedF);
  }
  let needed = p.topP * total;
  if (lid == 0u) { atomicStore(&pick, last); }
  workgroupBarrier();
  var run = excl;
  for (var s = s0; s < s1; s++) {
    run += exp(keyValue(keys[s]) - m);
    if (certain + run >= needed) {
      atomicMin(&pick, s);
      break;
    }
  }
  workgroupBarrier();
  return keys[atomicLoad(&pick)];
}

/** The threshold key among c > CAP candidates in storage: radix select, one pass per bit. */
fn thresholdRadix(lid: u32, m: f32, certain: f32, all: f32, before: u32, truncK: bool, truncP: bool) -> u32 {
  var kKey = 0u;
  if (truncK) {
    let wanted = f32(p.topK - before);
    for (var bit = 31i; bit >= 0i; bit--) {
      let candidate = kKey | (1u << u32(bit));
      if (candidatesAtLeast(lid, candidate, m).x >= wanted) { kKey = candidate; }
    }
  }
  if (!truncP) { return kKey; }
  var total = all;
  if (truncK) { total = certain + candidatesAtLeast(lid, kKey, m).y; }
  let needed = p.topP * total;
  var pKey = 0u;
  for (var bit = 31i; bit >= 0i; bit--) {
    let candidate = pKey | (1u << u32(bit));
    if (certain + candidatesAtLeast(lid, max(candidate, kKey), m).y >= needed) { pKey = candidate; }
  }
  return max(pKey, kKey);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  // 1. the records of the chunks (chunks ≤ WG: invocation g reads chunk g)
  var localMax = -F32_MAX;
  var flag = 0u;
  var finite = 0u;
  var certainCount = 0u;
  var count = 0u;
  var certain = 0.0;
  var all = 0.0;
  if (lid < p.chunks) {
    localMax = bitcast<f32>(record(lid, R_MAX));
    flag = record(lid, R_FLAG);
    finite = record(lid, R_FINITE);
    certainCount = record(lid, R_CERTAIN_COUNT);
    count = record(lid, R_CAND);
    certain = bitcast<f32>(record(lid, R_CERTAIN));
    all = bitcast<f32>(record(lid, R_ALL));
  }
  let m = maxF(lid, localMax);
  let flagged = sumU(lid, flag) != 0u;
  let noneFinite = sumU(lid, finite) == 0u;
  let certainSum = sumF(lid, certain);
  let allSum = sumF(lid, all);
  // where each chunk's candidates start (exclusive prefix of the counts), and how many there are
  redU[lid] = count;
  workgroupBarrier();
  for (var s = 1u; s < WG; s *= 2u) {
    var add = 0u;
    if (lid >= s) { add = redU[lid - s]; }
    workgroupBarrier();
    redU[lid] += add;
    workgroupBarrier();
  }
  candStart[lid] = redU[lid] - count;
  if (lid == WG - 1u) { sharedU = redU[lid]; }
  let c = workgroupUniformLoad(&sharedU);

  // 2. the threshold
  let lo = part[H_LO];
  let hi = part[H_HI];
  let before = sumU(lid, certainCount);   // tokens above every candidate (dispatch 3's own bins)
  let truncK = p.topK > 0u && p.topK < p.n;
  let truncP = p.topP < 1.0;
  var threshold = 0u;   // keeps everything
  if (lo <= hi && c > 0u) {
    if (c <= CAP) {
      threshold = thresholdSorted(lid, c, m, certainSum, allSum, before, truncK, truncP);
    } else {
      threshold = thresholdRadix(lid, m, certainSum, allSum, before, truncK, truncP);
    }
  }

  // 3. the kept mass of each chunk, a prefix sum over chunks, the chunk that holds u · total
  var mass = 0.0;
  var kept = 0u;
  if (lid < p.chunks) {
    mass = certain;
    kept = record(lid, R_CERTAIN_COUNT);
    for (var j = 0u; j < count; j++) {
      let zj = bitcast<f32>(cand[lid * p.chunkSize + j]);
      if (orderKey(zj) >= threshold) {
        mass += exp(zj - m);
        kept++;
      }
    }
  }
  let chunkScan = scanF(lid, mass);
  chunkIncl[lid] = chunkScan.y;
  if (lid == 0u) {
    atomicStore(&pick, NONE);
    atomicStore(&lastA, 0u);
    atomicStore(&lastB, 0u);
  }
  workgroupBarrier();
  let goal = p.u * chunkIncl[WG - 1u];
  if (lid < p.chunks) {
    if (chunkScan.x <= goal && goal < chunkScan.y) { atomicMin(&pick, lid); }
    if (mass > 0.0) { atomicMax(&lastA, lid + 1u); }
    if (kept > 0u) { atomicMax(&lastB, lid + 1u); }
  }
  workgroupBarrier();
  let crossing = atomicLoad(&pick) != NONE;
  if (lid == 0u) {
    // no chunk holds the goal (rounding, or a zero total): the last chunk with mass, else with a kept token
    let a = atomicLoad(&lastA);
    sharedU = select(select(max(atomicLoad(&lastB), 1u) - 1u, a - 1u, a > 0u), atomicLoad(&pick), crossing);
  }
  let g = workgroupUniformLoad(&sharedU);
  let chunkBefore = select(0.0, chunkIncl[max(g, 1u) - 1u], g > 0u);

  // 4. inside chunk g: contiguous blocks per invocation, a prefix sum, the first crossing
  let start = g * p.chunkSize;
  let end = min(start + p.chunkSize, p.n);
  let per = (end - start + WG - 1u) / WG;
  let b0 = min(start + lid * per, end);
  let b1 = min(b0 + per, end);
  var own = 0.0;
  var lastPositive = NONE;
  var lastKept = NONE;
  for (var i = b0; i < b1; i++) {
    let zi = z[i];
    if (orderKey(zi) >= threshold) {
      let w = exp(zi - m);
      own += w;
      lastKept = i;
      if (w > 0.0) { lastPositive = i; }
    }
  }
  let blockScan = scanF(lid, own);
  if (lid == 0u) {
    atomicStore(&pick, NONE);
    atomicStore(&lastA, 0u);
    atomicStore(&lastB, 0u);
  }
  workgroupBarrier();
  if (crossing && chunkBefore + blockScan.x <= goal && goal < chunkBefore + blockScan.y) {
    var run = chunkBefore + blockScan.x;
    var chosen = NONE;
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
    if (chosen != NONE) { atomicMin(&pick, chosen); }
  }
  if (lastPositive != NONE) { atomicMax(&lastA, lastPositive + 1u); }
  if (lastKept != NONE) { atomicMax(&lastB, lastKept + 1u); }
  workgroupBarrier();
  if (lid == 0u) {
    let a = atomicLoad(&lastA);
    let fallback = select(max(atomicLoad(&lastB), 1u) - 1u, a - 1u, a > 0u);
    let chosen = atomicLoad(&pick);
    // every z −Inf: no softmax exists (the reference's probabilities are all NaN); it takes the last id
    let drawn = select(select(chosen, fallback, chosen == NONE), p.n - 1u, noneFinite);
    token[0] = select(drawn, NON_FINITE, flagged);
  }
}
