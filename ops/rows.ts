/**
 * sliceRows / writeRows — row ranges of row-major tensors as plain buffer copies (no kernel):
 * cutting a big activation into row chunks, and appending new keys/values to a KV cache.
 * A "row" is everything after the first dimension: x [R, ...] has R rows of numel(...) elements.
 */
import ndarray, { type NdArray } from 'ndarray';
import type { Gpu } from '../runtime/gpu.js';
import { storageBytes, numel, type Tensor } from '../runtime/tensor.js';
import { check } from './util.js';

/** x [R, ...] → a new tensor [count, ...] holding rows start … start + count − 1. */
export function sliceRows(gpu: Gpu, x: Tensor, start: number, count: number): Tensor {
  check('sliceRows', x.shape.length >= 1, `x must have a row dimension, got [${x.shape}]`);
  const R = x.shape[0];
  check('sliceRows', Number.isInteger(start) && Number.isInteger(count) && start >= 0 && count >= 0 && start + count <= R,
    `rows ${start} … ${start + count - 1} (start ${start}, count ${count}) are not inside x [${x.shape}]`);
  const rowBytes = alignedRowBytes('sliceRows', x);
  const y = gpu.empty([count, ...x.shape.slice(1)], x.dtype);
  if (count > 0 && rowBytes > 0) gpu.copy(x, start * rowBytes, y, 0, count * rowBytes);
  return y;
}

/** Copies src [T, ...] into rows rowOffset … rowOffset + T − 1 of dst [S, ...] (in place). */
export function writeRows(gpu: Gpu, src: Tensor, dst: Tensor, rowOffset: number): void {
  check('writeRows', src.shape.length >= 1 && dst.shape.length === src.shape.length &&
    src.shape.every((d, i) => i === 0 || d === dst.shape[i]) && src.dtype === dst.dtype,
    `src [${src.shape}] ${src.dtype} and dst [${dst.shape}] ${dst.dtype} must have the same row shape and dtype`);
  const T = src.shape[0];
  const S = dst.shape[0];
  check('writeRows', Number.isInteger(rowOffset) && rowOffset >= 0 && rowOffset + T <= S,
    `src [${src.shape}] at row ${rowOffset} does not fit dst [${dst.shape}] (rows ${rowOffset} … ${rowOffset + T - 1} of ${S})`);
  const rowBytes = alignedRowBytes('writeRows', src);
  if (T > 0 && rowBytes > 0) gpu.copy(src, 0, dst, rowOffset * rowBytes, T * rowBytes);
}

/** Bytes per row; buffer copies need multiples of 4 (an issue only for f16 rows of odd length). */
function alignedRowBytes(op: string, t: Tensor): number {
  const bytes = storageBytes(t.dtype, numel(t.shape.slice(1)));
  check(op, t.dtype !== 'f16' || numel(t.shape.slice(1)) % 2 === 0,
    `f16 rows of [${t.shape}] are ${numel(t.shape.slice(1)) * 2} bytes; buffer copies need a multiple of 4`);
  return bytes;
}

/** CPU reference of sliceRows. */
export function sliceRowsRef(x: NdArray<Float32Array>, start: number, count: number): NdArray<Float32Array> {
  const row = numel(x.shape.slice(1));
  return ndarray(x.data.slice(start * row, (start + count) * row), [count, ...x.shape.slice(1)]);
}

/** CPU reference of writeRows: a copy of dst with src's rows written at rowOffset. */
export function writeRowsRef(src: NdArray<Float32Array>, dst: NdArray<Float32Array>, rowOffset: number): NdArray<Float32Array> {
  const row = numel(dst.shape.slice(1));
  const out = dst.data.slice();
  out.set(src.data.subarray(0, src.shape[0] * row), rowOffset * row);
  return ndarray(out, dst.shape.slice());
}
