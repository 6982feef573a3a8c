import { expect } from 'chai';
import ndarray from 'ndarray';
import { embedding, embeddingChunks, embeddingRef } from '../../ops/embedding.js';
import { f16ToF32Array, f32ToF16Array } from '../../runtime/half.js';
import { expectClose, randomNd, rng, testGpu } from '../helpers.js';

function randomIds(n: number, vocab: number, seed: number): Uint32Array {
  const r = rng(seed);
  return Uint32Array.from({ length: n }, () => Math.floor(r() * vocab));
}

describe('embedding (kernels/embedding.wgsl)', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    for (const [T, V, D] of [[1, 1, 1], [7, 50, 7], [33, 1000, 64], [65, 300, 255]]) {
      it(`matches the CPU reference: ${dtype} table [${V}, ${D}], T=${T}`, async () => {
        const gpu = await testGpu();
        let table = randomNd([V, D], V + D);
        if (dtype === 'f16') table = ndarray(f16ToF32Array(f32ToF16Array(table.data)), [V, D]);
        const ids = randomIds(T, V, T);
        const tt = gpu.upload([V, D], table.data, dtype);
        const ti = gpu.upload([T], ids, 'u32');
        const y = embedding(gpu, ti, tt);
        expect(y.shape).to.deep.equal([T, D]);
        expectClose(await y.read(), embeddingRef(ids, table).data, { atol: 0, rtol: 0 });
        [tt, ti, y].forEach((t) => t.dispose());
      });
    }
  }

  it('accepts CPU ids and rejects an out-of-range one, naming it and V', async () => {
    const gpu = await testGpu();
    const table = randomNd([10, 4], 3);
    const tt = gpu.upload([10, 4], table.data);
    const y = embedding(gpu, [9, 0, 3], tt);
    expectClose(await y.read(), embeddingRef([9, 0, 3], table).data, { atol: 0, rtol: 0 });
    expect(() => embedding(gpu, [1, 10], tt)).to.throw(/ids\[1\] = 10.*\[10,4\]/);
    [tt, y].forEach((t) => t.dispose());
  });

  it('writes zero rows for out-of-range ids in a GPU tensor', async () => {
    const gpu = await testGpu();
    const table = randomNd([10, 4], 4);
    const tt = gpu.upload([10, 4], table.data);
    const ti = gpu.upload([3], [2, 10, 0xffffffff], 'u32');
    const y = embedding(gpu, ti, tt);
    const got = await y.read();
    expect(Array.from(got.slice(4))).to.deep.equal([0, 0, 0, 0, 0, 0, 0, 0]);
    expectClose(got.slice(0, 4), table.data.slice(8, 12), { atol: 0, rtol: 0 });
    [tt, ti, y].forEach((t) => t.dispose());
  });

  it('splits a table into aligned row ranges that each fit one binding', () => {
    const chunks = embeddingChunks(32000, 4096, 'f16', 2 ** 27);
    expect(chunks.map((c) => c.rowCount).reduce((a, b) => a + b)).to.equal(32000);
    for (const c of chunks) {
      expect((c.rowStart * 4096 * 2) % 256).to.equal(0);
      expect(c.rowCount * 4096 * 2).to.be.at.most(2 ** 27);
    }
    // odd D with f16: starts still land on 256-byte (so whole-word) boundaries
    for (const c of embeddingChunks(1000, 7, 'f16', 4000)) expect((c.rowStart * 14) % 256).to.equal(0);
  });

  it('gathers from an f16 table larger than one binding (16500 × 4096 ≈ 135 MB)', async () => {
    const gpu = await testGpu();
    const [V, D] = [16500, 4096];
    expect(V * D * 2).to.be.above(gpu.limits.maxStorageBufferBindingSize);
    const chunks = embeddingChunks(V, D, 'f16', gpu.limits.maxStorageBufferBindingSize);
    expect(chunks.length).to.equal(2);
    const tt = gpu.empty([V, D], 'f16');
    // fill only the rows we read, on both sides of the chunk boundary
    const boundary = chunks[1].rowStart;
    const rows = [0, 1, boundary - 1, boundary, boundary + 1, V - 1];
    const rowValues = rows.map((r, k) => f16ToF32Array(f32ToF16Array(randomNd([D], 100 + k).data)));
    rows.forEach((r, k) => gpu.write(tt, rowValues[k], r * D));
    const ids = [boundary, V - 1, 0, boundary - 1, 1, boundary + 1, boundary];
    const y = embedding(gpu, ids, tt);
    const got = await y.read();
    ids.forEach((id, t) => expectClose(got.slice(t * D, (t + 1) * D), rowValues[rows.indexOf(id)], { atol: 0, rtol: 0 }, `row ${t} (id ${id})`));
    [tt, y].forEach((t) => t.dispose());
    gpu.pool.trim();
  });
});
