/**
 * PIL's `Image.resize(size, Image.BICUBIC)` for 8-bit RGB, reimplemented from the algorithm in
 * Pillow's src/libImaging/Resample.c so that the bytes come out identical:
 *
 *   1. per output column (then row) a window of input taps: the bicubic kernel (a = −0.5, support 2)
 *      is stretched by the downscale factor (antialiasing), centred at (i + 0.5)·scale, its weights
 *      normalised to sum 1 in float64 and then rounded to fixed point with 22 fraction bits
 *      (PRECISION_BITS = 32 − 8 − 2), half away from zero;
 *   2. horizontal pass over only the input rows the vertical pass will read, each sum started at
 *      ½ (1 << 21), shifted right 22 and clipped to 0…255 — the intermediate image is uint8;
 *   3. vertical pass on that intermediate, same arithmetic.
 *   A pass is skipped when its size does not change.
 *
 * The input may be a *padded canvas* (ConvLLaVA's expand2square): an image pasted on a constant
 * background. The canvas is never materialised; background rows are filtered once and reused, which
 * keeps a 1×60000 strip from turning into a 60000² square in memory.
 */
import type { RawImage } from './decode.js';

const PRECISION_BITS = 32 - 8 - 2;
const BICUBIC_SUPPORT = 2;

/** An RGB image pasted at (x0, y0) on a width×height canvas filled with `background`. */
export interface PaddedImage {
  width: number;
  height: number;
  image: RawImage; // RGB (channels 3)
  x0: number;
  y0: number;
  background: [number, number, number];
}

/** Bicubic kernel with a = −0.5 (Keys), as Pillow's bicubic_filter. */
function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Filter taps for one axis: output i reads inputs start[i] … start[i] + count[i] − 1 with weights. */
interface Taps {
  start: Int32Array;
  count: Int32Array;
  ksize: number;
  weights: Int32Array; // [outSize, ksize] fixed point
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for the box [0, inSize). */
function computeTaps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = BICUBIC_SUPPORT * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let sum = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = bicubic((x + xmin - center + 0.5) / filterscale);
      sum += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const k = sum !== 0 ? w[x] / sum : w[x];
      weights[i * ksize + x] = Math.trunc(k < 0 ? -0.5 + k * (1 << PRECISION_BITS) : 0.5 + k * (1 << PRECISION_BITS));
    }
    start[i] = xmin;
    count[i] = xmax;
  }
  return { start, count, ksize, weights };
}

/** Fixed-point sum → uint8, as Pillow's clip8 (arithmetic shift, then clamp). */
function clip8(acc: number): number {
  const v = Math.floor(acc / (1 << PRECISION_BITS));
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Filters one RGB row (`inRow`, any width) along x into `outRow` (taps.start.length pixels). */
function resampleRow(inRow: Uint8Array, outRow: Uint8Array, taps: Taps): void {
  const { start, count, ksize, weights } = taps;
  const half = 1 << (PRECISION_BITS - 1);
  for (let i = 0; i < start.length; i++) {
    let r = half, g = half, b = half;
    const k0 = i * ksize;
    let p = start[i] * 3;
    for (let t = 0; t < count[i]; t++, p += 3) {
      const k = weights[k0 + t];
      r += inRow[p] * k;
      g += inRow[p + 1] * k;
      b += inRow[p + 2] * k;
    }
    outRow[3 * i] = clip8(r);
    outRow[3 * i + 1] = clip8(g);
    outRow[3 * i + 2] = clip8(b);
  }
}

/** Row y of the padded canvas into `row` (canvas width × 3 bytes). */
function canvasRow(src: PaddedImage, y: number, row: Uint8Array): void {
  const { image, x0, y0, background } = src;
  for (let x = 0; x < src.width; x++) row.set(background, 3 * x);
  if (y >= y0 && y < y0 + image.height) {
    row.set(image.data.subarray(3 * image.width * (y - y0), 3 * image.width * (y - y0 + 1)), 3 * x0);
  }
}

/** The padded canvas as a plain RGB image (small canvases only: used when no resize is needed). */
export function materialize(src: PaddedImage): RawImage {
  const data = new Uint8Array(src.width * src.height * 3);
  const row = new Uint8Array(src.width * 3);
  for (let y = 0; y < src.height; y++) {
    canvasRow(src, y, row);
    data.set(row, y * row.length);
  }
  return { width: src.width, height: src.height, channels: 3, data };
}

/** PIL `canvas.resize((outW, outH), Image.BICUBIC)`, bit-exact. */
export function resizeBicubic(src: PaddedImage, outW: number, outH: number): RawImage {
  const needH = outW !== src.width;
  const needV = outH !== src.height;
  const vTaps = computeTaps(src.height, outH);
  // Only rows firstRow … lastRow−1 are read by the vertical pass.
  const firstRow = needV ? vTaps.start[0] : 0;
  const lastRow = needV ? vTaps.start[outH - 1] + vTaps.count[outH - 1] : src.height;

  // Horizontal pass → intermediate [lastRow − firstRow, outW] (uint8, as Pillow's imTemp).
  const midW = needH ? outW : src.width;
  const mid = new Uint8Array((lastRow - firstRow) * midW * 3);
  const hTaps = needH ? computeTaps(src.width, outW) : null;
  const inRow = new Uint8Array(src.width * 3);
  const isBackground = (y: number) => y < src.y0 || y >= src.y0 + src.image.height;
  let backgroundRow: Uint8Array | null = null;
  for (let y = firstRow; y < lastRow; y++) {
    const out = mid.subarray((y - firstRow) * midW * 3, (y - firstRow + 1) * midW * 3);
    if (isBackground(y) && backgroundRow) {
      out.set(backgroundRow);
      continue;
    }
    canvasRow(src, y, inRow);
    if (hTaps) resampleRow(inRow, out, hTaps);
    else out.set(inRow);
    if (isBackground(y)) backgroundRow = out.slice();
  }
  if (!needV) return { width: midW, height: outH, channels: 3, data: mid };

  // Vertical pass: column filter over the intermediate.
  const { start, count, ksize, weights } = vTaps;
  const data = new Uint8Array(outH * midW * 3);
  const half = 1 << (PRECISION_BITS - 1);
  const stride = midW * 3;
  for (let i = 0; i < outH; i++) {
    const k0 = i * ksize;
    const base = (start[i] - firstRow) * stride;
    for (let c = 0; c < stride; c++) {
      let acc = half;
      for (let t = 0, p = base + c; t < count[i]; t++, p += stride) acc += mid[p] * weights[k0 + t];
      data[i * stride + c] = clip8(acc);
    }
  }
  return { width: midW, height: outH, channels: 3, data };
}
