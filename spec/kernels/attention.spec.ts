import { expect } from 'chai';
import { attention, attentionRef, prefillTiles, type AttentionOptions } from '../../ops/attention.js';
import { expectClose, randomNd, testGpu } from '../helpers.js';

interface Case {
  T: number;
  S: number;
  o: AttentionOptions;
}

const c = (T: number, S: number, nHeads: number, nKvHeads: number, headDim: number, queryOffset: number, kvLength: number): Case => ({
  T,
  S,
  o: { nHeads, nKvHeads, headDim, queryOffset, kvLength },
});

const cases: Case[] = [
  c(1, 1, 4, 4, 16, 0, 1),
  c(7, 7, 4, 2, 16, 0, 7),
  c(33, 40, 4, 1, 128, 0, 33),
  c(65, 65, 4, 4, 128, 0, 65),
  c(33, 100, 4, 2, 16, 40, 73), // chunked prefill after a cached prefix
  c(7, 30, 4, 1, 128, 20, 27),
  c(1, 1024, 4, 2, 128, 999, 1000), // decode over a long cache
  c(1, 1000, 4, 1, 16, 999, 1000),
  c(3, 600, 8, 2, 64, 500, 503),
  c(5, 16, 4, 2, 16, 10, 12), // queries past the cache's end see only keys < kvLength
  c(1, 1100, 32, 8, 64, 1099, 1100), // decode chunks of 128 keys
  c(1, 4096, 20, 4, 128, 4095, 4096), // a full 4096-key context: decode chunks of 256 keys
];

describe('attention (kernels/attention_prefill.wgsl, attention_decode.wgsl + attention_combine.wgsl)', () => {
  for (const { T, S, o } of cases) {
    for (const path of ['prefill', 'decode'] as const) {
      it(`${path}: T=${T}, S=${S}, heads ${o.nHeads}/${o.nKvHeads}×${o.headDim}, offset ${o.queryOffset}, kvLength ${o.kvLength}`, async () => {
        const gpu = await testGpu();
        const q = randomNd([T, o.nHeads * o.headDim], 1 + T);
        const k = randomNd([S, o.nKvHeads * o.headDim], 2 + S);
        const v = randomNd([S, o.nKvHeads * o.headDim], 3 + S);
        const [tq, tk, tv] = [q, k, v].map((a) => gpu.upload(a.shape, a.data));
        const y = attention(gpu, tq, tk, tv, { ...o, path });
        expectClose(await y.read(), attentionRef(q, k, v, o).data, { atol: 2e-6, rtol: 1e-4 });
        [tq, tk, tv, y].forEach((t) => t.dispose());
      });
    }
  }

  it('softmax is stable for large scores (|q·k| ≫ 88)', async () => {
    const gpu = await testGpu();
    const o = { nHeads: 2, nKvHeads: 1, headDim: 16, queryOffset: 0, kvLength: 20 };
    const q = randomNd([20, 32], 7, -30, 30);
    const k = randomNd([20, 16], 8, -30, 30);
    const v = randomNd([20, 16], 9);
    const [tq, tk, tv] = [q, k, v].map((a) => gpu.upload(a.shape, a.data));
    for (const path of ['prefill', 'decode'] as const) {
      const y = attention(gpu, tq, tk, tv, { ...o, path });
      expectClose(await y.read(), attentionRef(q, k, v, o).data, { atol: 1e-5, rtol: 1e-4 }, path);
      y.dispose();
    }
    [tq, tk, tv].forEach((t) => t.dispose());
  });

  it('picks tiles that fit workgroup memory', () => {
    expect(prefillTiles(128, 32768)).to.deep.equal({ BQ: 16, BK: 32 });
    expect(prefillTiles(128, 16384)).to.deep.equal({ BQ: 8, BK: 16 });
  });

  it('rejects mismatched shapes, naming both', async () => {
    const gpu = await testGpu();
    const o = { nHeads: 4, nKvHeads: 2, headDim: 16, queryOffset: 0, kvLength: 5 };
    const q = gpu.empty([5, 64]);
    const k = gpu.empty([8, 48]);
    const v = gpu.empty([8, 32]);
    const k2 = gpu.empty([8, 32]);
    const v2 = gpu.empty([9, 32]);
    expect(() => attention(gpu, q, k, v, o)).to.throw(/\[8,48\].*\[5,64\]/);
    expect(() => attention(gpu, q, k2, v2, o)).to.throw(/\[8,32\].*\[9,32\]/);
    expect(() => attention(gpu, q, k2, k2, { ...o, nKvHeads: 3 })).to.throw(/nKvHeads \(3\) must divide nHeads \(4\)/);
    expect(() => attention(gpu, q, k2, k2, { ...o, kvLength: 9 })).to.throw(/kvLength 9/);
    const live = gpu.pool.liveBytes; // a refused call allocates nothing
    const q12 = gpu.empty([5, 48]);
    const k12 = gpu.empty([8, 24]);
    const liveWithInputs = gpu.pool.liveBytes;
    expect(() => attention(gpu, q12, k12, k12, { ...o, headDim: 12, path: 'prefill' })).to.throw(/headDim a multiple of 8/);
    expect(gpu.pool.liveBytes).to.equal(liveWithInputs);
    [q12, k12].forEach((t) => t.dispose());
    expect(gpu.pool.liveBytes).to.equal(live);
    [q, k, v, k2, v2].forEach((t) => t.dispose());
  });
});
