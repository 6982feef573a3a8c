// argmax.wgsl — index of the maximum of each row (greedy decoding over the logits).
//
//   out[r] = min { j : x[r, j] = max_k x[r, k] }     (ties → lowest index)
//   out[r] = NON_FINITE when the row holds a NaN or +Inf (overflowed or corrupt logits: no token is
//            "the maximum"); −Inf is an ordinary value (a masked token). The flag costs no extra pass:
//            the scan that looks for the maximum sees every value, and the flag travels in the id.
//
// Bindings:  @0 uniform Params { rows, n }   @1 x: f32[rows · n]   @2 out: u32[rows]
// Dispatch:  one workgroup of WG invocations per row: workgroups (rows, 1, 1).
// Invocation i scans columns i, i + WG, i + 2·WG, … (coalesced) keeping its best (value, index),
// then the workgroup reduces the WG candidates by a tree in workgroup memory.

struct Params { rows: u32, n: u32 }

override WG: u32 = 256;   // a power of two
override NON_FINITE: u32;  // ops/argmax.ts NON_FINITE_ID, above any vocabulary index

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

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

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x;
  let base = row * p.n;
  var bv = 0.0;
  var bi = NONE;
  for (var j = lid; j < p.n; j += WG) {
    let v = x[base + j];
    if (nanOrPosInf(v)) { atomicOr(&nonFinite, 1u); }
    if (better(v, j, bv, bi)) { bv = v; bi = j; }
  }
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
  if (lid == 0u) { out[row] = select(bestIndex[0], NON_FINITE, atomicLoad(&nonFinite) != 0u); }
}
