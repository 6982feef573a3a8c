import { expect } from 'chai';
import ndarray from 'ndarray';
import { embedding, embeddingChunks, embeddingRef } from '../../ops/embedding.js';
import { uploadWeight } from '../../ops/linear.js';
import { f16Ref } from '../../ops/precision.js';
import { f16ToF32Array, f32ToF16Array } from '../../runtime/half.js';
import { roundTrip } from '../../runtime/quant.js';
import { expectClose, randomNd, rng, testGpu } from '../helpers.js';

function randomIds(n: number, vocab: number, seed: number): Uint32Array {
  const r = rng(seed);
  return Uint32Array.from({ length: n }, () => Math.floor(r() * vocab));
}

/** Exact equality that also holds for ±inf (expectClose measures a difference, which inf − inf is not). */
function expectEqual(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string): void {
  expect(actual.length, `${label} length`).to.equal(expected.length);
  const bad: string[] = [];
  let count = 0;
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i] && ++count <= 8) bad.push(`  [${i}] got ${actual[i]}, expected ${expected[i]}`);
  }
  if (count) throw new Error(`${label}: ${count} of ${expected.length} elements differ; first:\n${bad.join('\n')}`);
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

  // f16 rows: each element is the table's value rounded once to f16 (exact for an f16 table), so
  // they equal f16Ref(embeddingRef) bit for bit.
  for (const dtype of ['f32', 'f16', 'q8', 'q4'] as const) {
    for (const [T, V, D] of [[1, 1, 1], [7, 50, 7], [33, 1000, 64], [65, 300, 255]]) {
      it(`f16 rows: match the f16-rounding reference exactly: ${dtype} table [${V}, ${D}], T=${T}`, async function () {
        const gpu = await testGpu();
        if (!gpu.hasF16) this.skip();
        const values = randomNd([V, D], V + D, -70000, 70000); // f32 rows past the f16 range: ±inf
        if (dtype !== 'f32') values.data.forEach((v, i) => (values.data[i] = v / 8192)); // f16 / q ranges
        const table =
          dtype === 'f16' ? ndarray(f16ToF32Array(f32ToF16Array(values.data)), [V, D])
          : dtype === 'q8' || dtype === 'q4' ? ndarray(roundTrip(values.data, V, D, dtype), [V, D])
          : values;
        const ids = randomIds(T, V, T);
        const tt = uploadWeight(gpu, values.data, [V, D], dtype);
        const ti = gpu.upload([T], ids, 'u32');
        const y = embedding(gpu, ti, tt, { dtype: 'f16' });
        expect(y.dtype).to.equal('f16');
        expect(y.shape).to.deep.equal([T, D]);
        expectEqual(await y.read(), f16Ref(embeddingRef)(ids, table).data, `${dtype} table → f16 rows`);
        [tt, ti, y].forEach((t) => t.dispose());
      });
    }
  }

  it('f16 rows: CPU ids, and zero rows for out-of-range ids in a GPU tensor', async function () {
    const gpu = await testGpu();
    if (!gpu.hasF16) this.skip();
    const table = randomNd([10, 5], 5);
    const tt = gpu.upload([10, 5], table.data);
    const y = embedding(gpu, [9, 0, 3], tt, { dtype: 'f16' });
    expectClose(await y.read(), f16Ref(embeddingRef)([9, 0, 3], table).data, { atol: 0, rtol: 0 });
    const ti = gpu.upload([3], [2, 10, 0xffffffff], 'u32');
    const z = embedding(gpu, ti, tt, { dtype: 'f16' });
    const got = await z.read();
    expect(Array.from(got.slice(5))).to.deep.equal(new Array(10).fill(0));
    expectClose(got.slice(0, 5), f16Ref(embeddingRef)([2], table).data, { atol: 0, rtol: 0 });
    [tt, y, ti, z].forEach((t) => t.dispose());
  });

  it('rejects an output dtype that is not an activation precision', async () => {
    const gpu = await testGpu();
    const tt = gpu.empty([10, 4]);
    expect(() => embedding(gpu, [1], tt, { dtype: 'bf16' as 'f16' })).to.throw(/embedding: options.dtype .* must be 'f32' or 'f16', got 'bf16'/);
    tt.dispose();
  });

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
    if (gpu.hasF16) {
      // f16 rows from the same two-chunk table: the f16 values, unchanged
      const h = embedding(gpu, ids, tt, { dtype: 'f16' });
      const gotH = await h.read();
      ids.forEach((id, t) => expectClose(gotH.slice(t * D, (t + 1) * D), rowValues[rows.indexOf(id)], { atol: 0, rtol: 0 }, `f16 row ${t} (id ${id})`));
      h.dispose();
    }
    [tt, y].forEach((t) => t.dispose());
    gpu.pool.trim();
  });
});
