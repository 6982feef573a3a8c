// swiglu.wgsl — the gated activation of the LLaMA MLP: y = silu(gate) · up.
//
//   silu(g) = g · sigmoid(g),   sigmoid(g) = 1 / (1 + e^(−g))   for g ≥ 0
//                                          = e^g / (1 + e^g)      for g < 0
// The two forms only ever exponentiate a non-positive number, so nothing overflows to inf for
// large |g| (silu → g for g → +∞, → −0 for g → −∞).
//
// Bindings:  @0 uniform Params { n }   @1 gate: act[n]   @2 up: act[n]   @3 y: act[n]
//            (operands over one binding are split: n and the bindings are one chunk, ops/chunks.ts)
// Dispatch:  1-D over n in workgroups of WG, folded (ops/util.ts grid1d): i = gid.x + gid.y·GRID_X·WG.
// One invocation computes one element.
//
// Precision (ops/precision.ts): `act` is f32, or f16 in the +f16(act) variant. There gate and up
// are read as f16, silu(gate) · up is computed in f32 and rounded once to f16 at the store (in f16,
// silu alone would already be rounded before the product).

alias act = f32;

struct Params { n: u32 }

override WG: u32 = 256;
override GRID_X: u32 = 32768;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate: array<act>;
@group(0) @binding(2) var<storage, read> up: array<act>;
@group(0) @binding(3) var<storage, read_write> y: array<act>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_X * WG;
  if (i >= p.n) { return; }
  let g = f32(gate[i]);
  let e = exp(-abs(g));                                   // in (0, 1]
  let sigmoid = select(e / (1.0 + e), 1.0 / (1.0 + e), g >= 0.0);
  y[i] = act(g * sigmoid * f32(up[i]));
}
