// rms_norm.wgsl — RMSNorm over the last dimension (LLaMA / HF LlamaRMSNorm, computed in f32):
// for each row r of C values,
//
//   y[r, c] = x[r, c] / sqrt(Σ x² / C + eps) · gamma[c]
//
// Bindings:  @0 uniform Params { rows, C, eps }   @1 x: act[rows·C]   @2 gamma: f32[C]
//            @3 y: act[rows·C]      (x / y may be byte ranges of whole rows)
// Dispatch:  workgroups of WG invocations: TPR threads ("a segment") per row, WG / TPR rows per
//            workgroup. The workgroup grid is folded: workgroup w = wid.x + wid.y · GRID_X.
// One segment normalizes one row: each thread sums the squares of elements lane, lane + TPR, …
// (coalesced), keeping the first CACHED of them in registers so that a row of C ≤ CACHED · TPR is
// read from memory once; the segment adds its partials by a tree in workgroup memory, then each
// thread scales its elements.
//
// Precision (ops/precision.ts): `act` is f32, or f16 in the +f16(act) variant (gamma is an f32
// weight either way). Elements are widened to f32 as they are read, so the sum of squares, the
// mean square and every step of y are f32 (an f16 x² would overflow past |x| = 256); the only
// rounding is y's store.

alias act = f32;

struct Params { rows: u32, C: u32, eps: f32 }

override WG: u32 = 256;       // invocations per workgroup
override TPR: u32 = 64;       // threads per row: a power of two dividing WG
override GRID_X: u32 = 32768;
const CACHED: u32 = 8u;       // row elements per thread held in registers

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<act>;

var<workgroup> partial: array<f32, WG>;

// Sum of `v` over the TPR threads of this thread's segment (every thread gets the total); the same
// in layer_norm.wgsl (spec/kernels/wgsl-helpers.spec.ts).
fn segment_sum(lid: u32, lane: u32, v: f32) -> f32 {
  partial[lid] = v;
  workgroupBarrier();
  for (var stride = TPR / 2u; stride > 0u; stride = stride / 2u) {
    if (lane < stride) { partial[lid] += partial[lid + stride]; }
    workgroupBarrier();
  }
  let total = partial[lid - lane];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let lane = lid % TPR;
  let row = (wid.x + wid.y * GRID_X) * (WG / TPR) + lid / TPR;
  let valid = row < p.rows;   // rows past the end still join the barrier, but touch no memory
  let base = row * p.C;
  let C = select(0u, p.C, valid);
  let uncached = lane + CACHED * TPR;   // first element of this thread not kept in registers

  var v: array<f32, CACHED>;
  var ss = 0.0;
  for (var i = 0u; i < CACHED; i++) {
    let c = lane + i * TPR;
    if (c < C) { v[i] = f32(x[base + c]); ss += v[i] * v[i]; }
  }
  for (var c = uncached; c < C; c += TPR) {
    let u = f32(x[base + c]);
    ss += u * u;
  }
  let inv_rms = inverseSqrt(segment_sum(lid, lane, ss) / f32(p.C) + p.eps);

  for (var i = 0u; i < CACHED; i++) {
    let c = lane + i * TPR;
    if (c < C) { y[base + c] = act(v[i] * inv_rms * gamma[c]); }
  }
  for (var c = uncached; c < C; c += TPR) {
    y[base + c] = act(f32(x[base + c]) * inv_rms * gamma[c]);
  }
}
