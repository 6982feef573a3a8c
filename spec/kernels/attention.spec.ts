import { expect } from 'chai';
import { attention, attentionRef, prefillTiles, type AttentionOptions } from '../../ops/attention.js';
import { f16Ref } from '../../ops/precision.js';
import { expectClose, F16_TOL, randomNd, testGpu, uploadAt } from '../helpers.js';

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

/** f16 only: odd head counts (3, 5, 7 heads; GQA 5:1), headDim 8 and 32, caches not a multiple of any chunk. */
const f16Extra: Case[] = [
  c(9, 9, 3, 3, 32, 0, 9),
  c(2, 700, 5, 1, 16, 690, 692),
  c(1, 300, 7, 7, 8, 299, 300),
  c(4, 2100, 5, 5, 128, 2095, 2099), // decode chunks of 256 (2100 keys · 20 rows ≥ 264 workgroups), last chunk ragged
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

  // f16: q and the caches are f16 (the KV cache at f16 is what halves decode's bytes); scores,
  // softmax and P·V run in f32 and the output is rounded once, so the reference is the f32 one on
  // the rounded inputs with its output rounded (f16Ref).
  for (const { T, S, o } of [...cases, ...f16Extra]) {
    for (const path of ['prefill', 'decode'] as const) {
      it(`f16 ${path}: T=${T}, S=${S}, heads ${o.nHeads}/${o.nKvHeads}×${o.headDim}, offset ${o.queryOffset}, kvLength ${o.kvLength}`, async function () {
        const gpu = await testGpu();
        if (!gpu.hasF16) this.skip();
        const q = uploadAt(gpu, randomNd([T, o.nHeads * o.headDim], 1 + T), 'f16');
        const k = uploadAt(gpu, randomNd([S, o.nKvHeads * o.headDim], 2 + S), 'f16');
        const v = uploadAt(gpu, randomNd([S, o.nKvHeads * o.headDim], 3 + S), 'f16');
        const y = attention(gpu, q.t, k.t, v.t, { ...o, path });
        expect(y.dtype).to.equal('f16');
        expectClose(await y.read(), f16Ref(attentionRef)(q.nd, k.nd, v.nd, o).data, F16_TOL);
        [q.t, k.t, v.t, y].forEach((t) => t.dispose());
      });
    }
  }

  it('f16: without `path`, up to 4 queries take the split-K decode path (2 dispatches), more the prefill one (1)', async function () {
    const gpu = await testGpu();
    if (!gpu.hasF16) this.skip();
    const o = { nHeads: 6, nKvHeads: 2, headDim: 64, queryOffset: 60, kvLength: 0 };
    const k = uploadAt(gpu, randomNd([80, 128], 11), 'f16');
    const v = uploadAt(gpu, randomNd([80, 128], 12), 'f16');
    for (const [T, dispatches] of [[4, 2], [5, 1]]) {
      const q = uploadAt(gpu, randomNd([T, 384], 10 + T), 'f16');
      const ot = { ...o, kvLength: o.queryOffset + T };
      const before = gpu.dispatchCount;
      const y = attention(gpu, q.t, k.t, v.t, ot);
      expect(gpu.dispatchCount - before, `T=${T}`).to.equal(dispatches);
      expect(y.dtype).to.equal('f16');
      expectClose(await y.read(), f16Ref(attentionRef)(q.nd, k.nd, v.nd, ot).data, F16_TOL, `T=${T}`);
      [q.t, y].forEach((t) => t.dispose());
    }
    [k.t, v.t].forEach((t) => t.dispose());
  });

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

  it('f16: softmax is stable for large scores (|q·k| ≫ 88)', async function () {
    const gpu = await testGpu();
    if (!gpu.hasF16) this.skip();
    const o = { nHeads: 2, nKvHeads: 1, headDim: 16, queryOffset: 0, kvLength: 20 };
    const q = uploadAt(gpu, randomNd([20, 32], 7, -30, 30), 'f16');
    const k = uploadAt(gpu, randomNd([20, 16], 8, -30, 30), 'f16');
    const v = uploadAt(gpu, randomNd([20, 16], 9), 'f16');
    for (const path of ['prefill', 'decode'] as const) {
      const y = attention(gpu, q.t, k.t, v.t, { ...o, path });
      expectClose(await y.read(), f16Ref(attentionRef)(q.nd, k.nd, v.nd, o).data, F16_TOL, path);
      y.dispose();
    }
    [q.t, k.t, v.t].forEach((t) => t.dispose());
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

  it('rejects mixed precisions and non-activation dtypes, naming the operand', async () => {
    const gpu = await testGpu();
    const o = { nHeads: 4, nKvHeads: 2, headDim: 16, queryOffset: 0, kvLength: 5 };
    const q32 = gpu.empty([5, 64]);
    const q16 = gpu.empty([5, 64], 'f16');
    const k32 = gpu.empty([8, 32]);
    const k16 = gpu.empty([8, 32], 'f16');
    const ku = gpu.empty([8, 32], 'u32');
    const qu = gpu.empty([5, 64], 'u32');
    const live = gpu.pool.liveBytes; // a refused call allocates nothing
    expect(() => attention(gpu, q16, k32, k32, o)).to.throw(/attention: kCache is f32 but the op runs at f16/);
    expect(() => attention(gpu, q32, k32, k16, o)).to.throw(/attention: vCache is f16 but the op runs at f32/);
    expect(() => attention(gpu, q32, ku, k32, o)).to.throw(/attention: kCache is u32/);
    expect(() => attention(gpu, qu, k32, k32, o)).to.throw(/attention: q must be an f32 or f16 activation tensor, got u32/);
    expect(gpu.pool.liveBytes).to.equal(live);
    [q32, q16, k32, k16, ku, qu].forEach((t) => t.dispose());
  });
});
