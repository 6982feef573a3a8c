// sample_histogram.wgsl — sampling, dispatch 2 of 4 (ops/sample.ts has the whole algorithm): a
// histogram of z over BINS bins below the maximum, with each bin's count and softmax mass.
//
//   m = max z, width = min(m − min finite z, SPAN) / BINS       (from the records of dispatch 1)
//   bin(z) = ⌊(m − z) · (1 / width)⌋, capped at BINS − 1        (bin 0 holds the largest values;
//            monotone: z ≥ z' ⇒ bin(z) ≤ bin(z'); −Inf and everything below m − SPAN go to the last)
//   hist.count[b] = #{i : bin(z_i) = b}
//   hist.mass[b]  = Σ_{bin(z_i) = b} round(e^(z_i − m + b · width) · 2^S)   (fixed point, in units of
//                   the bin's top mass e^(−b · width); integer adds, so the order does not matter)
// The masses only choose which bins dispatch 3 collects (with a margin); every mass that decides a
// token is recomputed exactly in f32 from z. Workgroup 0 writes 1 / width to the header: dispatch 3
// must put every token in the same bin, and a multiplication by the same f32 is exact everywhere
// (a division may be compiled as an approximate reciprocal).
//
// Bindings:  @0 uniform Params   @1 z: f32[n]   @2 part: u32[HEADER + RECORD · chunks]
//            @3 hist: atomic u32[2 · BINS] (counts, then masses; zeroed by dispatch 1)
//            part: workgroup 0 writes header word H_INV_WIDTH (f32 bits)
// Dispatch:  workgroups (chunks), as sample_scan.wgsl. A workgroup counts its chunk into workgroup
//            memory, then adds its non-empty bins to hist.

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
override BINS: u32 = 512;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read_write> part: array<u32>;
@group(0) @binding(3) var<storage, read_write> hist: array<atomic<u32>>;

const HEADER: u32 = 8u;
const RECORD: u32 = 8u;
const R_MAX: u32 = 0u;
const R_MIN: u32 = 1u;
const H_INV_WIDTH: u32 = 3u;

const F32_MAX: f32 = 0x1.fffffep+127f;
const SPAN: f32 = 64.0;   // bins cover z ∈ (m − 64, m]: below, e^(z − m) < 2e-28

var<workgroup> redMax: array<f32, WG>;
var<workgroup> redMin: array<f32, WG>;
var<workgroup> binCount: array<atomic<u32>, BINS>;
var<workgroup> binMass: array<atomic<u32>, BINS>;

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

/** 1 / the width of one bin: BINS over the finite range of z below m (at most SPAN). */
fn binScale(m: f32, lo: f32) -> f32 {
  return f32(BINS) / max(min(m - lo, SPAN), 1e-30);
}

/** The bin of z: ⌊(m − z) · scale⌋, capped at BINS − 1 (also for −Inf and NaN). */
fn binOf(zi: f32, m: f32, scale: f32) -> u32 {
  let d = (m - zi) * scale;
  return select(BINS - 1u, u32(d), d < f32(BINS - 1u));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let range = globalRange(lid);
  let m = range.x;
  let scale = binScale(m, range.y);
  if (wid.x == 0u && lid == 0u) { part[H_INV_WIDTH] = bitcast<u32>(scale); }
  let start = wid.x * p.chunkSize;
  let end = min(start + p.chunkSize, p.n);
  for (var i = start + lid; i < end; i += WG) {
    let zi = z[i];
    let b = binOf(zi, m, scale);
    let top = clamp(exp((zi - m) + f32(b) / scale), 0.0, 1.0);   // e^(z − m) in units of e^(−b · width)
    atomicAdd(&binCount[b], 1u);
    atomicAdd(&binMass[b], u32(top * p.fixedOne + 0.5));
  }
  workgroupBarrier();
  for (var b = lid; b < BINS; b += WG) {
    let c = atomicLoad(&binCount[b]);
    if (c != 0u) {
      atomicAdd(&hist[b], c);
      atomicAdd(&hist[BINS + b], atomicLoad(&binMass[b]));
    }
  }
}
