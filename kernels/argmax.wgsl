// argmax.wgsl — index of the maximum of each row (greedy decoding over the logits), over many
// workgroups per row.
//
//   out[r] = min { j : x[r, j] = max_k x[r, k] }     (ties → lowest index)
//   out[r] = NON_FINITE when the row holds a NaN or +Inf (overflowed or corrupt logits: no token is
//            "the maximum"); −Inf is an ordinary value (a masked token). The flag costs no extra pass:
//            the scan that looks for the maximum sees every value, and the flag travels in the id.
//
// Two entry points, two dispatches (a row of 32000 logits is 125 chunks of 256: one workgroup each,
// instead of one workgroup sweeping the whole row):
//   chunks  grid (C, rows), C = ⌈n / chunkSize⌉: workgroup (c, r) reduces columns
//           [c·chunkSize, (c + 1)·chunkSize) of row r to its best (value, index) and writes it to
//           parts[r, c] (index NON_FINITE when the chunk holds a NaN or +Inf). A row of one chunk
//           (C = 1) writes its answer straight to out[r], and the op skips the second dispatch.
//   rows    grid (rows): workgroup r reduces the C candidates of row r (in index order, so the
//           lowest index wins ties again) and writes out[r].
// Invocation i of a workgroup scans its elements i, i + WG, … (coalesced), then the workgroup
// reduces the WG candidates by a tree in workgroup memory.
//
// Bindings:  @0 uniform Params { rows, n, chunks, chunkSize }
//            @1 parts: u32[rows · chunks · 2] (value bits, index)   @2 out: u32[rows]
//            @3 x: f32[rows · n]   (chunks only)

struct Params { rows: u32, n: u32, chunks: u32, chunkSize: u32 }

override WG: u32 = 256;    // a power of two
override NON_FINITE: u32;  // ops/argmax.ts NON_FINITE_ID, above any vocabulary index

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> parts: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;

var<workgroup> bestValue: array<f32, WG>;
var<workgroup> bestIndex: array<u32, WG>;

var<workgroup> nonFinite: atomic<u32>;   // workgroup memory starts zeroed

const NONE: u32 = 0xffffffffu;   // "no candidate yet" (an invocation with no columns)

/** NaN or +Inf, from the bits (a compiler may fold `v != v` away). */
fn nanOrPosInf(v: f32) -> bool {
  let b = bitcast<u32>(v);
  return (b & 0x7fffffffu) > 0x7f800000u || b == 0x7f800000u;
}

/** True when candidate (v, i) beats (bv, bi): larger value, or equal value at a lower index. */
fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  return i != NONE && (bi == NONE || v > bv || (v == bv && i < bi));
}

/** Tree reduction of the WG candidates in workgroup memory; every invocation gets the winner's index. */
fn reduceBest(lid: u32, bv: f32, bi: u32) -> u32 {
  bestValue[lid] = bv;
  bestIndex[lid] = bi;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) {
      let v = bestValue[lid + stride];
      let i = bestIndex[lid + stride];
      if (better(v, i, bestValue[lid], bestIndex[lid])) {
        bestValue[lid] = v;
        bestIndex[lid] = i;
      }
    }
    workgroupBarrier();
  }
  return bestIndex[0];
}

@compute @workgroup_size(WG)
fn chunks(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let chunk = wid.x;
  let row = wid.y;
  let start = chunk * p.chunkSize;
  let end = min(start + p.chunkSize, p.n);
  let base = row * p.n;
  var bv = 0.0;
  var bi = NONE;
  for (var j = start + lid; j < end; j += WG) {
    let v = x[base + j];
    if (nanOrPosInf(v)) { atomicOr(&nonFinite, 1u); }
    if (better(v, j, bv, bi)) { bv = v; bi = j; }
  }
  let best = reduceBest(lid, bv, bi);
  if (lid == 0u) {
    let flagged = atomicLoad(&nonFinite) != 0u;
    if (p.chunks == 1u) {
      out[row] = select(best, NON_FINITE, flagged);
    } else {
      let slot = 2u * (row * p.chunks + chunk);
      parts[slot] = bitcast<u32>(bestValue[0]);
      parts[slot + 1u] = select(best, NON_FINITE, flagged);
    }
  }
}

@compute @workgroup_size(WG)
fn rows(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x;
  var bv = 0.0;
  var bi = NONE;
  for (var c = lid; c < p.chunks; c += WG) {
    let slot = 2u * (row * p.chunks + c);
    let v = bitcast<f32>(parts[slot]);
    let i = parts[slot + 1u];
    if (i == NON_FINITE) {
      atomicOr(&nonFinite, 1u);
    } else if (better(v, i, bv, bi)) {
      bv = v;
      bi = i;
    }
  }
  let best = reduceBest(lid, bv, bi);
  if (lid == 0u) { out[row] = select(best, NON_FINITE, atomicLoad(&nonFinite) != 0u); }
}
