// cast.wgsl — converts an activation tensor between f32 and f16 (pixel values in, f32 reads out).
//
//   y[i] = dst(x[i])      f32 → f16: round to nearest, ties to even, as PyTorch's .half():
//                                    |x| ≥ 65520 → ±inf, |x| < 2⁻¹⁴ → f16 subnormals, NaN → NaN
//                         f16 → f32: exact
//
// WGSL leaves the rounding of a float conversion to the implementation (either neighbour may be
// chosen) and an out-of-range one indeterminate, so `round_to_f16` rounds explicitly, with integer
// arithmetic on the f32 bits (and WGSL's `round`, which ties to even, for the subnormal range): its
// result is an f32 that f16 represents exactly (or ±inf, or NaN), so the conversion `dst(…)` that
// stores it has nothing left to round. It runs only where dst is f16 (ROUND_TO_F16, set by the op).
// What no WGSL code can force is that a device keeps f16 subnormals (below 2⁻¹⁴) when it converts
// them: lavapipe does (spec/kernels/cast.spec.ts runs every f16 bit pattern through, and fails on a
// device that flushes them).
//
// Bindings:  @0 uniform Params { n }   @1 x: src[n]   @2 y: dst[n]
//            (operands over one binding are split: n and the bindings are one chunk, ops/chunks.ts)
// Dispatch:  1-D over n in workgroups of WG invocations, folded (ops/util.ts grid1d):
//            i = gid.x + gid.y · GRID_X · WG.
// One invocation converts one element.
//
// Precision (ops/precision.ts): `src` and `dst` are f32, or f16 in the two variants the op uses:
// +f16(dst) (f32 → f16) and +f16(src) (f16 → f32); a same-dtype cast is a buffer copy (ops/cast.ts).
// The only rounding point is `round_to_f16` in the f32 → f16 direction: round to nearest even.

alias src = f32;
alias dst = f32;

struct Params { n: u32 }

override WG: u32 = 256;
override GRID_X: u32 = 32768;
override ROUND_TO_F16: bool = false;   // true when dst is f16

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<src>;
@group(0) @binding(2) var<storage, read_write> y: array<dst>;

// v rounded to the nearest f16 (ties to even), as an f32: ±inf past the f16 range, NaN stays NaN.
fn round_to_f16(v: f32) -> f32 {
  let bits = bitcast<u32>(v);
  let sign = bits & 0x80000000u;
  let magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) { return v; }                              // NaN
  if (magnitude >= 0x477ff000u) { return bitcast<f32>(sign | 0x7f800000u); } // ≥ 65520: rounds past 65504 → ±inf
  if (magnitude < 0x38800000u) {
    // below 2⁻¹⁴ (the smallest normal f16) the f16 step is 2⁻²⁴: round |v|·2²⁴ (exact) to an integer
    let r = round(bitcast<f32>(magnitude) * 16777216.0) * 5.9604644775390625e-8;
    return bitcast<f32>(sign | bitcast<u32>(r));
  }
  // normal f16 range: keep 10 of the 23 mantissa bits, ties to even (a carry moves into the exponent)
  return bitcast<f32>((bits + 0xfffu + ((bits >> 13u) & 1u)) & 0xffffe000u);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_X * WG;
  if (i >= p.n) { return; }
  let v = f32(x[i]);
  y[i] = dst(select(v, round_to_f16(v), ROUND_TO_F16));
}
