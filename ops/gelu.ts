/**
 * gelu — exact (erf) GELU, the ConvNeXt MLP activation.   kernels/gelu.wgsl
 *
 *   gelu(x) = 0.5 · x · (1 + erf(x / √2))
 *
 * The kernel carries its own f32 erfc (WGSL has none); the reference uses `erfc64` below, accurate
 * to double precision, so the spec measures the kernel's approximation error. f16 activations are
 * read as f16, computed in f32 and rounded once at the store (reference: `f16Ref(geluRef)`).
 */
import ndarray, { type NdArray } from 'ndarray';
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { chunkBinding, dispatchChunked, elementBytes, type SplitOptions } from './chunks.js';
import { actKernel, precisionOf } from './precision.js';
import { GRID_X } from './util.js';

const WG = 256;

/** y = gelu(x), any shape; f32, or f16 → f16. */
export function gelu(gpu: Gpu, x: Tensor, options: SplitOptions = {}): Tensor {
  const p = precisionOf('gelu', x, 'x');
  const y = gpu.empty(x.shape, p);
  dispatchChunked(gpu, {
    kernel: actKernel(gpu, 'gelu', p),
    elemBytes: elementBytes(x),
    n: x.size,
    wg: WG,
    constants: { WG, GRID_X },
    bind: (chunk) => [chunkBinding(x, chunk), chunkBinding(y, chunk)],
    maxBindingBytes: options.maxBindingBytes,
  });
  return y;
}

/** CPU reference (double-precision erf, rounded to f32 at the end; the f16 kernel's is `f16Ref(geluRef)`). */
export function geluRef(x: NdArray<Float32Array>): NdArray<Float32Array> {
  const out = new Float32Array(x.size);
  for (let i = 0; i < x.size; i++) out[i] = 0.5 * x.data[i] * erfc64(-x.data[i] * Math.SQRT1_2);
  return ndarray(out, x.shape.slice());
}

/**
 * erfc(z) in double precision: Maclaurin series of erf for |z| < 2 (terms ≤ ~3, so ~1e-16 absolute),
 * Laplace's continued fraction erfc(z) = e^(−z²)/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …))))
 * for z ≥ 2 (100 levels: relative error ~1e-16), erfc(−z) = 2 − erfc(z).
 */
export function erfc64(z: number): number {
  if (z < 0) return 2 - erfc64(-z);
  if (z < 2) {
    // erf(z) = 2/√π · Σ (−1)ⁿ z^(2n+1) / (n!·(2n+1))
    let term = z;
    let sum = z;
    for (let n = 1; n < 100; n++) {
      term *= (-z * z) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  let fraction = 0;
  for (let k = 100; k >= 1; k--) fraction = k / 2 / (z + fraction);
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / (z + fraction);
}
