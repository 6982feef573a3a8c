import { expect } from 'chai';
import { rmsNorm, rmsNormRef } from '../../ops/rmsNorm.js';
import { expectClose, randomNd, testGpu } from '../helpers.js';

// Cases that take lavapipe many seconds (65 536+ workgroups) run only with CONVLLAVA_SLOW_SPECS=1.
const slowIt = process.env.CONVLLAVA_SLOW_SPECS ? it : it.skip;

const TOL = { atol: 1e-6, rtol: 1e-5 };

async function check(shape: number[], eps: number, seed: number, maxBindingBytes?: number): Promise<void> {
  const gpu = await testGpu();
  const C = shape[shape.length - 1];
  const x = randomNd(shape, seed);
  const gamma = randomNd([C], seed + 1);
  const [tx, tg] = [gpu.upload(shape, x.data), gpu.upload([C], gamma.data)];
  const y = rmsNorm(gpu, tx, tg, eps, { maxBindingBytes });
  expectClose(await y.read(), rmsNormRef(x, gamma, eps).data, TOL);
  [tx, tg, y].forEach((t) => t.dispose());
}

describe('rmsNorm (kernels/rms_norm.wgsl)', () => {
  for (const shape of [[1], [1, 7], [5, 33], [7, 255], [3, 4096], [2, 5003], [3, 9001]]) {
    it(`matches the f64 reference for [${shape}]`, () => check(shape, 1e-5, 51));
  }

  it('handles 70 000 rows of 64 (18 MB) split across 4 MiB bindings', () => check([70000, 64], 1e-6, 52, 4 << 20));

  // 8 rows of C = 3 per workgroup: 67 500 workgroups, more than one grid dimension holds.
  slowIt('handles 540 000 short rows (folded grid; ~10 s on lavapipe, set CONVLLAVA_SLOW_SPECS=1)', () => check([540000, 3], 1e-6, 53));

  it('rejects a gamma that does not match the last dim, naming both', async () => {
    const gpu = await testGpu();
    const x = gpu.empty([4, 6]);
    const g = gpu.empty([5]);
    expect(() => rmsNorm(gpu, x, g, 1e-6)).to.throw(/\[5\].*\[4,6\]/);
    [x, g].forEach((t) => t.dispose());
  });
});
