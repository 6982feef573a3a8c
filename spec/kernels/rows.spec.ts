import { expect } from 'chai';
import { sliceRows, sliceRowsRef, writeRows, writeRowsRef } from '../../ops/rows.js';
import { expectClose, randomNd, testGpu } from '../helpers.js';

const EXACT = { atol: 0, rtol: 0 };

describe('sliceRows / writeRows (ops/rows.ts, buffer copies)', () => {
  const cases: [number[], number, number][] = [[[1], 0, 1], [[7, 3], 2, 4], [[33, 5, 7], 32, 1], [[255, 33], 0, 255], [[40, 17], 13, 0]];
  for (const [shape, start, count] of cases) {
    it(`sliceRows([${shape}], ${start}, ${count}) matches the reference`, async () => {
      const gpu = await testGpu();
      const x = randomNd(shape, 71);
      const tx = gpu.upload(shape, x.data);
      const y = sliceRows(gpu, tx, start, count);
      const ref = sliceRowsRef(x, start, count);
      expect(y.shape).to.deep.equal(ref.shape);
      expectClose(await y.read(), ref.data, EXACT);
      [tx, y].forEach((t) => t.dispose());
    });
  }

  const writes: [number, number, number, number][] = [[1, 1, 1, 0], [3, 10, 7, 7], [5, 9, 33, 0], [1, 2048, 64, 2047]];
  for (const [T, S, C, offset] of writes) {
    it(`writeRows [${T}, ${C}] into [${S}, ${C}] at row ${offset} leaves the other rows alone`, async () => {
      const gpu = await testGpu();
      const src = randomNd([T, C], 72);
      const dst = randomNd([S, C], 73);
      const [ts, td] = [gpu.upload([T, C], src.data), gpu.upload([S, C], dst.data)];
      writeRows(gpu, ts, td, offset);
      expectClose(await td.read(), writeRowsRef(src, dst, offset).data, EXACT);
      [ts, td].forEach((t) => t.dispose());
    });
  }

  it('copies a 16 MB activation in row chunks and reassembles it', async () => {
    const gpu = await testGpu();
    const shape = [4096, 1024];
    const x = randomNd(shape, 74);
    const tx = gpu.upload(shape, x.data);
    const whole = gpu.empty(shape);
    for (const [start, count] of [[0, 1000], [1000, 3000], [4000, 96]]) {
      const part = sliceRows(gpu, tx, start, count);
      writeRows(gpu, part, whole, start);
      part.dispose();
    }
    expectClose(await whole.read(), x.data, EXACT);
    [tx, whole].forEach((t) => t.dispose());
  });

  it('copies u32 and even-length f16 rows', async () => {
    const gpu = await testGpu();
    const ids = gpu.upload([4, 2], [1, 2, 3, 4, 5, 6, 7, 8], 'u32');
    expect(Array.from(await sliceRows(gpu, ids, 1, 2).read())).to.deep.equal([3, 4, 5, 6]);
    const half = gpu.upload([3, 4], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 'f16');
    expect(Array.from(await sliceRows(gpu, half, 2, 1).read())).to.deep.equal([8, 9, 10, 11]);
    const odd = gpu.upload([3, 3], [0, 1, 2, 3, 4, 5, 6, 7, 8], 'f16');
    expect(() => sliceRows(gpu, odd, 1, 1)).to.throw(/multiple of 4/);
    [ids, half, odd].forEach((t) => t.dispose());
  });

  it('rejects out-of-range rows and mismatched row shapes, naming the shapes', async () => {
    const gpu = await testGpu();
    const x = gpu.empty([5, 3]);
    const y = gpu.empty([2, 4]);
    const z = gpu.empty([4, 3]);
    expect(() => sliceRows(gpu, x, 4, 2)).to.throw(/\[5,3\]/);
    expect(() => writeRows(gpu, y, x, 0)).to.throw(/\[2,4\].*\[5,3\]/);
    expect(() => writeRows(gpu, z, x, 2)).to.throw(/\[4,3\].*\[5,3\]/);
    [x, y, z].forEach((t) => t.dispose());
  });
});
