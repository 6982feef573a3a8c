import { expect } from 'chai';
import { swiglu, swigluRef } from '../../ops/swiglu.js';
import { expectClose, randomNd, testGpu } from '../helpers.js';

const TOL = { atol: 1e-7, rtol: 1e-5 };

describe('swiglu (kernels/swiglu.wgsl)', () => {
  const cases: [number[], number][] = [[[1], 1], [[7], 1], [[33, 255], 1], [[3, 255], 8], [[5, 1001], 8]];
  for (const [shape, range] of cases) {
    it(`matches the CPU reference for [${shape}], gate in [-${range}, ${range}]`, async () => {
      const gpu = await testGpu();
      const gate = randomNd(shape, 21, -range, range);
      const up = randomNd(shape, 22);
      const [tg, tu] = [gpu.upload(shape, gate.data), gpu.upload(shape, up.data)];
      const y = swiglu(gpu, tg, tu);
      expectClose(await y.read(), swigluRef(gate, up).data, TOL);
      [tg, tu, y].forEach((t) => t.dispose());
    });
  }

  it('is finite and exact in the limits (gate = ±100, ±1e4)', async () => {
    const gpu = await testGpu();
    const gate = randomNd([4], 0);
    gate.data.set([100, -100, 1e4, -1e4]);
    const up = randomNd([4], 23);
    const [tg, tu] = [gpu.upload([4], gate.data), gpu.upload([4], up.data)];
    const y = await swiglu(gpu, tg, tu).read();
    expect(Array.from(y).every(Number.isFinite)).to.equal(true);
    expectClose(y, swigluRef(gate, up).data, { atol: 1e-30, rtol: 1e-6 });
    [tg, tu].forEach((t) => t.dispose());
  });

  it('handles > 16.7 M elements (more workgroups than one grid dimension: folded grid)', async () => {
    const gpu = await testGpu();
    const shape = [4099, 4097]; // 16.79 M elements > 65535 · 256, 67 MB: one binding
    const gate = randomNd(shape, 24, -8, 8);
    const up = randomNd(shape, 25);
    const [tg, tu] = [gpu.upload(shape, gate.data), gpu.upload(shape, up.data)];
    const y = swiglu(gpu, tg, tu);
    expectClose(await y.read(), swigluRef(gate, up).data, TOL);
    [tg, tu, y].forEach((t) => t.dispose());
  });

  it('splits operands larger than one binding into aligned chunks', async () => {
    const gpu = await testGpu();
    const shape = [33, 255];
    const gate = randomNd(shape, 26, -8, 8);
    const up = randomNd(shape, 27);
    const [tg, tu] = [gpu.upload(shape, gate.data), gpu.upload(shape, up.data)];
    const y = swiglu(gpu, tg, tu, { maxBindingBytes: 8192 }); // 8415 floats → 5 chunks
    expectClose(await y.read(), swigluRef(gate, up).data, TOL);
    [tg, tu, y].forEach((t) => t.dispose());
  });

  it('rejects mismatched shapes, naming both', async () => {
    const gpu = await testGpu();
    const a = gpu.empty([2, 3]);
    const b = gpu.empty([3, 2]);
    expect(() => swiglu(gpu, a, b)).to.throw(/\[2,3\].*\[3,2\]/);
    [a, b].forEach((t) => t.dispose());
  });
});
