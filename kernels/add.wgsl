// add.wgsl — elementwise sum of two tensors of the same shape (ConvNeXt / LLaMA residuals).
//
//   y[i] = a[i] + b[i]          for i in [0, n)
//
// Bindings:  @0 uniform Params { n }   @1 a: act[n]   @2 b: act[n]   @3 y: act[n]
//            (operands over one binding are split: n and the bindings are one chunk, ops/chunks.ts)
// Dispatch:  1-D over n in workgroups of WG invocations, folded into a 2-D grid when n / WG exceeds
//            the per-dimension limit (ops/util.ts grid1d): flat id = gid.x + gid.y · GRID_X · WG.
// One invocation computes one element.
//
// Precision (ops/precision.ts): `act` is f32, or f16 in the +f16(act) variant. There the sum is one
// f16 addition: it equals the f32 sum rounded once to f16, so this is the only rounding point.

alias act = f32;

struct Params { n: u32 }

override WG: u32 = 256;
override GRID_X: u32 = 32768;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<act>;
@group(0) @binding(2) var<storage, read> b: array<act>;
@group(0) @binding(3) var<storage, read_write> y: array<act>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_X * WG;
  if (i >= p.n) { return; }
  y[i] = a[i] + b[i];
}
