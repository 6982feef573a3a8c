import { expect } from 'chai';
import ndarray from 'ndarray';
import { argmax, argmaxPipelines, argmaxRef, NON_FINITE_ID } from '../../ops/argmax.js';
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

  // 256-column chunks: several workgroups per row and the second pass, whatever the adapter's default
  for (const shape of [[1, 1], [1, 257], [3, 255], [2, 32000], [5, 32001], [1, 70000]]) {
    it(`matches the CPU reference for [${shape}] in 256-column chunks`, async () => {
      const gpu = await testGpu();
      const x = randomNd(shape, shape[1] + 3);
      const tx = gpu.upload(shape, x.data);
      const y = argmax(gpu, tx, { chunkSize: 256 });
      expect(Array.from(await y.read())).to.deep.equal(Array.from(argmaxRef(x).data));
      [tx, y].forEach((t) => t.dispose());
    });
  }

  it('in chunks: the lowest index among ties in different chunks; NaN / +Inf in any chunk flags its row only', async () => {
    const gpu = await testGpu();
    const n = 2000;
    const rows = 5;
    const x = new Float32Array(rows * n).map((_, i) => Math.sin(i) - 2);
    x[0 * n + 1999] = 3; x[0 * n + 300] = 3; x[0 * n + 1024] = 3; // ties in chunks 7, 1, 4 → 300
    x[1 * n + 1500] = Number.NaN; //                                 NaN in a late chunk
    x[2 * n + 0] = Infinity; //                                      +Inf in the first
    x[3 * n + 700] = -Infinity; //                                   −Inf is ordinary
    x.fill(-Infinity, 4 * n, 5 * n); //                              all −Inf → 0
    const tx = gpu.upload([rows, n], x);
    for (const chunkSize of [256, 512, undefined]) {
      const y = argmax(gpu, tx, { chunkSize });
      const ids = Array.from(await y.read());
      expect(ids, `chunkSize ${chunkSize}`).to.deep.equal(Array.from(argmaxRef(ndarray(x, [rows, n])).data));
      expect(ids[0]).to.equal(300);
      expect([ids[1], ids[2]]).to.deep.equal([NON_FINITE_ID, NON_FINITE_ID]);
      expect(ids[4]).to.equal(0);
      y.dispose();
    }
    tx.dispose();
  });

  it('records at most 2 dispatches, both from argmaxPipelines', async () => {
    const gpu = await testGpu();
    const listed = new Set(argmaxPipelines().map((p) => `${p.kernel}:${p.entry}:${JSON.stringify(p.constants)}`));
    const tx = gpu.upload([2, 32000], randomNd([2, 32000], 9).data);
    const seen: string[] = [];
    const dispatch = gpu.dispatch.bind(gpu);
    gpu.dispatch = (d) => {
      seen.push(`${d.kernel}:${d.entry ?? 'main'}:${JSON.stringify(d.constants ?? {})}`);
      dispatch(d);
    };
    try {
      for (const chunkSize of [undefined, 256, 32000 + 256 - (32000 % 256)]) {
        seen.length = 0;
        const y = argmax(gpu, tx, { chunkSize });
        expect(seen.length).to.be.within(1, 2);
        for (const key of seen) expect(listed.has(key), key).to.equal(true);
        (await y.read(), y.dispose());
      }
    } finally {
      gpu.dispatch = dispatch;
      tx.dispose();
    }
  });
});
