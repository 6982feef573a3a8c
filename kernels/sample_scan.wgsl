// sample_scan.wgsl — sampling, dispatch 1 of 4 (ops/sample.ts has the whole algorithm): the scaled
// logits z and each chunk's range, one workgroup per chunk of the vocabulary.
//
//   z_i = logits_i / temperature, except for ids in `recent` (HF RepetitionPenaltyLogitsProcessor):
//         z_i = (logits_i > 0 ? logits_i / penalty : logits_i · penalty) / temperature
//   record g: max z, min finite z, whether the chunk's logits hold a NaN or +Inf, whether it holds a
//   finite z
//
// It also zeroes the histogram that dispatch 2 accumulates into (dispatches in one pass are ordered).
//
// Bindings:  @0 uniform Params   @1 logits: f32[n]   @2 recent: u32[max(1, nRecent)]
//            @3 z: f32[n]   @4 part: u32[HEADER + RECORD · chunks]   @5 hist: u32[2 · BINS]
// Dispatch:  workgroups (chunks); workgroup g owns elements [g · chunkSize, (g + 1) · chunkSize) ∩ [0, n),
//            invocation lid the elements start + lid, start + lid + WG, …

struct Params {
  n: u32,
  nRecent: u32,
  topK: u32,           // 0 or ≥ n: no top-k
  chunks: u32,
  chunkSize: u32,
  temperature: f32,    // > 0 (greedy decoding passes 1 with topK = 1, u = 0)
  topP: f32,           // ≥ 1: no top-p
  penalty: f32,        // 1: no penalty
  u: f32,              // uniform draw in [0, 1)
  fixedOne: f32,       // 2^S, the unit of the histogram's fixed-point masses (n · 2^S < 2^32)
}

override WG: u32 = 256;     // a power of two
override BINS: u32 = 512;   // histogram bins (dispatch 2)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> recent: array<u32>;
@group(0) @binding(3) var<storage, read_write> z: array<f32>;
@group(0) @binding(4) var<storage, read_write> part: array<u32>;
@group(0) @binding(5) var<storage, read_write> hist: array<u32>;

// part: a header the later dispatches fill, then one record per chunk (ops/sample.ts sizes it)
const HEADER: u32 = 8u;
const RECORD: u32 = 8u;
const R_MAX: u32 = 0u;     // f32 bits: max z of the chunk
const R_MIN: u32 = 1u;     // f32 bits: min finite z of the chunk
const R_FLAG: u32 = 2u;    // 1: the chunk's logits hold a NaN or +Inf
const R_FINITE: u32 = 7u;  // 1: the chunk holds a finite z

const F32_MAX: f32 = 0x1.fffffep+127f;

var<workgroup> redMax: array<f32, WG>;
var<workgroup> redMin: array<f32, WG>;
var<workgroup> nonFinite: atomic<u32>;   // workgroup memory starts zeroed
var<workgroup> anyFinite: atomic<u32>;

/** NaN or +Inf, from the bits (a compiler may fold `v != v` away). */
fn nanOrPosInf(v: f32) -> bool {
  let b = bitcast<u32>(v);
  return (b & 0x7fffffffu) > 0x7f800000u || b == 0x7f800000u;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = wid.x;
  let start = g * p.chunkSize;
  let end = min(start + p.chunkSize, p.n);
  for (var i = start + lid; i < end; i += WG) {
    let l = logits[i];
    if (nanOrPosInf(l)) { atomicOr(&nonFinite, 1u); }
    z[i] = l / p.temperature;
  }
  storageBarrier();
  for (var j = lid; j < p.nRecent; j += WG) {
    let id = recent[j];
    if (id >= start && id < end) {
      let l = logits[id];
      z[id] = select(l * p.penalty, l / p.penalty, l > 0.0) / p.temperature;  // duplicates write the same value
    }
  }
  storageBarrier();

  var hi = -F32_MAX;
  var lo = F32_MAX;
  for (var i = start + lid; i < end; i += WG) {
    let zi = z[i];
    hi = max(hi, zi);
    if ((bitcast<u32>(zi) & 0x7f800000u) != 0x7f800000u) {
      lo = min(lo, zi);
      atomicOr(&anyFinite, 1u);
    }
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
  if (lid == 0u) {
    let r = HEADER + RECORD * g;
    part[r + R_MAX] = bitcast<u32>(redMax[0]);
    part[r + R_MIN] = bitcast<u32>(redMin[0]);
    part[r + R_FLAG] = atomicLoad(&nonFinite);
    part[r + R_FINITE] = atomicLoad(&anyFinite);
  }
  for (var k = g * WG + lid; k < 2u * BINS; k += p.chunks * WG) { hist[k] = 0u; }
}
