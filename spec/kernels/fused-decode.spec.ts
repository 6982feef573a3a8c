/**
 * The fused decode kernels against their references (the unfused composition of the ops' CPU
 * references): kernels/qkv_rope.wgsl (ops/qkvRope.ts) and kernels/gate_up_swiglu.wgsl
 * (ops/gateUpSwiglu.ts). Ragged sizes: K a multiple of 8 (16-byte loads) and not, M = 1 … 8, grouped
 * query heads, odd head counts, f32 and f16 weights, positions far into the cache (RoPE angles).
 */
import { expect } from 'chai';
import ndarray from 'ndarray';
import { gateUpSwiglu, gateUpSwigluRef } from '../../ops/gateUpSwiglu.js';
import { linear, linearRef, MATVEC_MAX_M } from '../../ops/linear.js';
import { qkvRope, qkvRopeRef, type QkvRopeOptions } from '../../ops/qkvRope.js';
import { subgroupKernel, subgroupSource } from '../../ops/subgroups.js';
import { Gpu } from '../../runtime/gpu.js';
import { f16ToF32Array, f32ToF16Array } from '../../runtime/half.js';
import { expectClose, randomNd, testGpu } from '../helpers.js';

const stored = (data: Float32Array, dtype: 'f32' | 'f16') => (dtype === 'f32' ? data : f16ToF32Array(f32ToF16Array(data)));

/**
 * Each kernel on two devices: the shared test device (on an adapter with `subgroups` — lavapipe has
 * them, size 8 — the matrix-vector kernels reduce with the shuffle butterfly) and one opened with
 * `disableSubgroups` (the workgroup-memory tree every other adapter runs).
 */
let plain: Promise<Gpu> | undefined;
const DEVICES: [string, () => Promise<Gpu>][] = [
  ['the test device (subgroup reductions where the adapter has subgroups)', testGpu],
  ['a device without subgroups (workgroup-memory reductions)', () => (plain ??= Gpu.create({ disableSubgroups: true }))],
];
after(async () => {
  if (plain) (await plain).destroy();
});

