// dwconv7.wgsl — ConvNeXt's 7×7 depthwise convolution (stride 1, zero padding 3), channels-last.
//
//   y[h, w, c] = bias[c] + Σ_{ky, kx < 7} x[h + ky − 3, w + kx − 3, c] · W[c, 0, ky, kx]
//   (x outside the image reads as 0)
//
// Layout: x and y are [H, W, C] (channels-last): the C values of a pixel are contiguous, so the
// threads of a workgroup that handle CT adjacent channels of one pixel read CT adjacent floats
// (coalesced), and ConvNeXt's LayerNorm/MLP that follow see rows of C contiguous floats. The weights
// keep PyTorch's [C, 1, 7, 7] layout (W[c, 0, ky, kx] = element c·49 + ky·7 + kx), f32 or f16;
// both are bound as u32 words: f32 is bitcast, f16 is packed two per word (element i is half i & 1
// of word i >> 1, read with unpack2x16float; no shader-f16 needed).
//
// Bindings:  @0 uniform Params { W, C, band_row0, band_row_end, in_row0, in_row_end, in_offset, out_offset }
//            @1 x: act (input rows in_row0 … in_row_end − 1, starting at element in_offset)
//            @2 w: the weight W, u32 words (f32 bits or f16 pairs)   @3 bias: f32[C]
//            @4 y: act (output rows band_row0 … band_row_end − 1, starting at element out_offset)
//            Big images are processed in bands of output rows (ops/dwconv7.ts) so that each
//            binding stays under maxStorageBufferBindingSize; a band's x range includes its 3-row
//            halo, clipped to the image (in_row_end ≤ H: rows at or past it read as padding, which
//            they are, or are only needed by outputs outside the band). One band: rows 0 … H.
// Dispatch:  (⌈W / TW⌉, ⌈band rows / TH⌉, ⌈C / CT⌉) workgroups of CT · TH · TW / RPT invocations.
// One workgroup computes a TH × TW × CT block of outputs (8 rows × 16 columns × 8 channels).
//  1. It stages the (TH + 6) × (TW + 6) × CT input block with its halo in workgroup memory (zeros
//     outside the image), each input read once from global memory instead of up to 49 times, plus
//     the block's CT × 49 taps. Consecutive invocations load consecutive channels of a pixel, so
//     each pixel's CT values are one 32-byte sector (half of one at f16).
//  2. Each invocation computes RPT horizontally adjacent outputs of one channel: for each tap row
//     ky it loads the RPT + 6 inputs of its input row segment and the 7 taps into registers and
//     accumulates RPT × 7 products. Only the inner loops (fixed trip counts) index the register
//     arrays, so they need no dynamic indexing once unrolled.
//  Bank conflicts: the 32 invocations of a warp are CT = 8 channels × 4 consecutive output rows;
//  block rows are padded to an odd number of pixels (BWP), so those 4 rows fall in 4 different
//  groups of 8 banks.
//
// Precision (ops/precision.ts): x and y are `act`, f32, or f16 in the +f16(act) variant. The input
// block is staged in workgroup memory as f32 (f16 values are exact in f32), the 49 products and their
// sum are f32, and each output is rounded to f16 once, at its store.

alias act = f32;

struct Params {
  W: u32, C: u32,
  band_row0: u32, band_row_end: u32,   // output rows of this band
  in_row0: u32, in_row_end: u32,       // input rows bound at x
  in_offset: u32, out_offset: u32,     // element offset of row in_row0 in x, of row band_row0 in y
}

override CT: u32 = 8;           // channels per workgroup
override TW: u32 = 16;          // output columns per workgroup (a multiple of RPT)
override TH: u32 = 8;           // output rows per workgroup
override W_F16: bool = false;   // weights are f16 pairs (else f32 bits)
const RPT: u32 = 4u;            // outputs per invocation, along a row (sizes register arrays: const)
const K: u32 = 7u;
const PAD: u32 = 3u;
override BW: u32 = TW + 2u * PAD;   // block width with halo, in pixels
override BWP: u32 = BW | 1u;        // … padded to odd (see "Bank conflicts")

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<act>;

// The input block with halo, laid out [TH + 6][BWP][CT], and the block's taps [CT][49].
var<workgroup> block: array<f32, (TH + 6u) * BWP * CT>;
var<workgroup> block_taps: array<f32, CT * 49u>;

/** Element i of the bound weight (f32 bits, or half i & 1 of word i >> 1). The same in every kernel reading weights (spec/kernels/wgsl-helpers.spec.ts). */
fn weight(i: u32) -> f32 {
  if (W_F16) {
    return unpack2x16float(w[i >> 1u])[i & 1u];
  }
  return bitcast<f32>(w[i]);
}

@compute @workgroup_size(CT * TH * TW / RPT)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let x0 = wid.x * TW;                     // first output column of the block
  let y0 = p.band_row0 + wid.y * TH;       // first output row of the block (absolute)
  let c0 = wid.z * CT;                     // first channel of the block
  let WG = CT * TH * TW / RPT;

  // 1. Stage the input block and the taps.
  for (var e = lid; e < (TH + 2u * PAD) * BW * CT; e += WG) {
    let lc = e % CT;
    let pix = e / CT;
    let hy = pix / BW;
    let hx = pix % BW;
    let gy = i32(y0 + hy) - i32(PAD);
    let gx = i32(x0 + hx) - i32(PAD);
    let c = c0 + lc;
    var v = 0.0;
    if (gy >= 0 && gy < i32(p.in_row_end) && gx >= 0 && gx < i32(p.W) && c < p.C) {
      v = f32(x[p.in_offset + ((u32(gy) - p.in_row0) * p.W + u32(gx)) * p.C + c]);
    }
    block[(hy * BWP + hx) * CT + lc] = v;
  }
  for (var e = lid; e < CT * K * K; e += WG) {
    let c = min(c0 + e / (K * K), p.C - 1u);   // past-the-end channels: any valid tap, never stored
    block_taps[e] = weight(c * K * K + e % (K * K));
  }
  workgroupBarrier();

  // 2. This invocation: channel c0 + lc, row y0 + ty, columns x0 + tx0 … x0 + tx0 + RPT − 1.
  let lc = lid % CT;
  let pt = lid / CT;
  let ty = pt % TH;
  let tx0 = (pt / TH) * RPT;
  let c = min(c0 + lc, p.C - 1u);

  var acc: array<f32, RPT>;
  for (var o = 0u; o < RPT; o++) { acc[o] = bias[c]; }
  for (var ky = 0u; ky < K; ky++) {
    let seg_start = ((ty + ky) * BWP + tx0) * CT + lc;   // block[ty + ky][tx0][lc]
    var seg: array<f32, RPT + 2u * PAD>;
    for (var i = 0u; i < RPT + 2u * PAD; i++) { seg[i] = block[seg_start + i * CT]; }
    var taps: array<f32, K>;
    for (var kx = 0u; kx < K; kx++) { taps[kx] = block_taps[lc * K * K + ky * K + kx]; }
    for (var o = 0u; o < RPT; o++) {
      for (var kx = 0u; kx < K; kx++) { acc[o] += seg[o + kx] * taps[kx]; }
    }
  }

  let gy = y0 + ty;
  if (gy >= p.band_row_end || c0 + lc >= p.C) { return; }
  for (var o = 0u; o < RPT; o++) {
    let gx = x0 + tx0 + o;
    if (gx < p.W) { y[p.out_offset + ((gy - p.band_row0) * p.W + gx) * p.C + c0 + lc] = act(acc[o]); }
  }
}
