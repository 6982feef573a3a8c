import { expect } from 'chai';
import ndarray from 'ndarray';
import { argmax, argmaxRef } from '../../ops/argmax.js';
import { randomNd, testGpu } from '../helpers.js';

describe('argmax (kernels/argmax.wgsl)', () => {
  for (const shape of [[1, 1], [1, 7], [3, 255], [2, 32000], [5, 32001]]) {
    it(`matches the CPU reference for [${shape}]`, async () => {
      const gpu = await testGpu();
      const x = randomNd(shape, shape[1]);
      const tx = gpu.upload(shape, x.data);
      const y = argmax(gpu, tx);
      expect(Array.from(await y.read())).to.deep.equal(Array.from(argmaxRef(x).data));
      [tx, y].forEach((t) => t.dispose());
    });
  }

  it('returns the lowest index among ties, wherever the tied maxima sit', async () => {
    const gpu = await testGpu();
    const n = 1000;
    const rows = [[999, 3], [7, 263], [256, 512, 768], [0, 999], [518]];
    const x = new Float32Array(rows.length * n).fill(-5);
    rows.forEach((cols, r) => cols.forEach((c) => (x[r * n + c] = 2.5)));
    const tx = gpu.upload([rows.length, n], x);
    const y = argmax(gpu, tx);
    expect(Array.from(await y.read())).to.deep.equal([3, 7, 256, 0, 518]);
    expect(Array.from(argmaxRef(ndarray(x, [rows.length, n])).data)).to.deep.equal([3, 7, 256, 0, 518]);
    [tx, y].forEach((t) => t.dispose());
  });

  it('handles all-negative and all −inf rows', async () => {
    const gpu = await testGpu();
    const x = new Float32Array([-3, -1e30, -2, -2.5, -Infinity, -Infinity, -Infinity, -Infinity]);
    const tx = gpu.upload([2, 4], x);
    const y = argmax(gpu, tx);
    expect(Array.from(await y.read())).to.deep.equal([2, 0]);
    [tx, y].forEach((t) => t.dispose());
  });
});