for (const [name, device] of DEVICES) describe(name, () => {
  describe('qkv_rope: RMSNorm → Q/K/V → RoPE → KV-cache rows, one dispatch', () => {
    const cases: { M: number; K: number; heads: number; kvHeads: number; D: number; position: number; dtype: 'f32' | 'f16' }[] = [
      { M: 1, K: 16, heads: 4, kvHeads: 2, D: 8, position: 0, dtype: 'f32' },
      { M: 1, K: 64, heads: 4, kvHeads: 4, D: 16, position: 2047, dtype: 'f16' },
      { M: 3, K: 13, heads: 2, kvHeads: 2, D: 6, position: 5, dtype: 'f32' },
      { M: 3, K: 13, heads: 3, kvHeads: 1, D: 4, position: 9, dtype: 'f16' },
      { M: MATVEC_MAX_M, K: 40, heads: 5, kvHeads: 5, D: 10, position: 300, dtype: 'f16' },
      { M: 2, K: 256, heads: 2, kvHeads: 1, D: 256, position: 4000, dtype: 'f32' },
      { M: 6, K: 3, heads: 2, kvHeads: 2, D: 2, position: 1, dtype: 'f32' }, // 2 lanes per column pair, each finishing 3 rows
      { M: 7, K: 8, heads: 1, kvHeads: 1, D: 2, position: 0, dtype: 'f16' }, //  1 lane (one 16-byte load per row)
    ];
    cases.forEach((c, i) => {
      it(`x [${c.M}, ${c.K}], ${c.heads} q / ${c.kvHeads} kv heads of ${c.D}, at position ${c.position}, ${c.dtype} weights`, async () => {
        const gpu = await device();
        const o: QkvRopeOptions = { heads: c.heads, kvHeads: c.kvHeads, headDim: c.D, theta: 10000, eps: 1e-5, position: c.position };
        const rows = c.position + c.M + 2;
        const x = randomNd([c.M, c.K], 10 + i);
        const gamma = randomNd([c.K], 20 + i, 0.5, 1.5);
        const w = [c.heads, c.kvHeads, c.kvHeads].map((h, j) => randomNd([h * c.D, c.K], 30 + 3 * i + j));
        const caches = [0, 1].map((j) => randomNd([rows, c.kvHeads * c.D], 60 + 2 * i + j)); // rows outside the write keep their values
        const t = {
          gamma: gpu.upload([c.K], gamma.data),
          wq: gpu.upload(w[0].shape, w[0].data, c.dtype),
          wk: gpu.upload(w[1].shape, w[1].data, c.dtype),
          wv: gpu.upload(w[2].shape, w[2].data, c.dtype),
          kCache: gpu.upload(caches[0].shape, caches[0].data),
          vCache: gpu.upload(caches[1].shape, caches[1].data),
        };
        const tx = gpu.upload([c.M, c.K], x.data);
        const before = gpu.dispatchCount;
        const q = qkvRope(gpu, tx, t, o);
        expect(gpu.dispatchCount - before, 'one dispatch').to.equal(1);
        const asStored = (nd: ndarray.NdArray<Float32Array>) => ndarray(stored(nd.data, c.dtype), nd.shape.slice());
        const ref = qkvRopeRef(x, { gamma, wq: asStored(w[0]), wk: asStored(w[1]), wv: asStored(w[2]), kCache: caches[0], vCache: caches[1] }, o);
        const tol = { atol: 1e-5 * Math.sqrt(c.K), rtol: 1e-4 };
        expectClose((await q.read()) as Float32Array, ref.data, tol, 'q');
        expectClose((await t.kCache.read()) as Float32Array, caches[0].data, tol, 'key cache');
        expectClose((await t.vCache.read()) as Float32Array, caches[1].data, tol, 'value cache');
        [q, tx, ...Object.values(t)].forEach((u) => u.dispose());
      });
    });

    it('takes the unfused ops for prompts (M > 8) and attention biases, with the same result', async () => {
      const gpu = await device();
      const [M, K, D] = [MATVEC_MAX_M + 3, 24, 8];
      const o: QkvRopeOptions = { heads: 2, kvHeads: 2, headDim: D, theta: 10000, eps: 1e-6, position: 1 };
      const x = randomNd([M, K], 1);
      const nd = (shape: number[], seed: number) => randomNd(shape, seed);
      const a = { gamma: nd([K], 2), wq: nd([2 * D, K], 3), wk: nd([2 * D, K], 4), wv: nd([2 * D, K], 5), bq: nd([2 * D], 6), kCache: nd([M + 1, 2 * D], 7), vCache: nd([M + 1, 2 * D], 8) };
      const t = Object.fromEntries(Object.entries(a).map(([k, v]) => [k, gpu.upload(v.shape, v.data)])) as Record<keyof typeof a, ReturnType<typeof gpu.upload>>;
      const tx = gpu.upload([M, K], x.data);
      const before = gpu.dispatchCount;
      const q = qkvRope(gpu, tx, t, o);
      expect(gpu.dispatchCount - before).to.be.greaterThan(1);
      const ref = qkvRopeRef(x, a, o);
      expectClose((await q.read()) as Float32Array, ref.data, { atol: 1e-5, rtol: 1e-4 }, 'q');
      expectClose((await t.kCache.read()) as Float32Array, a.kCache.data, { atol: 1e-5, rtol: 1e-4 }, 'key cache');
      [q, tx, ...Object.values(t)].forEach((u) => u.dispose());
    });

    it('refuses rows that do not fit the cache and mismatched weights, naming them', async () => {
      const gpu = await device();
      const o: QkvRopeOptions = { heads: 2, kvHeads: 1, headDim: 4, theta: 10000, eps: 1e-6, position: 3 };
      const t = {
        gamma: gpu.empty([8]), wq: gpu.empty([8, 8]), wk: gpu.empty([4, 8]), wv: gpu.empty([4, 8]), kCache: gpu.empty([4, 4]), vCache: gpu.empty([4, 4]),
      };
      const x = gpu.empty([2, 8]);
      expect(() => qkvRope(gpu, x, t, o)).to.throw(/rows 3 … 4 do not fit the cache of 4 positions/);
      expect(() => qkvRope(gpu, x, { ...t, wk: t.wq }, { ...o, position: 0 })).to.throw(/wk is \[8,8\], expected \[4,8\]/);
      [x, ...Object.values(t)].forEach((u) => u.dispose());
    });
  });

  describe('gate_up_swiglu: RMSNorm → gate, up → SwiGLU, one dispatch', () => {
    const cases: [M: number, N: number, K: number, dtype: 'f32' | 'f16'][] = [
      [1, 7, 13, 'f32'], [1, 172, 64, 'f16'], [3, 33, 40, 'f32'], [MATVEC_MAX_M, 65, 9, 'f16'], [2, 5, 512, 'f16'], [5, 9, 3, 'f32'], [MATVEC_MAX_M, 3, 16, 'f16'],
    ];
    cases.forEach(([M, N, K, dtype], i) => {
      it(`x [${M}, ${K}] → [${M}, ${N}], ${dtype} weights`, async () => {
        const gpu = await device();
        const x = randomNd([M, K], 80 + i);
        const gamma = randomNd([K], 90 + i, 0.5, 1.5);
        const wg = randomNd([N, K], 100 + i);
        const wu = randomNd([N, K], 110 + i);
        const tx = gpu.upload([M, K], x.data);
        const tg = gpu.upload([K], gamma.data);
        const twg = gpu.upload([N, K], wg.data, dtype);
        const twu = gpu.upload([N, K], wu.data, dtype);
        const before = gpu.dispatchCount;
        const y = gateUpSwiglu(gpu, tx, tg, 1e-5, twg, twu);
        expect(gpu.dispatchCount - before, 'one dispatch').to.equal(1);
        const ref = gateUpSwigluRef(x, gamma, 1e-5, ndarray(stored(wg.data, dtype), [N, K]), ndarray(stored(wu.data, dtype), [N, K]));
        expectClose((await y.read()) as Float32Array, ref.data, { atol: 1e-5 * Math.sqrt(K), rtol: 1e-4 }, 'y');
        [tx, tg, twg, twu, y].forEach((t) => t.dispose());
      });
    });
  });

  describe('linear_matvec (decode-sized rows, with the residual epilogue)', () => {
    const cases: [M: number, N: number, K: number, dtype: 'f32' | 'f16'][] = [[1, 7, 33, 'f32'], [3, 129, 7, 'f16'], [MATVEC_MAX_M, 33, 255, 'f32'], [2, 70, 8, 'f16'], [1, 300, 512, 'f16']];
    cases.forEach(([M, N, K, dtype], i) => {
      it(`x [${M}, ${K}] · w [${N}, ${K}]ᵀ ${dtype} + residual`, async () => {
        const gpu = await device();
        const x = randomNd([M, K], 120 + i);
        const w = randomNd([N, K], 130 + i);
        const r = randomNd([M, N], 140 + i);
        const tx = gpu.upload([M, K], x.data);
        const tw = gpu.upload([N, K], w.data, dtype);
        const tr = gpu.upload([M, N], r.data);
        const y = linear(gpu, tx, tw, undefined, { residual: tr });
        const ref = linearRef(x, ndarray(stored(w.data, dtype), [N, K]), undefined, { residual: r });
        expectClose((await y.read()) as Float32Array, ref.data, { atol: 1e-5 * Math.sqrt(K), rtol: 1e-4 }, 'y');
        [tx, tw, tr, y].forEach((t) => t.dispose());
      });
    });
  });
});

