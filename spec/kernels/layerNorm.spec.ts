import { expect } from 'chai';
import { layerNorm, layerNormRef } from '../../ops/layerNorm.js';
import { expectClose, randomNd, testGpu } from '../helpers.js';

// Cases that take lavapipe many seconds (65 536+ workgroups) run only with CONVLLAVA_SLOW_SPECS=1.
const slowIt = process.env.CONVLLAVA_SLOW_SPECS ? it : it.skip;

const TOL = { atol: 1e-5, rtol: 1e-5 };

async function check(shape: number[], eps: number, seed: number, offset = 0, maxBindingBytes?: number, tol = TOL): Promise<void> {
  const gpu = await testGpu();
  const C = shape[shape.length - 1];
  const x = randomNd(shape, seed, offset - 1, offset + 1);
  const gamma = randomNd([C], seed + 1);
  const beta = randomNd([C], seed + 2);
  const [tx, tg, tb] = [gpu.upload(shape, x.data), gpu.upload([C], gamma.data), gpu.upload([C], beta.data)];
  const y = layerNorm(gpu, tx, tg, tb, eps, { maxBindingBytes });
  expectClose(await y.read(), layerNormRef(x, gamma, beta, eps).data, tol);
  [tx, tg, tb, y].forEach((t) => t.dispose());
}

describe('layerNorm (kernels/layer_norm.wgsl)', () => {
  for (const shape of [[1], [1, 7], [5, 33], [7, 255], [3, 4, 192], [9, 3072], [2, 5000], [3, 9001]]) {
    it(`matches the f64 reference for [${shape}]`, () => check(shape, 1e-6, 41));
  }

  // At x ≈ 100 the f32 mean alone is uncertain by ulp(100)/2 ≈ 4e-6, i.e. ~1e-5 after dividing by
  // std ≈ 0.58; a one-pass E[x²] − mean² variance would be off by ~1e-3 relative here.
  it('is careful with a large common offset (x in 100 ± 1: two-pass variance)', () =>
    check([17, 384], 1e-12, 42, 100, undefined, { atol: 4e-5, rtol: 1e-5 }));

  it('handles 20 000 rows of 192 (15 MB) split across 1 MiB bindings', () => check([20000, 192], 1e-6, 43, 0, 1 << 20));

  // 8 rows of C = 8 per workgroup: 67 500 workgroups, more than one grid dimension holds. (Rows
  // this short must not be nearly constant: x − mean would cancel, which no f32 kernel survives.)
  slowIt('handles 540 000 short rows (folded grid; ~10 s on lavapipe, set CONVLLAVA_SLOW_SPECS=1)', () => check([540000, 8], 1e-6, 44));

  it('rejects a gamma that does not match the last dim, naming both', async () => {
    const gpu = await testGpu();
    const x = gpu.empty([4, 6]);
    const g = gpu.empty([5]);
    const b = gpu.empty([6]);
    expect(() => layerNorm(gpu, x, g, b, 1e-6)).to.throw(/\[5\].*\[4,6\]/);
    [x, g, b].forEach((t) => t.dispose());
  });
});
