// patchConv.wgsl — non-overlapping k×k convolution, stride k (ConvNeXt's 4×4/s4 stem and its
// 2×2/s2 downsampling layers), channels-last, as an implicit GEMM:
//
//   y[oy, ox, co] = bias[co] + Σ_{ky, kx < k, ci < Cin} x[oy·k + ky, ox·k + kx, ci] · wt[co, ci, ky, kx]
//
// i.e. Y[P, Cout] = A[P, R] · B[R, Cout] + bias with P = Ho·Wo output pixels and R = k·k·Cin, where
// A's row p is pixel p's input patch (never materialised: gathered from x while tiling) and
// B[r, co] is the weight. The reduction index runs in channels-last patch order
// r = (ky·k + kx)·Cin + ci, so a tile's gather reads runs of Cin contiguous floats of x.
// Weights keep PyTorch's [Cout, Cin, k, k] layout, f32 or f16, bound as u32 words (f32 bits, or f16
// pairs read with unpack2x16float: element i is half i & 1 of word i >> 1).
//
// Bindings:  @0 uniform Params { W, Cin, Cout, k, Wo, pixels, in_offset, out_offset }
//            @1 x: f32 (input rows of this band from element in_offset)   @2 wt: u32 words
//            @3 bias: f32[Cout]   @4 y: f32 (output pixels of this band from element out_offset)
//            Images over one binding run in bands of output rows (ops/patchConv.ts); `pixels` is
//            the band's Ho_band·Wo output pixels.
// Dispatch:  (⌈Cout / BN⌉, ⌈pixels / BM⌉) workgroups of (BN / 4) · (BM / 4) = 256 invocations.
// One workgroup computes a BM-pixel × BN-channel tile of y: for each BK-slice of R it stages the
// A and B tiles in workgroup memory (each invocation LOADS elements of each, at row offsets
// computed once), then each invocation accumulates 4 × 4 outputs (pixels ty + 16·i, channels
// tx + 16·j: adjacent invocations store adjacent channels).

struct Params { W: u32, Cin: u32, Cout: u32, k: u32, Wo: u32, pixels: u32, in_offset: u32, out_offset: u32 }

override W_F16: bool = false;   // weights are f16 pairs (else f32 bits)
const BM: u32 = 64u;            // output pixels per tile
const BN: u32 = 64u;            // output channels per tile
const BK: u32 = 16u;            // reduction slice
const WG: u32 = 256u;           // (BM / 4) · (BN / 4) invocations

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// Tiles [kk][m] and [kk][n], rows padded by 2 floats: the staging stores (16 kk × 2 m per warp) then
// hit 32 distinct banks.
const PAD_ROW: u32 = 2u;
var<workgroup> a_tile: array<f32, BK * (BM + PAD_ROW)>;
var<workgroup> b_tile: array<f32, BK * (BN + PAD_ROW)>;
const LOADS: u32 = BM * BK / WG;   // tile elements each invocation stages per slice (BM = BN)

fn weight(i: u32) -> f32 {
  if (W_F16) {
    let pair = unpack2x16float(wt[i >> 1u]);
    return select(pair.x, pair.y, (i & 1u) == 1u);
  }
  return bitcast<f32>(wt[i]);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let n0 = wid.x * BN;
  let m0 = wid.y * BM;
  let R = p.k * p.k * p.Cin;

  // Staging role: this invocation loads reduction column kk of tile rows s + 16·j (j < LOADS),
  // for A (pixels) and B (output channels) alike; adjacent invocations take adjacent kk, i.e.
  // adjacent input channels ci: coalesced reads of x. Where each row's data starts is fixed for
  // the whole reduction, so it is computed once here (no divisions in the loop but the two for r).
  let kk = lid % BK;
  let s = lid / BK;
  var patch_start: array<u32, LOADS>;   // x index of pixel m0 + s + 16·j's patch corner
  var w_start: array<u32, LOADS>;       // wt index of output channel n0 + s + 16·j's filter
  for (var j = 0u; j < LOADS; j++) {
    let pix = min(m0 + s + (WG / BK) * j, p.pixels - 1u);   // clamped: rows past the end load junk, never stored
    patch_start[j] = p.in_offset + ((pix / p.Wo) * p.k * p.W + (pix % p.Wo) * p.k) * p.Cin;
    w_start[j] = min(n0 + s + (WG / BK) * j, p.Cout - 1u) * R;
  }

  // Compute role: 4 × 4 outputs, pixels m0 + ty + 16·i and channels n0 + tx + 16·j.
  let tx = lid % (BN / 4u);
  let ty = lid / (BN / 4u);
  var acc: array<array<f32, 4>, 4>;

  for (var k0 = 0u; k0 < R; k0 += BK) {
    let r = k0 + kk;                      // r = (ky·k + kx)·Cin + ci
    let ci = r % p.Cin;
    let tap = r / p.Cin;                  // ky·k + kx
    let x_step = ((tap / p.k) * p.W + tap % p.k) * p.Cin + ci;
    let w_step = ci * p.k * p.k + tap;    // PyTorch [Cout, Cin, k, k]
    for (var j = 0u; j < LOADS; j++) {
      let row = s + (WG / BK) * j;
      var a = 0.0;
      var b = 0.0;
      if (r < R) {
        a = x[patch_start[j] + x_step];
        b = weight(w_start[j] + w_step);
      }
      a_tile[kk * (BM + PAD_ROW) + row] = a;
      b_tile[kk * (BN + PAD_ROW) + row] = b;
    }
    workgroupBarrier();

    for (var q = 0u; q < BK; q++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { a[i] = a_tile[q * (BM + PAD_ROW) + ty + 16u * i]; }
      for (var j = 0u; j < 4u; j++) { b[j] = b_tile[q * (BN + PAD_ROW) + tx + 16u * j]; }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i][j] += a[i] * b[j]; }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < 4u; i++) {
    let pix = m0 + ty + 16u * i;
    for (var j = 0u; j < 4u; j++) {
      let co = n0 + tx + 16u * j;
      if (pix < p.pixels && co < p.Cout) { y[p.out_offset + pix * p.Cout + co] = acc[i][j] + bias[co]; }
    }
  }
}
