import { expect } from 'chai';
import { erfc64, gelu, geluRef } from '../../ops/gelu.js';
import { expectClose, randomNd, testGpu } from '../helpers.js';

// The kernel's erfc is accurate to ~2e-7 absolute / ~4e-7 relative in the tail (kernels/gelu.wgsl),
// so GELU = 0.5·x·erfc(−x/√2) must match the double-precision reference to about that.
const TOL = { atol: 1e-7, rtol: 1e-6 };

describe('gelu (kernels/gelu.wgsl)', () => {
  const cases: [number[], number][] = [[[1], 1], [[7], 1], [[33, 255], 1], [[3, 255, 7], 8], [[1000003], 8]];
  for (const [shape, range] of cases) {
    it(`matches the exact-erf reference for [${shape}], x in [-${range}, ${range}]`, async () => {
      const gpu = await testGpu();
      const x = randomNd(shape, 11, -range, range);
      const tx = gpu.upload(shape, x.data);
      const y = gelu(gpu, tx);
      expectClose(await y.read(), geluRef(x).data, TOL);
      [tx, y].forEach((t) => t.dispose());
    });
  }

  it('stays accurate at the extremes (0, ±1e-20, ±5, ±13, ±30)', async () => {
    const gpu = await testGpu();
    const values = [0, 1e-20, -1e-20, 5, -5, 13, -13, 30, -30, 0.5 * Math.SQRT2, -0.5 * Math.SQRT2];
    const x = randomNd([values.length], 0);
    x.data.set(values);
    const tx = gpu.upload([values.length], x.data);
    const y = gelu(gpu, tx);
    expectClose(await y.read(), geluRef(x).data, { atol: 1e-30, rtol: 1e-6 });
    [tx, y].forEach((t) => t.dispose());
  });

  it('splits operands larger than one binding into aligned chunks', async () => {
    const gpu = await testGpu();
    const shape = [5, 1001];
    const x = randomNd(shape, 12, -4, 4);
    const tx = gpu.upload(shape, x.data);
    const y = gelu(gpu, tx, { maxBindingBytes: 4096 }); // 5005 floats → 5 chunks of 1024 (+ a tail)
    expectClose(await y.read(), geluRef(x).data, TOL);
    [tx, y].forEach((t) => t.dispose());
  });

  it('erfc64 (the reference) agrees with tabulated values', () => {
    // erfc from Abramowitz & Stegun Table 7.1 / high-precision tables
    expect(erfc64(0)).to.equal(1);
    expect(Math.abs(erfc64(0.5) - 0.4795001221869535) / 0.4795001221869535).to.be.below(1e-15);
    expect(Math.abs(erfc64(1) - 0.15729920705028513) / 0.15729920705028513).to.be.below(1e-15);
    expect(Math.abs(erfc64(2) - 0.004677734981047266) / 0.004677734981047266).to.be.below(1e-14);
    expect(Math.abs(erfc64(3) - 2.209049699858544e-5) / 2.209049699858544e-5).to.be.below(1e-14);
    expect(Math.abs(erfc64(-1) - 1.8427007929497148)).to.be.below(1e-15);
  });
});
