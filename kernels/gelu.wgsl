// gelu.wgsl — exact (erf) GELU, as in PyTorch's nn.GELU() / HF "gelu" (ConvNeXt MLP activation).
//
//   y[i] = 0.5 · x · (1 + erf(x / √2)) = 0.5 · x · erfc(−x / √2)
//
// WGSL has no erf, so `erfc_f32` below implements it in two ranges (|z| = |x| / √2):
//   |z| < 0.5   erf(z) by its Maclaurin series z·(2/√π)·Σ (−z²)ⁿ / (n!·(2n+1)), 8 terms in Horner
//               form: the terms shrink ≥ 12× each, so truncation < 1e-10 and f32 rounding ~1 ulp.
//   |z| ≥ 0.5   erfc(|z|) by the Chebyshev fit of Numerical Recipes (2nd ed. §6.2, `erfcc`):
//               t = 1/(1 + |z|/2),  erfc = t·exp(−z² − 1.26551223 + t·(1.00002368 + …)),
//               fractional error < 1.2e-7 everywhere; erfc(−|z|) = 2 − erfc(|z|). exp(−z²) is
//               evaluated as exp(−h²)·exp((h − |z|)(h + |z|)) with h = |z| rounded to 12 bits, so h² is
//               exact and the rounding of z² (up to 36 here) does not cost relative accuracy.
// Computing 1 + erf as erfc(−x/√2) keeps GELU's relative accuracy for large negative x, where
// 1 + erf(x/√2) would cancel to 0. Measured by emulating this f32 arithmetic (with a correctly
// rounded exp) against a double-precision erfc (ops/gelu.ts erfc64) over z ∈ [−6, 6]:
// |error of erfc(z) = 1 − erf(z)| ≤ 2.0e-7 absolute (1–2 ulp of values in [1, 2)) and ≤ 4.1e-7
// relative for z > 0 (the GELU tail); a GPU's exp adds its own few ulp. spec/gelu.spec.ts holds the
// kernel to 1e-7 + 1e-6·|ref| over x ∈ [−8, 8].
//
// Bindings:  @0 uniform Params { n }   @1 x: act[n]   @2 y: act[n]
//            (operands over one binding are split: n and the bindings are one chunk, ops/chunks.ts)
// Dispatch:  1-D over n in workgroups of WG, folded (ops/util.ts grid1d): i = gid.x + gid.y·GRID_X·WG.
// One invocation computes one element.
//
// Precision (ops/precision.ts): `act` is f32, or f16 in the +f16(act) variant. There x is read as
// f16, GELU is computed in f32 as above, and the result rounded once to f16 at the store: the
// f16-rounding of the f32 kernel's value (within one f16 ulp of f16Ref(geluRef), the f32 kernel's
// ~1e-6 error can move a value across a rounding boundary).

alias act = f32;

struct Params { n: u32 }

override WG: u32 = 256;
override GRID_X: u32 = 32768;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read_write> y: array<act>;

// erfc(z) for any f32 z (see the header for the method and its accuracy).
fn erfc_f32(z: f32) -> f32 {
  let a = abs(z);
  if (a < 0.5) {
    let s = a * a;
    var sum = -1.0 / 75600.0;          // n = 7: (−1)ⁿ / (n!·(2n+1))
    sum = sum * s + 1.0 / 9360.0;      // n = 6
    sum = sum * s - 1.0 / 1320.0;      // n = 5
    sum = sum * s + 1.0 / 216.0;       // n = 4
    sum = sum * s - 1.0 / 42.0;        // n = 3
    sum = sum * s + 1.0 / 10.0;        // n = 2
    sum = sum * s - 1.0 / 3.0;         // n = 1
    sum = sum * s + 1.0;               // n = 0
    let erf_z = z * 1.1283791670955126 * sum;   // 2/√π
    return 1.0 - erf_z;
  }
  let t = 1.0 / (1.0 + 0.5 * a);
  var q = 0.17087277;
  q = q * t - 0.82215223;
  q = q * t + 1.48851587;
  q = q * t - 1.13520398;
  q = q * t + 0.27886807;
  q = q * t - 0.18628806;
  q = q * t + 0.09678418;
  q = q * t + 0.37409196;
  q = q * t + 1.00002368;
  q = q * t - 1.26551223;
  let h = bitcast<f32>(bitcast<u32>(a) & 0xfffff000u);
  let erfc_a = t * exp(-h * h) * exp((h - a) * (h + a) + q);
  return select(2.0 - erfc_a, erfc_a, z >= 0.0);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_X * WG;
  if (i >= p.n) { return; }
  let v = f32(x[i]);
  y[i] = act(0.5 * v * erfc_f32(-v * 0.70710678118654752));
}
