/**
 * The adapter's measured roofline: memory bandwidth from a large buffer copy, compute from the best
 * GEMM the kernel benchmark achieved. Both are measurements on this adapter, not datasheet numbers.
 */
import type { Gpu } from '../runtime/gpu.js';

/** Copy bandwidth in GB/s (bytes read + written), from `repeats` copies of `bytes` in one submit. */
export async function measureCopyBandwidth(gpu: Gpu, bytes = 256 << 20, repeats = 8): Promise<number> {
  const size = Math.min(bytes, Math.floor(gpu.limits.maxBufferSize / 2 / 256) * 256);
  const a = gpu.empty([size / 4]);
  const b = gpu.empty([size / 4]);
  let best = 0;
  for (let trial = 0; trial < 3; trial++) {
    await gpu.sync();
    const start = performance.now();
    for (let i = 0; i < repeats; i++) gpu.copy(i % 2 ? b : a, 0, i % 2 ? a : b, 0, size);
    await gpu.sync();
    const seconds = (performance.now() - start) / 1000;
    best = Math.max(best, (2 * size * repeats) / seconds / 1e9);
  }
  a.dispose();
  b.dispose();
  return best;
}
