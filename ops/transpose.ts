/**
 * nchwToNhwc / nhwcToNchw — layout changes at the edges of the vision tower (pixel_values in,
 * NCHW feature dumps out). Both are a tiled 2-D transpose, kernels/transpose.wgsl, of f32 or f16
 * activations (the output keeps the input's precision; the values are moved, so it is exact).
 */
import ndarray, { type NdArray } from 'ndarray';
import { params, type Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { actKernel, precisionOf } from './precision.js';
import { check, grid1d, GRID_X } from './util.js';

const TILE = 32;
const ROWS_PER_PASS = 8;

/** [C, H, W] → [H, W, C] (f32, or f16 → f16). */
export function nchwToNhwc(gpu: Gpu, x: Tensor): Tensor {
  check('nchwToNhwc', x.shape.length === 3, `x must be [C, H, W], got [${x.shape}]`);
  const [C, H, W] = x.shape;
  return transpose2d(gpu, 'nchwToNhwc', x, C, H * W, [H, W, C]);
}

/** [H, W, C] → [C, H, W] (f32, or f16 → f16). */
export function nhwcToNchw(gpu: Gpu, x: Tensor): Tensor {
  check('nhwcToNchw', x.shape.length === 3, `x must be [H, W, C], got [${x.shape}]`);
  const [H, W, C] = x.shape;
  return transpose2d(gpu, 'nhwcToNchw', x, H * W, C, [C, H, W]);
}

/** x viewed as [rows, cols] → y [cols, rows] with the given shape. */
function transpose2d(gpu: Gpu, op: string, x: Tensor, rows: number, cols: number, outShape: number[]): Tensor {
  const p = precisionOf(op, x, 'x');
  check(op, x.byteLength <= gpu.limits.maxStorageBufferBindingSize,
    `x [${x.shape}] ${p} is ${x.byteLength} bytes, over one binding (${gpu.limits.maxStorageBufferBindingSize}); transpose it in parts`);
  const y = gpu.empty(outShape, p);
  const colTiles = Math.ceil(cols / TILE);
  gpu.dispatch({
    kernel: actKernel(gpu, 'transpose', p),
    constants: { TILE, ROWS_PER_PASS, GRID_X },
    params: params(['u32', rows], ['u32', cols], ['u32', colTiles]),
    bindings: [x, y],
    workgroups: grid1d(gpu, Math.ceil(rows / TILE) * colTiles, 1),
  });
  return y;
}

/** CPU reference: [C, H, W] → [H, W, C]. */
export function nchwToNhwcRef(x: NdArray<Float32Array>): NdArray<Float32Array> {
  const [C, H, W] = x.shape;
  const out = ndarray(new Float32Array(x.size), [H, W, C]);
  for (let c = 0; c < C; c++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) out.set(h, w, c, x.get(c, h, w));
  return out;
}

/** CPU reference: [H, W, C] → [C, H, W]. */
export function nhwcToNchwRef(x: NdArray<Float32Array>): NdArray<Float32Array> {
  const [H, W, C] = x.shape;
  const out = ndarray(new Float32Array(x.size), [C, H, W]);
  for (let c = 0; c < C; c++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) out.set(c, h, w, x.get(h, w, c));
  return out;
}
