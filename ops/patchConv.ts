/**
 * patchConv — non-overlapping k×k convolution with stride k, channels-last: ConvNeXt's stem
 * (4×4/s4, Cin = 3) and its downsampling layers (2×2/s2).   kernels/patch_conv.wgsl
 *
 *   x [H, W, Cin] f32|f16, w [Cout, Cin, k, k] f32|f16 (PyTorch layout), bias [Cout] f32 → y [⌊H/k⌋, ⌊W/k⌋, Cout]
 *   y has x's precision (f16: sums in f32, rounded once at the store)
 *
 * The kernel is an implicit GEMM (patches gathered from x into workgroup-memory tiles), not a
 * direct per-output loop: the downsampling layers are real matrix products (P = 192², R = 768,
 * Cout = 384 in ConvLLaVA-1536's first one). Rows/columns past ⌊H/k⌋·k / ⌊W/k⌋·k are ignored, as
 * PyTorch's Conv2d does. Images over one binding run in bands of output rows.
 */
import ndarray, { type NdArray } from 'ndarray';
import { params, type Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { elementBytes, f32Range, type SplitOptions } from './chunks.js';
import { actKernel, precisionOf } from './precision.js';
import { assertDType, check } from './util.js';

/** Workgroup tile (kernels/patch_conv.wgsl overrides): BM output pixels × BN output channels, reduced in BK-slices. */
const BM = 64;
const BN = 64;
const BK = 16;

export interface PatchConvOptions extends SplitOptions {
  /** Output rows per band (default: as many as keep every binding under maxBindingBytes). */
  bandRows?: number;
}

/** y = conv2d(x, w, bias, kernel = stride = k), channels-last in and out; f32, or f16 → f16. */
export function patchConv(gpu: Gpu, x: Tensor, w: Tensor, bias: Tensor, k: number, options: PatchConvOptions = {}): Tensor {
  check('patchConv', x.shape.length === 3, `x must be [H, W, Cin], got [${x.shape}]`);
  const [H, W, Cin] = x.shape;
  check('patchConv', Number.isInteger(k) && k >= 1 && k <= H && k <= W, `k = ${k} must be an integer in [1, min(H, W)] for x [${x.shape}]`);
  const Cout = w.shape[0];
  check('patchConv', w.shape.length === 4 && w.shape[1] === Cin && w.shape[2] === k && w.shape[3] === k,
    `w is [${w.shape}] but x is [${x.shape}] and k = ${k}: w must be [Cout, ${Cin}, ${k}, ${k}]`);
  check('patchConv', bias.shape.length === 1 && bias.shape[0] === Cout, `bias is [${bias.shape}] but w is [${w.shape}]: bias must be [${Cout}]`);
  const p = precisionOf('patchConv', x);
  assertDType('patchConv', w, 'w', 'f32', 'f16');
  assertDType('patchConv', bias, 'bias', 'f32');

  const Ho = Math.floor(H / k);
  const Wo = Math.floor(W / k);
  // Each band binds its x and y rows from an aligned offset at or below their start: up to one
  // alignment of slack on top of the rows themselves.
  const limit = Math.min(options.maxBindingBytes ?? Infinity, gpu.limits.maxStorageBufferBindingSize) - gpu.limits.minStorageBufferOffsetAlignment;
  const bytes = elementBytes(x);
  const bytesPerOutRow = Math.max(k * W * Cin, Wo * Cout) * bytes;
  const fits = x.byteLength <= limit && Ho * Wo * Cout * bytes <= limit;
  const bandRows = options.bandRows ?? (fits ? Ho : Math.floor(limit / bytesPerOutRow));
  check('patchConv', Number.isInteger(bandRows) && bandRows >= 1, options.bandRows === undefined
    ? `one output row of x [${x.shape}] → [${Ho}, ${Wo}, ${Cout}] does not fit one binding`
    : `bandRows must be an integer ≥ 1, got ${options.bandRows}`);
  const bandPixels = Math.min(bandRows, Ho) * Wo;
  check('patchConv', Math.ceil(bandPixels / BM) <= gpu.limits.maxComputeWorkgroupsPerDimension,
    `${bandPixels} output pixels in one band of x [${x.shape}]: pass a smaller bandRows`);

  const y = gpu.empty([Ho, Wo, Cout], p); // (allocated after the checks: a throw leaks nothing)

  for (let r0 = 0; r0 < Ho; r0 += bandRows) {
    const r1 = Math.min(Ho, r0 + bandRows);
    const pixels = (r1 - r0) * Wo;
    const xRange = f32Range(gpu, x, r0 * k * W * Cin, r1 * k * W * Cin);
    const yRange = f32Range(gpu, y, r0 * Wo * Cout, r1 * Wo * Cout);
    const tiles = Math.ceil(pixels / BM);
    gpu.dispatch({
      kernel: actKernel(gpu, 'patch_conv', p),
      constants: { BM, BN, BK, W_F16: w.dtype === 'f16' ? 1 : 0 },
      params: params(['u32', W], ['u32', Cin], ['u32', Cout], ['u32', k], ['u32', Wo], ['u32', pixels],
        ['u32', xRange.elementOffset], ['u32', yRange.elementOffset]),
      bindings: [xRange.binding, w, bias, yRange.binding],
      workgroups: [Math.ceil(Cout / BN), tiles],
    });
  }
  return y;
}

/**
 * CPU reference (double-precision sums); w holds f32 values in PyTorch's [Cout, Cin, k, k] layout.
 * The f16 kernel's reference is `f16Ref(patchConvRef)` on the f16 values of x and w (ops/precision.ts).
 */
export function patchConvRef(x: NdArray<Float32Array>, w: NdArray<Float32Array>, bias: NdArray<Float32Array>, k: number): NdArray<Float32Array> {
  const [H, W, Cin] = x.shape;
  const Cout = w.shape[0];
  const Ho = Math.floor(H / k);
  const Wo = Math.floor(W / k);
  const out = ndarray(new Float32Array(Ho * Wo * Cout), [Ho, Wo, Cout]);
  for (let oy = 0; oy < Ho; oy++) {
    for (let ox = 0; ox < Wo; ox++) {
      for (let co = 0; co < Cout; co++) {
        let s = bias.data[co];
        for (let ci = 0; ci < Cin; ci++) {
          for (let ky = 0; ky < k; ky++) {
            for (let kx = 0; kx < k; kx++) {
              s += x.data[((oy * k + ky) * W + ox * k + kx) * Cin + ci] * w.data[((co * Cin + ci) * k + ky) * k + kx];
            }
          }
        }
        out.data[(oy * Wo + ox) * Cout + co] = s;
      }
    }
  }
  return out;
}
