// dwconv7.wgsl — ConvNeXt's 7×7 depthwise convolution (stride 1, zero padding 3), channels-last.
//
//   y[h, w, c] = bias[c] + Σ_{ky, kx < 7} x[h + ky − 3, w + kx − 3, c] · wt[c, 0, ky, kx]
//   (x outside the image reads as 0)
//
// Layout: x and y are [H, W, C] (channels-last): the C values of a pixel are contiguous, so the
// threads of a workgroup that handle CT adjacent channels of one pixel read CT adjacent floats
// (coalesced), and ConvNeXt's LayerNorm/MLP that follow see rows of C contiguous floats. The weights
// keep PyTorch's [C, 1, 7, 7] layout (wt[c, 0, ky, kx] = element c·49 + ky·7 + kx), f32 or f16;
// both are bound as u32 words: f32 is bitcast, f16 is packed two per word (element i is half i & 1
// of word i >> 1, read with unpack2x16float; no shader-f16 needed).
//
// Bindings:  @0 uniform Params { W, C, band_row0, band_row_end, in_row0, in_row_end, in_offset, out_offset }
//            @1 x: f32 (input rows in_row0 … in_row_end − 1, starting at element in_offset)
//            @2 wt: u32 words (f32 bits or f16 pairs)   @3 bias: f32[C]
//            @4 y: f32 (output rows band_row0 … band_row_end − 1, starting at element out_offset)
//            Big images are processed in bands of output rows (ops/dwconv7.ts) so that each
//            binding stays under maxStorageBufferBindingSize; a band's x range includes its 3-row
//            halo, clipped to the image (in_row_end ≤ H: rows at or past it read as padding, which
//            they are, or are only needed by outputs outside the band). One band: rows 0 … H.
// Dispatch:  (⌈W / TW⌉, ⌈band rows / TH⌉, ⌈C / CT⌉) workgroups of CT · TW · TH / RPT invocations.
// One workgroup computes a TH × TW × CT block of outputs. It first stages the (TH + 6) × (TW + 6) × CT
// input block with its halo in workgroup memory (zeros outside the image), each input read once from
// global memory instead of up to 49 times, and the block's CT × 49 taps (read once per workgroup
// rather than once per invocation). Then each invocation computes RPT vertically adjacent outputs of
// one channel: it copies that channel's 49 taps to registers and slides down the RPT + 6 input rows
// of its column, so each staged value it reads feeds up to RPT outputs.

struct Params {
  W: u32, C: u32,
  band_row0: u32, band_row_end: u32,   // output rows of this band
  in_row0: u32, in_row_end: u32,       // input rows bound at x
  in_offset: u32, out_offset: u32,     // element offset of row in_row0 in x, of row band_row0 in y
}

override CT: u32 = 16;          // channels per workgroup
override TW: u32 = 8;           // output columns per workgroup
override TH: u32 = 8;           // output rows per workgroup (a multiple of RPT)
override W_F16: bool = false;   // weights are f16 pairs (else f32 bits)
const RPT: u32 = 4u;            // output rows per invocation (sizes a register array: const)
const K: u32 = 7u;
const PAD: u32 = 3u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// The input block with halo, laid out [TH + 6][TW + 6][CT], and the block's taps [CT][49].
var<workgroup> block: array<f32, (TH + 6u) * (TW + 6u) * CT>;
var<workgroup> block_taps: array<f32, CT * 49u>;

fn weight(i: u32) -> f32 {
  if (W_F16) {
    let pair = unpack2x16float(wt[i >> 1u]);
    return select(pair.x, pair.y, (i & 1u) == 1u);
  }
  return bitcast<f32>(wt[i]);
}

@compute @workgroup_size(CT * TW * TH / RPT)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let x0 = wid.x * TW;                     // first output column of the block
  let y0 = p.band_row0 + wid.y * TH;       // first output row of the block (absolute)
  let c0 = wid.z * CT;                     // first channel of the block
  let BW = TW + 2u * PAD;                  // block width with halo

  // Stage the input block: consecutive invocations take consecutive channels of one pixel.
  let count = (TH + 2u * PAD) * BW * CT;
  for (var e = lid; e < count; e += CT * TW * TH / RPT) {
    let lc = e % CT;
    let pix = e / CT;
    let gy = i32(y0 + pix / BW) - i32(PAD);
    let gx = i32(x0 + pix % BW) - i32(PAD);
    let c = c0 + lc;
    var v = 0.0;
    if (gy >= 0 && gy < i32(p.in_row_end) && gx >= 0 && gx < i32(p.W) && c < p.C) {
      v = x[p.in_offset + ((u32(gy) - p.in_row0) * p.W + u32(gx)) * p.C + c];
    }
    block[e] = v;
  }
  for (var e = lid; e < CT * K * K; e += CT * TW * TH / RPT) {
    let c = min(c0 + e / (K * K), p.C - 1u);   // past-the-end channels: any valid tap, never stored
    block_taps[e] = weight(c * K * K + e % (K * K));
  }
  workgroupBarrier();

  // This invocation: channel c0 + lc, column x0 + tx, rows y0 + ty0 … y0 + ty0 + RPT − 1.
  let lc = lid % CT;
  let pt = lid / CT;
  let tx = pt % TW;
  let ty0 = (pt / TW) * RPT;
  let c = min(c0 + lc, p.C - 1u);          // past-the-end channels compute a dummy, never stored

  var taps: array<f32, 49>;
  for (var k = 0u; k < K * K; k++) { taps[k] = block_taps[lc * K * K + k]; }
  var acc: array<f32, RPT>;
  for (var o = 0u; o < RPT; o++) { acc[o] = bias[c]; }

  for (var r = 0u; r < RPT + 2u * PAD; r++) {          // block rows ty0 + r
    for (var kx = 0u; kx < K; kx++) {
      let v = block[((ty0 + r) * BW + tx + kx) * CT + lc];
      for (var o = 0u; o < RPT; o++) {                 // output row ty0 + o uses tap row r − o
        let ky = r - o;                                // wraps to a huge u32 when r < o
        if (ky < K) { acc[o] += v * taps[ky * K + kx]; }
      }
    }
  }

  let gx = x0 + tx;
  if (gx >= p.W || c0 + lc >= p.C) { return; }
  for (var o = 0u; o < RPT; o++) {
    let gy = y0 + ty0 + o;
    if (gy < p.band_row_end) { y[p.out_offset + ((gy - p.band_row0) * p.W + gx) * p.C + c0 + lc] = acc[o]; }
  }
}
