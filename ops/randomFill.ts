/**
 * randomFill — seeded uniform values generated on the GPU, for synthetic models (benchmarks, demo)
 * whose weights never touch the CPU or the disk.   kernels/random_fill.wgsl
 *
 * The value of element i depends only on (seed, i) — a hash, not a stream — so the GPU kernel, the
 * CPU reference and any chunking of a tensor agree bit for bit (f32; f16 is the f32 value rounded).
 */
import { params, type Gpu } from '../runtime/gpu.js';
import { numel, storageBytes, type Tensor } from '../runtime/tensor.js';
import { f32Chunks } from './chunks.js';
import { check, grid1d, GRID_X } from './util.js';

const WG = 256;

export interface RandomFillOptions {
  seed: number;
  /** Values are uniform in [center − halfWidth, center + halfWidth). */
  center?: number;
  halfWidth?: number;
  /** Allocate an exact-size buffer outside the pool (model weights). */
  weight?: boolean;
}

/** A new tensor of `shape` (f32 or packed f16) filled with seeded uniform values. */
export function randomFill(gpu: Gpu, shape: readonly number[], dtype: 'f32' | 'f16', o: RandomFillOptions): Tensor {
  check('randomFill', Number.isInteger(o.seed) && o.seed >= 0 && o.seed <= 0xffffffff, `seed must be a u32, got ${o.seed}`);
  const words = Math.ceil(storageBytes(dtype, numel(shape)) / 4);
  check('randomFill', words < 2 ** 31, `tensor [${shape}] is too large for 32-bit element indices`);
  const out = o.weight ? gpu.weight(shape, dtype, 'random-weight') : gpu.empty(shape, dtype, 'random');
  for (const chunk of f32Chunks(gpu, words)) {
    gpu.dispatch({
      kernel: 'random_fill',
      entry: dtype === 'f32' ? 'main_f32' : 'main_f16',
      constants: { WG, GRID_X },
      params: params(['u32', chunk.count], ['u32', chunk.start], ['u32', o.seed], ['f32', o.center ?? 0], ['f32', o.halfWidth ?? 1]),
      bindings: [chunk.start === 0 && chunk.count === words ? out : { tensor: out, offset: chunk.start * 4, size: chunk.count * 4 }],
      workgroups: grid1d(gpu, chunk.count, WG),
    });
  }
  return out;
}

/** PCG-RXS-M-XS 32-bit hash, as in the kernel. */
export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** CPU reference: the f32 values of elements [0, n) (f16 tensors hold these rounded to half). */
export function randomFillRef(n: number, o: RandomFillOptions): Float32Array {
  const out = new Float32Array(n);
  const seedHash = pcgHash(o.seed);
  const center = Math.fround(o.center ?? 0);
  const halfWidth = Math.fround(o.halfWidth ?? 1);
  for (let i = 0; i < n; i++) {
    const u = Math.fround((pcgHash((i ^ seedHash) >>> 0) >>> 8) / 16777216);
    out[i] = Math.fround(center + Math.fround(halfWidth * Math.fround(Math.fround(2 * u) - 1)));
  }
  return out;
}

/** A stable u32 seed for a named tensor (FNV-1a of the name, mixed with a model seed). */
export function seedFor(name: string, modelSeed = 0): number {
  let h = 0x811c9dc5 ^ modelSeed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}
