/**
 * Quantized checkpoints on disk (written by `convllava quantize`, read by Checkpoint.open). The
 * formats are runtime/quant.ts's q8 / q4 (symmetric, groups of 32 along K, f16 scales); the bytes:
 *
 *   config.json   "quantization_config": { "quant_method": "convllava", "bits": 8 | 4, "group_size": 32,
 *                   "scales_suffix": ".scales", "modules": [tensor names] }
 *                 `modules` lists every quantized tensor by its checkpoint name; names of the vision
 *                 tower's files are prefixed "vision_tower/". Every other tensor is stored as before.
 *
 *   a quantized weight W [N, K] stored as `name` (G = ⌈K/32⌉ groups per row):
 *     `name`            q8: I8 [N, 32G]   the codes q ∈ [−127, 127], element k of row n at byte 32G·n + k
 *                       q4: U8 [N, 16G]   two codes per byte: element k of row n in byte 16G·n + ⌊k/2⌋,
 *                                          the LOW nibble when k is even, the high nibble when k is odd;
 *                                          a nibble is the stored code 0 … 15 (value = (code − 8)·scale)
 *     `name.scales`     F16 [N, G]        the scale of group g of row n (covering k ∈ [32g, 32g + 32))
 *
 *   Ragged K (K % 32 ≠ 0): rows are padded to 32G codes with the code of 0 (q8: 0, q4: 8); K itself
 *   is not stored — it comes from the config (weights/names.ts), as every shape does.
 *
 * The codes bytes of a row are exactly the code words of the GPU layout (runtime/quant.ts: q8 byte
 * k & 3 of word k >> 2 is byte k; q4 nibble k & 7 of word k >> 3 is byte k >> 1, low nibble if k is
 * even), so loading packs them into the GPU words with no requantization.
 */
import { QUANT_GROUP, quantLayout, type QuantDType, type QuantizedMatrix } from '../runtime/quant.js';

export const QUANT_METHOD = 'convllava';
export const SCALES_SUFFIX = '.scales';
/** Prefix of vision tower tensor names in `modules`. */
export const VISION_PREFIX = 'vision_tower/';

export interface QuantizationConfig {
  quant_method: typeof QUANT_METHOD;
  bits: 8 | 4;
  group_size: typeof QUANT_GROUP;
  scales_suffix: string;
  modules: string[];
}

export function quantDTypeOfBits(bits: 8 | 4): QuantDType {
  return bits === 8 ? 'q8' : 'q4';
}

/**
 * Parses config.json's "quantization_config" (undefined when there is none). Anything it cannot read
 * exactly is an error naming the field: a quantized folder is never half-understood.
 */
export function parseQuantizationConfig(config: unknown, file: string): QuantizationConfig | undefined {
  const q = (config as { quantization_config?: unknown } | null)?.quantization_config;
  if (q === undefined) return undefined;
  const fail = (m: string): never => {
    throw new Error(`${file}: quantization_config: ${m}`);
  };
  if (typeof q !== 'object' || q === null || Array.isArray(q)) return fail('must be an object');
  const { quant_method, bits, group_size, scales_suffix, modules } = q as Record<string, unknown>;
  if (quant_method !== QUANT_METHOD) fail(`quant_method is ${JSON.stringify(quant_method)}; convllava reads only "${QUANT_METHOD}" (written by convllava quantize)`);
  if (bits !== 8 && bits !== 4) fail(`bits must be 8 or 4, got ${JSON.stringify(bits)}`);
  if (group_size !== QUANT_GROUP) fail(`group_size must be ${QUANT_GROUP}, got ${JSON.stringify(group_size)}`);
  if (scales_suffix !== undefined && scales_suffix !== SCALES_SUFFIX) fail(`scales_suffix must be "${SCALES_SUFFIX}", got ${JSON.stringify(scales_suffix)}`);
  if (!Array.isArray(modules) || modules.length === 0 || !modules.every((m) => typeof m === 'string')) fail('modules must be a non-empty list of tensor names');
  return { quant_method: QUANT_METHOD, bits: bits as 8 | 4, group_size: QUANT_GROUP, scales_suffix: SCALES_SUFFIX, modules: modules as string[] };
}

/** The error for loading a quantized folder in another dtype (they are never dequantized to floats). */
export function wrongDTypeMessage(dir: string, stored: QuantDType, asked: string): string {
  return (
    `${dir} is a quantized checkpoint (${stored}: quantization_config in config.json); load it with dtype '${stored}' ` +
    `(--dtype ${stored}), not '${asked}' — quantized folders are not dequantized to floats`
  );
}

/** The stored shapes and dtypes of a quantized [N, K] weight. */
export function diskLayout(dtype: QuantDType, N: number, K: number): { codes: { dtype: 'I8' | 'U8'; shape: [number, number] }; scales: { dtype: 'F16'; shape: [number, number] } } {
  const { groups } = quantLayout(dtype, K);
  return {
    codes: dtype === 'q8' ? { dtype: 'I8', shape: [N, groups * QUANT_GROUP] } : { dtype: 'U8', shape: [N, (groups * QUANT_GROUP) / 2] },
    scales: { dtype: 'F16', shape: [N, groups] },
  };
}

/** The codes of a QuantizedMatrix as stored on disk (q8: the bytes; q4: two nibbles per byte, even k low). */
export function codesToDisk(q: QuantizedMatrix): Uint8Array {
  if (q.dtype === 'q8') return new Uint8Array(q.codes.buffer, q.codes.byteOffset, q.codes.byteLength);
  const out = new Uint8Array(q.codes.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = (q.codes[2 * i] & 15) | ((q.codes[2 * i + 1] & 15) << 4);
  return out;
}

/** The inverse of codesToDisk: a QuantizedMatrix from the stored codes bytes and the f16 scale bits. */
export function matrixFromDisk(dtype: QuantDType, N: number, K: number, codes: Uint8Array, scales: Uint16Array): QuantizedMatrix {
  const layout = diskLayout(dtype, N, K);
  const codeBytes = layout.codes.shape[0] * layout.codes.shape[1];
  if (codes.byteLength !== codeBytes) throw new Error(`matrixFromDisk: [${N}, ${K}] ${dtype} needs ${codeBytes} code bytes, got ${codes.byteLength}`);
  if (scales.length !== N * layout.scales.shape[1]) throw new Error(`matrixFromDisk: [${N}, ${K}] ${dtype} needs ${N * layout.scales.shape[1]} scales, got ${scales.length}`);
  let out: Int8Array;
  if (dtype === 'q8') {
    out = new Int8Array(codeBytes);
    out.set(new Int8Array(codes.buffer, codes.byteOffset, codes.byteLength));
  } else {
    out = new Int8Array(codeBytes * 2);
    for (let i = 0; i < codeBytes; i++) {
      out[2 * i] = codes[i] & 15;
      out[2 * i + 1] = codes[i] >> 4;
    }
  }
  return { dtype, N, K, codes: out, scales };
}