describe('subgroup variants of the matrix-vector kernels (ops/subgroups.ts)', () => {
  it('a device opened without subgroups takes the plain kernels', async () => {
    const gpu = await DEVICES[1][1]();
    expect(gpu.subgroupMinSize).to.equal(0);
    expect(subgroupKernel(gpu, 'linear_matvec', 32)).to.deep.equal({ kernel: 'linear_matvec', SUBGROUPS: 0, lanes: 32 });
  });

  it('strips only the //subgroups: markers; the plain kernels hold no live subgroup code', () => {
    expect(subgroupSource('//subgroups: enable subgroups;\nfn f() {}\n// a comment\n')).to.equal('enable subgroups;\nfn f() {}\n// a comment\n');
  });

  it('are taken wherever the device has subgroups, with a column\'s lanes capped at the subgroup size (lavapipe: 8)', async () => {
    const gpu = await testGpu();
    for (const kernel of ['linear_matvec', 'qkv_rope', 'gate_up_swiglu']) {
      expect(gpu.kernelSource(kernel)).to.not.match(/^[^/]*subgroup(Add|ShuffleXor)/m);
      if (!gpu.subgroupMinSize) continue; // an adapter without subgroups runs only the tree (the specs above)
      expect(subgroupKernel(gpu, kernel, gpu.subgroupMinSize)).to.deep.equal({ kernel: `${kernel}+subgroups`, SUBGROUPS: 1, lanes: gpu.subgroupMinSize });
      expect(subgroupKernel(gpu, kernel, 2 * gpu.subgroupMinSize).lanes, 'capped at the subgroup size').to.equal(gpu.subgroupMinSize);
      expect(subgroupKernel(gpu, kernel, 2).lanes).to.equal(2);
      expect(gpu.kernelSource(`${kernel}+subgroups`)).to.match(/^enable subgroups;$/m);
    }
  });
});
