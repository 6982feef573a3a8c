// patch_conv.wgsl — non-overlapping k×k convolution, stride k (ConvNeXt's 4×4/s4 stem and its
// 2×2/s2 downsampling layers), channels-last, as an implicit GEMM:
//
//   y[oy, ox, co] = bias[co] + Σ_{ky, kx < k, ci < Cin} x[oy·k + ky, ox·k + kx, ci] · w[co, ci, ky, kx]
//
// i.e. Y[P, Cout] = A[P, R] · B[R, Cout] + bias with P = Ho·Wo output pixels and R = k·k·Cin, where
// A's row p is pixel p's input patch (never materialised: gathered from x while tiling) and
// B[r, co] is the weight. The reduction index runs in channels-last patch order
// r = (ky·k + kx)·Cin + ci, so a tile's gather reads runs of Cin contiguous floats of x.
// Weights keep PyTorch's [Cout, Cin, k, k] layout, f32 or f16, bound as u32 words (f32 bits, or f16
// pairs read with unpack2x16float: element i is half i & 1 of word i >> 1).
//
// Bindings:  @0 uniform Params { W, Cin, Cout, k, Wo, pixels, in_offset, out_offset }
//            @1 x: act (input rows of this band from element in_offset)   @2 w: u32 words
//            @3 bias: f32[Cout]   @4 y: act (output pixels of this band from element out_offset)
//            Images over one binding run in bands of output rows (ops/patchConv.ts); `pixels` is
//            the band's Ho_band·Wo output pixels.
// Dispatch:  (⌈Cout / BN⌉, ⌈pixels / BM⌉) workgroups of WG = (BM / TM) · (BN / TN) invocations
//            (64 × 64 tiles: 256).
// One workgroup computes a BM-pixel × BN-channel tile of y. For each BK-slice of R it stages the
// A and B tiles in workgroup memory, then each invocation accumulates TM × TN outputs (pixels
// ty + (BM / TM)·i, channels tx + (BN / TN)·j: adjacent invocations store adjacent channels).
// Staging: invocation lid always loads reduction column kk = lid mod BK (adjacent invocations:
// adjacent input channels ci, coalesced reads of x), so the divisions that split r into
// (ky, kx, ci) happen once per slice; where each pixel's patch starts in x is computed once per
// workgroup into `patch_start`.
//
// Precision (ops/precision.ts): `act` (x and y) is f32, or f16 in the +f16(act) variant. There the
// A tile holds x widened to f32 (exact), the products, their sum and the bias are f32 as in the f32
// variant, and each output is rounded to f16 once, at its store.

alias act = f32;

struct Params { W: u32, Cin: u32, Cout: u32, k: u32, Wo: u32, pixels: u32, in_offset: u32, out_offset: u32 }

override W_F16: bool = false;   // weights are f16 pairs (else f32 bits)
override BM: u32 = 64u;         // output pixels per tile
override BN: u32 = 64u;         // output channels per tile
override BK: u32 = 16u;         // reduction slice (divides WG)
const TM: u32 = 4u;             // pixels per invocation   } size the accumulator registers,
const TN: u32 = 4u;             // channels per invocation } so they are consts
override WG: u32 = (BM / TM) * (BN / TN);

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<act>;

// Tiles [kk][m] and [kk][n], rows padded by 2 floats: the staging stores (16 kk × 2 rows per
// warp) then hit 32 distinct banks.
const PAD_ROW: u32 = 2u;
var<workgroup> a_tile: array<f32, BK * (BM + PAD_ROW)>;
var<workgroup> b_tile: array<f32, BK * (BN + PAD_ROW)>;
var<workgroup> patch_start: array<u32, BM>;   // x index of each tile pixel's patch corner

/** Element i of the bound weight (f32 bits, or half i & 1 of word i >> 1). The same in every kernel reading weights (spec/kernels/wgsl-helpers.spec.ts). */
fn weight(i: u32) -> f32 {
  if (W_F16) {
    return unpack2x16float(w[i >> 1u])[i & 1u];
  }
  return bitcast<f32>(w[i]);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let n0 = wid.x * BN;
  let m0 = wid.y * BM;
  let R = p.k * p.k * p.Cin;

  for (var m = lid; m < BM; m += WG) {
    let pix = min(m0 + m, p.pixels - 1u);   // clamped: pixels past the end load junk, never stored
    patch_start[m] = p.in_offset + ((pix / p.Wo) * p.k * p.W + (pix % p.Wo) * p.k) * p.Cin;
  }
  let kk = lid % BK;        // staging: this invocation's reduction column
  let row0 = lid / BK;      //          and first tile row (then every WG / BK rows)
  let tx = lid % (BN / TN);
  let ty = lid / (BN / TN);
  var acc: array<array<f32, TN>, TM>;
  workgroupBarrier();

  for (var k0 = 0u; k0 < R; k0 += BK) {
    let r = k0 + kk;                      // r = (ky·k + kx)·Cin + ci
    let ci = r % p.Cin;
    let tap = r / p.Cin;                  // ky·k + kx
    let x_step = ((tap / p.k) * p.W + tap % p.k) * p.Cin + ci;
    let w_step = ci * p.k * p.k + tap;    // PyTorch [Cout, Cin, k, k]
    for (var m = row0; m < BM; m += WG / BK) {
      var a = 0.0;
      if (r < R) { a = f32(x[patch_start[m] + x_step]); }
      a_tile[kk * (BM + PAD_ROW) + m] = a;
    }
    for (var n = row0; n < BN; n += WG / BK) {
      var b = 0.0;
      if (r < R) { b = weight(min(n0 + n, p.Cout - 1u) * R + w_step); }
      b_tile[kk * (BN + PAD_ROW) + n] = b;
    }
    workgroupBarrier();

    for (var q = 0u; q < BK; q++) {
      var a: array<f32, TM>;
      var b: array<f32, TN>;
      for (var i = 0u; i < TM; i++) { a[i] = a_tile[q * (BM + PAD_ROW) + ty + (BM / TM) * i]; }
      for (var j = 0u; j < TN; j++) { b[j] = b_tile[q * (BN + PAD_ROW) + tx + (BN / TN) * j]; }
      for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) { acc[i][j] += a[i] * b[j]; }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < TM; i++) {
    let pix = m0 + ty + (BM / TM) * i;
    for (var j = 0u; j < TN; j++) {
      let co = n0 + tx + (BN / TN) * j;
      if (pix < p.pixels && co < p.Cout) { y[p.out_offset + pix * p.Cout + co] = act(acc[i][j] + bias[co]); }
    }
  }
}
