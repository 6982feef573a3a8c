import { expect } from 'chai';
import ndarray from 'ndarray';
import { f16Ref } from '../../ops/precision.js';
import { rope, ropeInvFreq, ropeRef, type RopeOptions } from '../../ops/rope.js';
import { expectClose, F16_TOL, randomNd, testGpu, uploadAt } from '../helpers.js';

describe('rope (kernels/rope.wgsl)', () => {
  const cases: [T: number, opts: RopeOptions][] = [
    [1, { nHeads: 1, headDim: 2, positionOffset: 0, theta: 10000 }],
    [7, { nHeads: 4, headDim: 16, positionOffset: 0, theta: 10000 }],
    [33, { nHeads: 3, headDim: 128, positionOffset: 5, theta: 10000 }],
    [1, { nHeads: 32, headDim: 128, positionOffset: 4095, theta: 10000 }],
    [65, { nHeads: 2, headDim: 64, positionOffset: 4000, theta: 500000 }],
  ];
  for (const [T, o] of cases) {
    it(`matches the CPU reference: T=${T}, ${o.nHeads}×${o.headDim}, offset ${o.positionOffset}, theta ${o.theta}`, async () => {
      const gpu = await testGpu();
      const x = randomNd([T, o.nHeads * o.headDim], T + o.headDim);
      const tx = gpu.upload(x.shape, x.data);
      const y = rope(gpu, tx, o);
      expectClose(await y.read(), ropeRef(x, o).data, { atol: 2e-6, rtol: 1e-5 });
      [tx, y].forEach((t) => t.dispose());
    });
  }

  // f16: the rotation runs in f32 on the f16 inputs and rounds once at the store: f16Ref(ropeRef).
  for (const [T, o] of cases) {
    it(`f16: matches the f16-rounding reference: T=${T}, ${o.nHeads}×${o.headDim}, offset ${o.positionOffset}, theta ${o.theta}`, async function () {
      const gpu = await testGpu();
      if (!gpu.hasF16) this.skip();
      const x = uploadAt(gpu, randomNd([T, o.nHeads * o.headDim], T + o.headDim), 'f16');
      const y = rope(gpu, x.t, o);
      expect(y.dtype).to.equal('f16');
      expectClose(await y.read(), f16Ref(ropeRef)(x.nd, o).data, F16_TOL);
      [x.t, y].forEach((t) => t.dispose());
    });
  }

  it('f16: is accurate at every position up to 4096 (rows of (cos, sin), rounded once)', async function () {
    const gpu = await testGpu();
    if (!gpu.hasF16) this.skip();
    const D = 16;
    const T = 4097;
    const x = new Float32Array(T * D);
    for (let t = 0; t < T; t++) for (let i = 0; i < D / 2; i++) x[t * D + i] = 1;
    const o = { nHeads: 1, headDim: D, positionOffset: 0, theta: 10000 };
    const tx = gpu.upload([T, D], x, 'f16');
    const y = rope(gpu, tx, o);
    expect(y.dtype).to.equal('f16');
    expectClose(await y.read(), f16Ref(ropeRef)(ndarray(x, [T, D]), o).data, F16_TOL);
    [tx, y].forEach((t) => t.dispose());
  });

  it('is accurate at every position up to 4096 (cos/sin of large f32 angles)', async () => {
    // x = (1, 0) in every pair, so y = (cos angle, sin angle): one row per position.
    const gpu = await testGpu();
    const D = 16;
    const T = 4097;
    const x = new Float32Array(T * D);
    for (let t = 0; t < T; t++) for (let i = 0; i < D / 2; i++) x[t * D + i] = 1;
    const o = { nHeads: 1, headDim: D, positionOffset: 0, theta: 10000 };
    const tx = gpu.upload([T, D], x);
    const y = rope(gpu, tx, o);
    expectClose(await y.read(), ropeRef(ndarray(x, [T, D]), o).data, { atol: 1e-6, rtol: 0 });
    [tx, y].forEach((t) => t.dispose());
  });

  it('inv_freq follows the f32 formula 1 / theta^(2i/D)', () => {
    const inv = ropeInvFreq(128, 10000);
    expect(inv[0]).to.equal(1);
    expect(inv[1]).to.be.closeTo(10000 ** (-2 / 128), 1e-7);
    expect(inv[63]).to.be.closeTo(10000 ** (-126 / 128), 1e-10);
  });

  it('rejects a width that is not nHeads·headDim, naming both', async () => {
    const gpu = await testGpu();
    const x = gpu.empty([3, 60]);
    expect(() => rope(gpu, x, { nHeads: 4, headDim: 16, positionOffset: 0, theta: 10000 })).to.throw(/\[3,60\].*4·16/);
    const u = gpu.empty([3, 64], 'u32');
    expect(() => rope(gpu, u, { nHeads: 4, headDim: 16, positionOffset: 0, theta: 10000 })).to.throw(/rope: x must be an f32 or f16 activation tensor, got u32/);
    [x, u].forEach((t) => t.dispose());
  });
});
