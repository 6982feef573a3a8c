/**
 * Quantized weight formats: q8 and q4, symmetric, in groups of 32 along the input dimension K, one
 * f16 scale per group (llama.cpp's Q8_0 / Q4_0 idea).
 *
 *   q8   value = q · scale            q ∈ [−127, 127]   (int8; −128 is never written)
 *   q4   value = (q − 8) · scale      q ∈ [0, 15]       (the quantizer writes 1 … 15: levels −7 … 7)
 *
 * A matrix [N, K] is quantized row by row; row n has G = ⌈K / 32⌉ groups, group g covering
 * k ∈ [32g, 32g + 32). The scale of a group is amax / 127 (q8) or amax / 7 (q4), rounded to f16,
 * and q = round(v / scale) (half away from zero), clamped to the range. Values that lie on the grid
 * (j · s with s an f16 and some |j| at the maximum level) round-trip exactly.
 *
 * Ragged K (K % 32 ≠ 0): the last group of a row covers only K − 32(G − 1) real values; its scale
 * comes from them alone, and the missing positions are stored as the code of 0 (q8: 0, q4: 8). The
 * kernels never read them (they loop k < K); dequantize returns exactly K values per row.
 *
 * GPU layout — ONE buffer per weight, row after row, `rowWords` u32 words per row:
 *
 *   row n, word 0 …              the packed codes of k = 0 … 32G − 1, little-endian within a word:
 *                                  q8: element k in byte k & 3 of word k >> 2 (two's complement)
 *                                  q4: element k in nibble k & 7 (bits 4(k & 7) …) of word k >> 3
 *   row n, word scaleWord …      the G f16 scales, two per word (group g: half g & 1 of word g >> 1),
 *                                  padded with zeros to a multiple of 4 words
 *
 * so rowWords and scaleWord are multiples of 4 (rows start on 16 bytes, for vec4 loads) and a range
 * of rows is one contiguous byte range — the ops bind big weights in row slices, as f16 ones. The
 * kernels get rowWords and scaleWord as params and dequantize in registers; no extra bindings.
 */
import { f16BitsToF32, f32ToF16Bits } from './half.js';

export type QuantDType = 'q8' | 'q4';

/** Elements per group (along K) sharing one scale. */
export const QUANT_GROUP = 32;

export function isQuantDType(d: string): d is QuantDType {
  return d === 'q8' || d === 'q4';
}

/** Largest code magnitude the quantizer writes: q8 127, q4 7. */
export function maxLevel(dtype: QuantDType): number {
  return dtype === 'q8' ? 127 : 7;
}

export interface QuantLayout {
  /** Groups per row: ⌈K / 32⌉. */
  groups: number;
  /** Words of codes per row: 8 per group (q8) or 4 (q4). */
  dataWords: number;
  /** Word offset of the scales within a row (= dataWords). */
  scaleWord: number;
  /** Words per row: codes, then scales padded to a multiple of 4 words. */
  rowWords: number;
}

/** The per-row layout of a [N, K] weight in `dtype`. */
export function quantLayout(dtype: QuantDType, K: number): QuantLayout {
  const groups = Math.ceil(K / QUANT_GROUP);
  const dataWords = groups * (dtype === 'q8' ? 8 : 4);
  const scaleWords = Math.ceil(groups / 8) * 4;
  return { groups, dataWords, scaleWord: dataWords, rowWords: dataWords + scaleWords };
}

/** Bytes of a [..., K] tensor in `dtype` on the GPU (rows are the leading dims flattened). */
export function quantBytes(dtype: QuantDType, shape: readonly number[]): number {
  if (shape.length < 1) throw new Error(`quantized tensors need at least one dimension, got [${shape}]`);
  const K = shape[shape.length - 1];
  const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  return rows * quantLayout(dtype, K).rowWords * 4;
}

/** A quantized [N, K] matrix on the CPU: the codes (one per element, padded rows of 32G) and the f16 scale bits [N, G]. */
export interface QuantizedMatrix {
  dtype: QuantDType;
  N: number;
  K: number;
  /** q8: the signed code; q4: the stored nibble 0 … 15. [N, 32G] row-major, padding included. */
  codes: Int8Array;
  /** f16 bits of the scales, [N, G]. */
  scales: Uint16Array;
}

/** Quantizes rows of `values` ([N, K] row-major) as described in the header. */
export function quantize(values: ArrayLike<number>, N: number, K: number, dtype: QuantDType): QuantizedMatrix {
  if (values.length !== N * K) throw new Error(`quantize: [${N}, ${K}] needs ${N * K} values, got ${values.length}`);
  const { groups } = quantLayout(dtype, K);
  const width = groups * QUANT_GROUP;
  const level = maxLevel(dtype);
  const offset = dtype === 'q4' ? 8 : 0;
  const codes = new Int8Array(N * width).fill(offset);
  const scales = new Uint16Array(N * groups);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < groups; g++) {
      const k0 = g * QUANT_GROUP;
      const k1 = Math.min(K, k0 + QUANT_GROUP);
      let amax = 0;
      for (let k = k0; k < k1; k++) {
        const v = values[n * K + k];
        if (!Number.isFinite(v)) throw new Error(`quantize: row ${n}, column ${k} is ${v}; only finite weights can be quantized`);
        amax = Math.max(amax, Math.abs(v));
      }
      const bits = f32ToF16Bits(amax / level);
      const scale = f16BitsToF32(bits);
      scales[n * groups + g] = bits;
      if (scale === 0) continue; // an all-zero group (or one below f16's range): codes stay 0
      for (let k = k0; k < k1; k++) {
        const r = values[n * K + k] / scale;
        const q = Math.max(-level, Math.min(level, Math.sign(r) * Math.round(Math.abs(r))));
        codes[n * width + k] = q + offset;
      }
    }
  }
  return { dtype, N, K, codes, scales };
}

/** The f32 values a quantized matrix stands for, [N, K] (what every kernel computes with). */
export function dequantize(q: QuantizedMatrix): Float32Array {
  const { N, K, dtype } = q;
  const { groups } = quantLayout(dtype, K);
  const width = groups * QUANT_GROUP;
  const offset = dtype === 'q4' ? 8 : 0;
  const out = new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const scale = f16BitsToF32(q.scales[n * groups + Math.floor(k / QUANT_GROUP)]);
      out[n * K + k] = (q.codes[n * width + k] - offset) * scale;
    }
  }
  return out;
}

/** quantize then dequantize: the weights a quantized model computes with. */
export function roundTrip(values: ArrayLike<number>, N: number, K: number, dtype: QuantDType): Float32Array {
  return dequantize(quantize(values, N, K, dtype));
}

/** The GPU words of a quantized matrix (layout in the header): N · rowWords u32. */
export function packQuantized(q: QuantizedMatrix): Uint32Array {
  const { dtype, N, K } = q;
  const { groups, scaleWord, rowWords } = quantLayout(dtype, K);
  const width = groups * QUANT_GROUP;
  const words = new Uint32Array(N * rowWords);
  const perWord = dtype === 'q8' ? 4 : 8;
  const bits = 32 / perWord;
  const mask = (1 << bits) - 1;
  for (let n = 0; n < N; n++) {
    const row = n * rowWords;
    for (let k = 0; k < width; k++) {
      const code = q.codes[n * width + k] & mask;
      words[row + Math.floor(k / perWord)] |= code << (bits * (k % perWord));
    }
    for (let g = 0; g < groups; g++) {
      words[row + scaleWord + (g >> 1)] |= q.scales[n * groups + g] << (16 * (g & 1));
    }
  }
  return words;
}
