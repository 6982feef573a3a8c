// sample_gather.wgsl — sampling, dispatch 3 of 4 (ops/sample.ts has the whole algorithm): choose
// the bins that can hold the top-k / top-p threshold, then, per chunk, sum the mass of the tokens
// certainly kept and collect the few candidates in the chosen bins.
//
// Every workgroup reads the histogram of dispatch 2 and makes the same choice (cum = prefix over
// bins 0 … b, bin 0 holding the largest z):
//   kb = the first bin with cum.count ≥ k                      (top-k; else the last bin)
//   top-p: lo = the first bin with cum.mass ≥ p · T_lo · (1 − EPS), where T_lo bounds the total
//          kept mass from below (all bins, or with top-k the bins before kb); hi = kb with top-k
//          (dispatch 4 needs every token ≥ the k-th for the total), else the first bin with
//          cum.mass ≥ p · T_hi · (1 + EPS), T_hi = all bins. The histogram's masses carry a relative
//          error ≤ 2^−S per token (≈ 4e-6 for 32000 tokens), far inside EPS, so the exact threshold
//          of dispatch 4 lies in bins lo … hi.
//   top-k only: lo = hi = kb.     Neither: lo = BINS (every token certain, no candidates).
// Tokens in bins < lo are above the threshold: kept for sure. Tokens in bins lo … hi are candidates.
// Per chunk g (the record of dispatch 1):
//   (bins as in dispatch 2, with its 1 / width from the header; unused when nothing is truncated)
//   certain = Σ_{bin < lo} e^(z − m),  all = Σ e^(z − m),  certainCount,  candidates: their z, in index
//   order, at cand[g · chunkSize …] (an ordered compaction: each invocation counts the candidates of
//   its contiguous block, a prefix sum over the workgroup says where each block writes).
// Workgroup 0 writes (lo, hi) to the header.
//
// Bindings:  @0 uniform Params   @1 z: f32[n]   @2 part: u32[HEADER + RECORD · chunks]
//            @3 hist: u32[2 · BINS]   @4 cand: u32[chunks · chunkSize] (f32 bits)
// Dispatch:  workgroups (chunks); invocation lid handles the contiguous block [start + lid · per, + per),
//            per = ⌈chunk length / WG⌉

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

override WG: u32 = 256;     // a power of two
override BINS: u32 = 512;   // a multiple of WG

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read_write> part: array<u32>;
@group(0) @binding(3) var<storage, read> hist: array<u32>;
@group(0) @binding(4) var<storage, read_write> cand: array<u32>;

const HEADER: u32 = 8u;
const RECORD: u32 = 8u;
const R_MAX: u32 = 0u;
const R_MIN: u32 = 1u;
const R_CAND: u32 = 3u;      // number of candidates of the chunk
const R_CERTAIN: u32 = 4u;   // f32 bits
const R_ALL: u32 = 5u;       // f32 bits
const R_CERTAIN_COUNT: u32 = 6u;
const H_LO: u32 = 0u;
const H_HI: u32 = 1u;
const H_INV_WIDTH: u32 = 3u; // 1 / bin width (f32 bits), from dispatch 2

const F32_MAX: f32 = 0x1.fffffep+127f;
const SPAN: f32 = 64.0;
const EPS: f32 = 1.0 / 1024.0;

var<workgroup> redMax: array<f32, WG>;
var<workgroup> redMin: array<f32, WG>;
var<workgroup> scanU: array<u32, WG>;
var<workgroup> cumCount: array<u32, BINS>;
var<workgroup> cumMass: array<f32, BINS>;
var<workgroup> firstBin: atomic<u32>;
var<workgroup> found: u32;

/** (max z, min finite z) over all chunks, from the records of dispatch 1. */
fn globalRange(lid: u32) -> vec2f {
  var hi = -F32_MAX;
  var lo = F32_MAX;
  for (var c = lid; c < p.chunks; c += WG) {
    hi = max(hi, bitcast<f32>(part[HEADER + RECORD * c + R_MAX]));
    lo = min(lo, bitcast<f32>(part[HEADER + RECORD * c + R_MIN]));
  }
  redMax[lid] = hi;
  redMin[lid] = lo;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) {
      redMax[lid] = max(redMax[lid], redMax[lid + s]);
      redMin[lid] = min(redMin[lid], redMin[lid + s]);
    }
    workgroupBarrier();
  }
  let r = vec2f(redMax[0], redMin[0]);
  workgroupBarrier();
  return r;
}

/** The bin of z: ⌊(m − z) · scale⌋, capped at BINS − 1 (also for −Inf and NaN). */
fn binOf(zi: f32, m: f32, scale: f32) -> u32 {
  let d = (m - zi) * scale;
  return select(BINS - 1u, u32(d), d < f32(BINS - 1u));
}

/** Exclusive prefix sum of x over the workgroup (Hillis–Steele); .y is the workgroup's total. */
fn exclusiveScan(lid: u32, x: u32) -> vec2u {
  scanU[lid] = x;
  workgroupBarrier();
  for (var s = 1u; s < WG; s *= 2u) {
    var add = 0u;
    if (lid >= s) { add = scanU[lid - s]; }
    workgroupBarrier();
    scanU[lid] += add;
    workgroupBarrier();
  }
  let r = vec2u(scanU[lid] - x, scanU[WG - 1u]);
  workgroupBarrier();
  return r;
}

