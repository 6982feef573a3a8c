import { expect } from 'chai';
import { add, addRef } from '../../ops/add.js';
import { expectClose, randomNd, testGpu } from '../helpers.js';

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

  it('splits operands larger than one binding into aligned chunks', async () => {
    const gpu = await testGpu();
    const shape = [33, 255];
    const a = randomNd(shape, 3);
    const b = randomNd(shape, 4);
    const [ta, tb] = [gpu.upload(shape, a.data), gpu.upload(shape, b.data)];
    const before = gpu.dispatchCount;
    const y = add(gpu, ta, tb, { maxBindingBytes: 8192 }); // 8415 floats → 5 chunks
    expect(gpu.dispatchCount - before).to.equal(5);
    expectClose(await y.read(), addRef(a, b).data, { atol: 0, rtol: 0 });
    [ta, tb, y].forEach((t) => t.dispose());
  });

  it('rejects mismatched shapes, naming both', async () => {
    const gpu = await testGpu();
    const a = gpu.empty([2, 3]);
    const b = gpu.empty([3, 2]);
    expect(() => add(gpu, a, b)).to.throw(/\[2,3\].*\[3,2\]/);
    a.dispose();
    b.dispose();
  });
});
