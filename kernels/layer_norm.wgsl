// layer_norm.wgsl — LayerNorm over the last dimension (PyTorch nn.LayerNorm / ConvNeXt's
// channels-last LayerNorm): for each row r of C values,
//
//   mean = Σ x / C,   var = Σ (x − mean)² / C   (biased, two passes: no E[x²] − mean² cancellation)
//   y[r, c] = (x[r, c] − mean) / sqrt(var + eps) · gamma[c] + beta[c]
//
// Bindings:  @0 uniform Params { rows, C, eps }   @1 x: act[rows·C]   @2 gamma: f32[C]
//            @3 beta: f32[C]   @4 y: act[rows·C]      (x / y may be byte ranges of whole rows)
// Dispatch:  workgroups of WG = TPR · (WG / TPR) invocations: TPR threads ("a segment") per row,
//            WG / TPR rows per workgroup, so short rows (C = 192) do not leave most threads idle.
//            The workgroup grid is folded: workgroup w = wid.x + wid.y · GRID_X (ops/util.ts grid1d).
// One segment normalizes one row: each thread takes the elements lane, lane + TPR, … (adjacent
// threads read adjacent floats: coalesced) and keeps the first CACHED of them in registers, so a row
// of C ≤ CACHED · TPR is read from memory once (ops/chunks.ts threadsPerRow sizes TPR for that; longer rows
// re-read the rest per pass). The segment adds its partials by a tree in workgroup memory.
//
// Precision (ops/precision.ts): `act` is f32, or f16 in the +f16(act) variant (gamma and beta are
// f32 weights either way). Elements are widened to f32 as they are read, so the sums, mean,
// variance and every step of y are f32 (an f16 (x − mean)² would overflow past |x − mean| = 256);
// the only rounding is y's store.

alias act = f32;

struct Params { rows: u32, C: u32, eps: f32 }

override WG: u32 = 256;       // invocations per workgroup
override TPR: u32 = 64;       // threads per row: a power of two dividing WG
override GRID_X: u32 = 32768;
const CACHED: u32 = 8u;       // row elements per thread held in registers

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<act>;

var<workgroup> partial: array<f32, WG>;

// Sum of `v` over the TPR threads of this thread's segment (every thread gets the total); the same
// in rms_norm.wgsl (spec/kernels/wgsl-helpers.spec.ts). Called by the whole workgroup (it contains barriers).
fn segment_sum(lid: u32, lane: u32, v: f32) -> f32 {
  partial[lid] = v;
  workgroupBarrier();
  for (var stride = TPR / 2u; stride > 0u; stride = stride / 2u) {
    if (lane < stride) { partial[lid] += partial[lid + stride]; }
    workgroupBarrier();
  }
  let total = partial[lid - lane];
  workgroupBarrier(); // `partial` is reused by the next call
  return total;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let lane = lid % TPR;
  let row = (wid.x + wid.y * GRID_X) * (WG / TPR) + lid / TPR;
  let valid = row < p.rows;   // rows past the end still join the barriers, but touch no memory
  let base = row * p.C;
  let C = select(0u, p.C, valid);
  let uncached = lane + CACHED * TPR;   // first element of this thread not kept in registers

  var v: array<f32, CACHED>;
  var s = 0.0;
  for (var i = 0u; i < CACHED; i++) {
    let c = lane + i * TPR;
    if (c < C) { v[i] = f32(x[base + c]); s += v[i]; }
  }
  for (var c = uncached; c < C; c += TPR) { s += f32(x[base + c]); }
  let mean = segment_sum(lid, lane, s) / f32(p.C);

  var ss = 0.0;
  for (var i = 0u; i < CACHED; i++) {
    let d = v[i] - mean;
    if (lane + i * TPR < C) { ss += d * d; }
  }
  for (var c = uncached; c < C; c += TPR) {
    let d = f32(x[base + c]) - mean;
    ss += d * d;
  }
  let inv_std = inverseSqrt(segment_sum(lid, lane, ss) / f32(p.C) + p.eps);

  for (var i = 0u; i < CACHED; i++) {
    let c = lane + i * TPR;
    if (c < C) { y[base + c] = act((v[i] - mean) * inv_std * gamma[c] + beta[c]); }
  }
  for (var c = uncached; c < C; c += TPR) {
    y[base + c] = act((f32(x[base + c]) - mean) * inv_std * gamma[c] + beta[c]);
  }
}
