/**
 * dwconv7 — ConvNeXt's 7×7 depthwise convolution, channels-last.   kernels/dwconv7.wgsl
 *
 *   x [H, W, C] f32|f16, w [C, 1, 7, 7] f32|f16 (PyTorch depthwise layout), bias [C] f32 → y [H, W, C]
 *   stride 1, zero padding 3; y has x's precision (f16: sums in f32, rounded once at the store)
 *
 * Images whose input or output exceed one storage binding (e.g. 512×512×192 f32 = 201 MB) run in
 * bands of output rows; each band binds its rows of y and its rows of x plus the 3-row halo.
 */
import ndarray, { type NdArray } from 'ndarray';
import { params, type Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { elementBytes, f32Range, type SplitOptions } from './chunks.js';
import { actKernel, precisionOf } from './precision.js';
import { assertDType, check } from './util.js';

const K = 7;
const PAD = 3;
/** Block of outputs per workgroup: CT channels × TH rows × TW columns (4 columns per invocation: WGSL const RPT). */
const CT = 8;
const TW = 16;
const TH = 8;

export interface Dwconv7Options extends SplitOptions {
  /** Output rows per band (default: as many as keep every binding under maxBindingBytes). */
  bandRows?: number;
}

/** y = depthwise 7×7 conv of x (channels-last) with PyTorch weights w [C, 1, 7, 7] and bias [C]; f32, or f16 → f16. */
export function dwconv7(gpu: Gpu, x: Tensor, w: Tensor, bias: Tensor, options: Dwconv7Options = {}): Tensor {
  check('dwconv7', x.shape.length === 3, `x must be [H, W, C], got [${x.shape}]`);
  const [H, W, C] = x.shape;
  check('dwconv7', w.shape.length === 4 && w.shape[0] === C && w.shape[1] === 1 && w.shape[2] === K && w.shape[3] === K,
    `w is [${w.shape}] but x is [${x.shape}]: w must be [${C}, 1, 7, 7]`);
  check('dwconv7', bias.shape.length === 1 && bias.shape[0] === C, `bias is [${bias.shape}] but x is [${x.shape}]: bias must be [${C}]`);
  const p = precisionOf('dwconv7', x);
  assertDType('dwconv7', w, 'w', 'f32', 'f16');
  assertDType('dwconv7', bias, 'bias', 'f32');

  const rowElems = W * C;
  const rowBytes = rowElems * elementBytes(x);
  const align = gpu.limits.minStorageBufferOffsetAlignment;
  const limit = Math.min(options.maxBindingBytes ?? Infinity, gpu.limits.maxStorageBufferBindingSize);
  // A band of b output rows binds at most b + 6 input rows, plus up to one alignment of slack.
  const fit = Math.floor((limit - align) / rowBytes) - 2 * PAD;
  const bandRows = options.bandRows ?? (x.byteLength <= limit ? H : fit);
  check('dwconv7', Number.isInteger(bandRows) && bandRows >= 1, options.bandRows === undefined
    ? `a row of x [${x.shape}] ${p} (${rowBytes} bytes) is too large to bind with its halo`
    : `bandRows must be an integer ≥ 1, got ${options.bandRows}`);

  const y = gpu.empty(x.shape, p); // (allocated after the checks: a throw leaks nothing)

  for (let r0 = 0; r0 < H; r0 += bandRows) {
    const r1 = Math.min(H, r0 + bandRows);
    const in0 = Math.max(0, r0 - PAD);
    const in1 = Math.min(H, r1 + PAD);
    const xRange = f32Range(gpu, x, in0 * rowElems, in1 * rowElems);
    const yRange = f32Range(gpu, y, r0 * rowElems, r1 * rowElems);
    gpu.dispatch({
      kernel: actKernel(gpu, 'dwconv7', p),
      constants: { CT, TW, TH, W_F16: w.dtype === 'f16' ? 1 : 0 },
      params: params(['u32', W], ['u32', C], ['u32', r0], ['u32', r1], ['u32', in0], ['u32', in1],
        ['u32', xRange.elementOffset], ['u32', yRange.elementOffset]),
      bindings: [xRange.binding, w, bias, yRange.binding],
      workgroups: [Math.ceil(W / TW), Math.ceil((r1 - r0) / TH), Math.ceil(C / CT)],
    });
  }
  return y;
}

/**
 * CPU reference (double-precision sums). w holds f32 values in PyTorch's [C, 1, 7, 7] layout. The
 * f16 kernel's reference is `f16Ref(dwconv7Ref)` on the f16 values of x and w (ops/precision.ts).
 */
export function dwconv7Ref(x: NdArray<Float32Array>, w: NdArray<Float32Array>, bias: NdArray<Float32Array>): NdArray<Float32Array> {
  const [H, W, C] = x.shape;
  const out = ndarray(new Float32Array(x.size), [H, W, C]);
  for (let h = 0; h < H; h++) {
    for (let ww = 0; ww < W; ww++) {
      for (let c = 0; c < C; c++) {
        let s = bias.data[c];
        for (let ky = 0; ky < K; ky++) {
          const yy = h + ky - PAD;
          if (yy < 0 || yy >= H) continue;
          for (let kx = 0; kx < K; kx++) {
            const xx = ww + kx - PAD;
            if (xx < 0 || xx >= W) continue;
            s += x.data[(yy * W + xx) * C + c] * w.data[c * K * K + ky * K + kx];
          }
        }
        out.data[(h * W + ww) * C + c] = s;
      }
    }
  }
  return out;
}
