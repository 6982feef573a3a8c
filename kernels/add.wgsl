// add.wgsl — elementwise sum of two f32 tensors of the same shape (ConvNeXt / LLaMA residuals).
//
//   y[i] = a[i] + b[i]          for i in [0, n)
//
// Bindings:  @0 uniform Params { n }   @1 a: f32[n]   @2 b: f32[n]   @3 y: f32[n]
//            (operands over one binding are split: n and the bindings are one chunk, ops/chunks.ts)
// Dispatch:  1-D over n in workgroups of WG invocations, folded into a 2-D grid when n / WG exceeds
//            the per-dimension limit (ops/util.ts grid1d): flat id = gid.x + gid.y · GRID_X · WG.
// One invocation computes one element.

struct Params { n: u32 }

override WG: u32 = 256;
override GRID_X: u32 = 32768;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_X * WG;
  if (i >= p.n) { return; }
  y[i] = a[i] + b[i];
}
