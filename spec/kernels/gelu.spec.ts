import { expect } from 'chai';
import ndarray from 'ndarray';
import { erfc64, gelu, geluRef } from '../../ops/gelu.js';
import { f16Ref } from '../../ops/precision.js';
import { expectClose, F16_TOL, randomNd, testGpu, uploadAt } from '../helpers.js';

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

  // f16: the kernel's f32 GELU of the f16 input, rounded once; within one f16 ulp of the rounded
  // double-precision reference (F16_TOL).
  for (const [shape, range] of cases) {
    it(`f16: matches the f16-rounding reference for [${shape}], x in [-${range}, ${range}]`, async function () {
      const gpu = await testGpu();
      if (!gpu.hasF16) this.skip();
      const x = uploadAt(gpu, randomNd(shape, 11, -range, range), 'f16');
      const y = gelu(gpu, x.t);
      expect(y.dtype).to.equal('f16');
      expectClose(await y.read(), f16Ref(geluRef)(x.nd).data, F16_TOL);
      [x.t, y].forEach((t) => t.dispose());
    });
  }

  it('f16: extremes (0, ±6e-8, ±5, ±13, ±30, ±65504) stay finite and match', async function () {
    const gpu = await testGpu();
    if (!gpu.hasF16) this.skip();
    const values = [0, 2 ** -24, -(2 ** -24), 5, -5, 13, -13, 30, -30, 65504, -65504]; // all f16 values
    const x = ndarray(Float32Array.from(values), [values.length]);
    const tx = gpu.upload(x.shape, x.data, 'f16');
    const y = await gelu(gpu, tx).read();
    expectClose(y, f16Ref(geluRef)(x).data, F16_TOL);
    expect(y[9]).to.equal(65504);
    tx.dispose();
  });

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

  it('f16: splits operands larger than one binding into aligned chunks', async function () {
    const gpu = await testGpu();
    if (!gpu.hasF16) this.skip();
    const shape = [5, 1001];
    const x = uploadAt(gpu, randomNd(shape, 12, -4, 4), 'f16');
    const before = gpu.dispatchCount;
    const y = gelu(gpu, x.t, { maxBindingBytes: 4096 }); // 5005 halves → chunks of 2048: 3
    expect(gpu.dispatchCount - before).to.equal(3);
    expectClose(await y.read(), f16Ref(geluRef)(x.nd).data, F16_TOL);
    [x.t, y].forEach((t) => t.dispose());
  });

  it('rejects a tensor that is not an activation, naming it', async () => {
    const gpu = await testGpu();
    const ids = gpu.empty([4], 'u32');
    expect(() => gelu(gpu, ids)).to.throw(/gelu: x must be an f32 or f16 activation tensor, got u32/);
    ids.dispose();
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
