import { expect } from 'chai';
import { add, addRef } from '../../ops/add.js';
import { f16Ref } from '../../ops/precision.js';
import { expectClose, F16_TOL, randomNd, testGpu, uploadAt } from '../helpers.js';

describe('add (kernels/add.wgsl)', () => {
  for (const shape of [[1], [7], [33, 255], [3, 1000, 7]]) {
    it(`matches the CPU reference for [${shape}]`, async () => {
      const gpu = await testGpu();
      const a = randomNd(shape, 1);
      const b = randomNd(shape, 2);
      const ta = gpu.upload(shape, a.data);
      const tb = gpu.upload(shape, b.data);
      const y = add(gpu, ta, tb);
      expectClose(await y.read(), addRef(a, b).data, { atol: 0, rtol: 0 });
      [ta, tb, y].forEach((t) => t.dispose());
    });
  }

  for (const shape of [[1], [7], [33, 255], [3, 1000, 7]]) {
    it(`f16: matches the f16-rounding reference exactly for [${shape}]`, async function () {
      const gpu = await testGpu();
      if (!gpu.hasF16) this.skip();
      const a = uploadAt(gpu, randomNd(shape, 1, -300, 300), 'f16');
      const b = uploadAt(gpu, randomNd(shape, 2), 'f16');
      const y = add(gpu, a.t, b.t);
      expect(y.dtype).to.equal('f16');
      // One f16 addition is the f32 sum rounded once: bit-exact with the reference.
      expectClose(await y.read(), f16Ref(addRef)(a.nd, b.nd).data, { atol: 0, rtol: 0 });
      [a.t, b.t, y].forEach((t) => t.dispose());
    });
  }

  for (const p of ['f32', 'f16'] as const) {
    it(`splits ${p} operands larger than one binding into aligned chunks`, async function () {
      const gpu = await testGpu();
      if (p === 'f16' && !gpu.hasF16) this.skip();
      const shape = [33, 255];
      const a = uploadAt(gpu, randomNd(shape, 3), p);
      const b = uploadAt(gpu, randomNd(shape, 4), p);
      const before = gpu.dispatchCount;
      const y = add(gpu, a.t, b.t, { maxBindingBytes: 8192 }); // 8415 elements: 5 chunks of f32, 3 of f16
      expect(gpu.dispatchCount - before).to.equal(p === 'f32' ? 5 : 3);
      const ref = addRef(a.nd, b.nd);
      expectClose(await y.read(), p === 'f32' ? ref.data : f16Ref(addRef)(a.nd, b.nd).data, { atol: 0, rtol: 0 });
      [a.t, b.t, y].forEach((t) => t.dispose());
    });
  }

  it('rejects mismatched shapes, naming both, and mixed precisions', async () => {
    const gpu = await testGpu();
    const a = gpu.empty([2, 3]);
    const b = gpu.empty([3, 2]);
    expect(() => add(gpu, a, b)).to.throw(/\[2,3\].*\[3,2\]/);
    const h = gpu.empty([2, 3], 'f16');
    expect(() => add(gpu, a, h)).to.throw(/b is f16 but the op runs at f32/);
    [a, b, h].forEach((t) => t.dispose());
  });
});
