/**
 * Element conversions from stored weight dtypes to what the GPU tensors hold, on chunks of raw
 * little-endian bytes. All of them are exact except → f16 from wider types, which rounds to nearest
 * even (runtime/half.ts), as PyTorch's `.half()` does.
 */
import { f32BitsToF16Bits, f32ToF16Bits } from '../runtime/half.js';
import type { StDType } from './safetensors.js';

export type FloatDType = 'F32' | 'F16' | 'BF16';

export function isFloatDType(d: StDType): d is FloatDType {
  return d === 'F32' || d === 'F16' || d === 'BF16';
}

export function bytesPerElement(d: FloatDType): number {
  return d === 'F32' ? 4 : 2;
}

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('convllava reads safetensors (little-endian) by reinterpreting bytes; this host is big-endian');
}

/** f16 bits → f32, all 65536 values precomputed (256 KiB): one lookup per element instead of pow(). */
let f16Table: Float32Array | null = null;
function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1;
      const exp = (h >> 10) & 0x1f;
      const mant = h & 0x3ff;
      f16Table[h] = exp === 0 ? sign * mant * 2 ** -24 : exp === 31 ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
    }
  }
  return f16Table;
}

/**
 * bf16 bits → f16 bits, all 65536 values precomputed (128 KiB). bf16's 7 mantissa bits fit f16's 10,
 * so only values outside f16's exponent range round (to subnormals, 0 or ±inf) — the table holds
 * exactly what f32ToF16Bits(bf16 value) gives, at one lookup per element.
 */
let bf16Table: Uint16Array | null = null;
function bf16ToF16Table(): Uint16Array {
  if (!bf16Table) {
    bf16Table = new Uint16Array(65536);
    const f32 = new Float32Array(1);
    const u32 = new Uint32Array(f32.buffer);
    for (let b = 0; b < 65536; b++) {
      u32[0] = b << 16;
      bf16Table[b] = f32ToF16Bits(f32[0]);
    }
  }
  return bf16Table;
}

/** Typed views of a byte chunk (which must start 4-byte aligned in its buffer). */
function u16(bytes: Uint8Array): Uint16Array {
  return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1);
}

/** `bytes` holding `out.length` elements of `src` → f32 values in `out`. Exact. */
export function toF32(src: FloatDType, bytes: Uint8Array, out: Float32Array): Float32Array {
  const n = out.length;
  if (src === 'F32') {
    out.set(new Float32Array(bytes.buffer, bytes.byteOffset, n));
  } else if (src === 'BF16') {
    const bits = u16(bytes);
    const outBits = new Uint32Array(out.buffer, out.byteOffset, n);
    for (let i = 0; i < n; i++) outBits[i] = (bits[i] << 16) >>> 0; // bf16 is the top half of an f32
  } else {
    const bits = u16(bytes);
    const table = f16ToF32Table();
    for (let i = 0; i < n; i++) out[i] = table[bits[i]];
  }
  return out;
}

/**
 * `bytes` holding `out.length` elements of `src` → f16 bits in `out`. F16 passes through untouched;
 * F32 and BF16 round to nearest even.
 */
export function toF16Bits(src: FloatDType, bytes: Uint8Array, out: Uint16Array): Uint16Array {
  const n = out.length;
  if (src === 'F16') {
    out.set(u16(bytes).subarray(0, n));
    return out;
  }
  if (src === 'BF16') {
    const bits = u16(bytes);
    const table = bf16ToF16Table();
    for (let i = 0; i < n; i++) out[i] = table[bits[i]];
    return out;
  }
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, n);
  for (let i = 0; i < n; i++) out[i] = f32BitsToF16Bits(words[i]);
  return out;
}

/** f32 bits → f16 bits, round to nearest even (runtime/half.ts; re-exported for the loaders). */
export { f32BitsToF16Bits } from '../runtime/half.js';
