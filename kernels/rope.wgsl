// rope.wgsl — rotary position embedding, HF LLaMA "rotate_half" convention.
//
// For row t (position pos = positionOffset + t), head h, and i < D/2 (D = headDim, half = D/2):
//   angle = pos · inv_freq[i]            (one f32 multiply, exactly as PyTorch forms it)
//   x0 = x[t, h·D + i],  x1 = x[t, h·D + i + half]
//   y[t, h·D + i]        = x0·cos(angle) − x1·sin(angle)
//   y[t, h·D + i + half] = x1·cos(angle) + x0·sin(angle)
// inv_freq[i] = 1 / theta^(2i/D) is computed on the CPU in f32 (ops/rope.ts) and passed in the
// params block: WGSL's pow is far less accurate than the 1-ulp powf PyTorch uses, and at position
// 4096 a 1e-6 relative error in inv_freq already moves the angle by 4e-3 rad.
//
// cos / sin: the builtins are only specified to 2^-11 absolute error on [-π, π] and not at all
// beyond, while angles here reach thousands of radians. `sincos_accurate` does Cody–Waite range
// reduction by π/4 with π/4 split into three parts (Cephes sinf/cosf, accurate to ~1 ulp for
// |x| < 8192) and evaluates minimax polynomials on [-π/4, π/4].
//
// Bindings:  @0 uniform Params   @1 x: act[T · nHeads · D]   @2 y: act[T · nHeads · D]
// Dispatch:  1-D over T · nHeads · half rotation pairs in workgroups of WG (ops/util.ts grid1d).
// One invocation rotates one (t, h, i) pair: it reads 2 elements and writes 2.
//
// Precision (ops/precision.ts): `act` is f32, or f16 in the +f16(act) variant. The angle, its
// sin / cos and the rotation are f32 (an f16 angle would be off by radians at position 4000); the
// two stores are the only rounding to f16.

alias act = f32;

struct Params {
  pairs: u32,            // T · nHeads · half
  nHeads: u32,
  headDim: u32,
  positionOffset: u32,
  invFreq: array<vec4f, 32>,  // inv_freq[i] = invFreq[i / 4][i % 4], i < headDim / 2 ≤ 128 (ops/rope.ts ROPE_MAX_HALF)
}

override WG: u32 = 256;
override GRID_X: u32 = 32768;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read_write> y: array<act>;

// Cephes: π/4 = DP1 + DP2 + DP3, DP1 and DP2 short enough that j·DP1, j·DP2 are exact in f32.
const DP1: f32 = 0.78515625;
const DP2: f32 = 2.4187564849853515625e-4;
const DP3: f32 = 3.77489497744594108e-8;
const FOUR_OVER_PI: f32 = 1.27323954473516;

/** (sin a, cos a) for a ≥ 0, accurate to ~1 ulp for a < 8192. */
fn sincos_accurate(a: f32) -> vec2f {
  var j = u32(a * FOUR_OVER_PI);
  j = j + (j & 1u);                    // round the octant up to even: reduced arg in [-π/4, π/4]
  let jf = f32(j);
  let r = ((a - jf * DP1) - jf * DP2) - jf * DP3;
  let z = r * r;
  let s = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
  let c = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
  // quadrant q = (j / 2) mod 4: rotate (sin, cos) by q · π/2
  switch ((j >> 1u) & 3u) {
    case 0u: { return vec2f(s, c); }
    case 1u: { return vec2f(c, -s); }
    case 2u: { return vec2f(-s, -c); }
    default: { return vec2f(-c, s); }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let k = gid.x + gid.y * GRID_X * WG;
  if (k >= p.pairs) { return; }
  let half = p.headDim / 2u;
  let i = k % half;
  let row = k / half;                   // t · nHeads + h
  let t = row / p.nHeads;
  let base = row * p.headDim;           // = t · nHeads · D + h · D
  let pos = f32(p.positionOffset + t);
  let angle = pos * p.invFreq[i / 4u][i % 4u];
  let sc = sincos_accurate(angle);
  let x0 = f32(x[base + i]);
  let x1 = f32(x[base + i + half]);
  y[base + i] = act(x0 * sc.y - x1 * sc.x);
  y[base + i + half] = act(x1 * sc.y + x0 * sc.x);
}
