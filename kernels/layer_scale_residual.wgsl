// layer_scale_residual.wgsl — the end of a ConvNeXt block: layer scale, then the residual add.
//
//   y[i] = residual[i] + gamma[i mod C] · x[i]        (gamma scales the last dimension, C)
//
// Bindings:  @0 uniform Params { n, C }   @1 x: f32[n]   @2 residual: f32[n]   @3 gamma: f32[C]
//            @4 y: f32[n]        (x / residual / y may be byte ranges starting on a whole row)
// Dispatch:  1-D over n in workgroups of WG, folded (ops/util.ts grid1d): i = gid.x + gid.y·GRID_X·WG.
// One invocation computes one element.

struct Params { n: u32, C: u32 }

override WG: u32 = 256;
override GRID_X: u32 = 32768;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> residual: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_X * WG;
  if (i >= p.n) { return; }
  y[i] = residual[i] + gamma[i % p.C] * x[i];
}