/** cumCount / cumMass: inclusive prefix sums of the histogram over bins (each invocation owns BINS / WG bins). */
fn prefixBins(lid: u32, scale: f32) {
  let per = BINS / WG;
  let b0 = lid * per;
  var count = 0u;
  for (var b = b0; b < b0 + per; b++) { count += hist[b]; }
  let before = exclusiveScan(lid, count).x;
  // masses: the same blocked scan in f32 (a second pass over the invocations' totals)
  var mass = 0.0;
  for (var b = b0; b < b0 + per; b++) { mass += f32(hist[BINS + b]) / p.fixedOne * exp(-f32(b) / scale); }
  redMax[lid] = mass;
  workgroupBarrier();
  for (var s = 1u; s < WG; s *= 2u) {
    var add = 0.0;
    if (lid >= s) { add = redMax[lid - s]; }
    workgroupBarrier();
    redMax[lid] += add;
    workgroupBarrier();
  }
  var runMass = select(0.0, redMax[max(lid, 1u) - 1u], lid > 0u);
  var runCount = before;
  for (var b = b0; b < b0 + per; b++) {
    runCount += hist[b];
    runMass += f32(hist[BINS + b]) / p.fixedOne * exp(-f32(b) / scale);
    cumCount[b] = runCount;
    cumMass[b] = runMass;
  }
  workgroupBarrier();
}

/** The first bin whose cumulative count (mass when byMass) reaches target; BINS − 1 when none does. */
fn firstBinReaching(lid: u32, byMass: bool, countTarget: u32, massTarget: f32) -> u32 {
  if (lid == 0u) { atomicStore(&firstBin, BINS - 1u); }
  workgroupBarrier();
  let per = BINS / WG;
  for (var b = lid * per; b < (lid + 1u) * per; b++) {
    let reached = select(cumCount[b] >= countTarget, cumMass[b] >= massTarget, byMass);
    if (reached) {
      atomicMin(&firstBin, b);
      break;
    }
  }
  workgroupBarrier();
  if (lid == 0u) { found = atomicLoad(&firstBin); }
  return workgroupUniformLoad(&found);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = wid.x;
  let range = globalRange(lid);
  let m = range.x;
  let scale = bitcast<f32>(part[H_INV_WIDTH]);   // dispatch 2's, so every token lands in the same bin

  // 1. which bins hold the threshold
  let truncK = p.topK > 0u && p.topK < p.n;
  let truncP = p.topP < 1.0;
  var lo = BINS;
  var hi = 0u;
  if (truncK || truncP) {
    prefixBins(lid, scale);
    var kb = BINS - 1u;
    if (truncK) { kb = firstBinReaching(lid, false, p.topK, 0.0); }
    if (truncP) {
      let all = cumMass[BINS - 1u];
      let totalLo = select(all, select(0.0, cumMass[max(kb, 1u) - 1u], kb > 0u), truncK);
      lo = firstBinReaching(lid, true, 0u, p.topP * totalLo * (1.0 - EPS));
      // with top-k, dispatch 4 needs every token ≥ the k-th (its total mass): collect through kb
      hi = select(firstBinReaching(lid, true, 0u, p.topP * all * (1.0 + EPS)), kb, truncK);
    } else {
      lo = kb;
      hi = kb;
    }
  }

  // 2. this chunk, in contiguous blocks per invocation: certain mass, all mass, candidates
  let start = g * p.chunkSize;
  let end = min(start + p.chunkSize, p.n);
  let per = (end - start + WG - 1u) / WG;
  let b0 = min(start + lid * per, end);
  let b1 = min(b0 + per, end);
  var certain = 0.0;
  var all = 0.0;
  var certainCount = 0u;
  var mine = 0u;
  for (var i = b0; i < b1; i++) {
    let zi = z[i];
    let w = exp(zi - m);
    all += w;
    let b = binOf(zi, m, scale);
    if (b < lo) {
      certain += w;
      certainCount++;
    } else if (b <= hi) {
      mine++;
    }
  }
  // the candidates in index order: a prefix sum of the blocks' counts says where each block writes
  var count = 0u;
  if (lo <= hi) {
    let slot = exclusiveScan(lid, mine);
    count = slot.y;
    var at = start + slot.x;
    for (var i = b0; i < b1 && mine > 0u; i++) {
      let zi = z[i];
      let b = binOf(zi, m, scale);
      if (b >= lo && b <= hi) {
        cand[at] = bitcast<u32>(zi);
        at++;
      }
    }
  }
  redMax[lid] = certain;
  redMin[lid] = all;
  scanU[lid] = certainCount;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) {
      redMax[lid] += redMax[lid + s];
      redMin[lid] += redMin[lid + s];
      scanU[lid] += scanU[lid + s];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let r = HEADER + RECORD * g;
    part[r + R_CAND] = count;
    part[r + R_CERTAIN] = bitcast<u32>(redMax[0]);
    part[r + R_ALL] = bitcast<u32>(redMin[0]);
    part[r + R_CERTAIN_COUNT] = scanU[0];
    if (g == 0u) {
      part[H_LO] = lo;
      part[H_HI] = hi;
    }
  }
}
