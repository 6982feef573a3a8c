/**
 * The fused decode kernels against their references (the unfused composition of the ops' CPU
 * references): kernels/qkv_rope.wgsl (ops/qkvRope.ts) and kernels/gate_up_swiglu.wgsl
 * (ops/gateUpSwiglu.ts). Ragged sizes: K a multiple of 8 (16-byte loads) and not, M = 1 … 8, grouped
 * query heads, odd head counts, f32 and f16 weights, positions far into the cache (RoPE angles).
 *
 * f16 activations (ops/precision.ts): x, q, the caches and y in f16. The fused kernels compute in f32
 * and round only at their stores, so their reference is the same f32 composition on the f16 values
 * with the outputs rounded to f16 (`f16Ref`, and the written cache rows rounded): F16_TOL, one ulp.
 */
import { expect } from 'chai';
import ndarray from 'ndarray';
import { gateUpSwiglu, gateUpSwigluRef } from '../../ops/gateUpSwiglu.js';
import { linear, linearRef, MATVEC_MAX_M, uploadWeight } from '../../ops/linear.js';
import { f16Ref, precisionKernel, roundF16Array } from '../../ops/precision.js';
import { qkvRope, qkvRopeRef, type QkvOperands, type QkvRopeOptions } from '../../ops/qkvRope.js';
import { subgroupKernel, subgroupSource } from '../../ops/subgroups.js';
import { Gpu } from '../../runtime/gpu.js';
import { f16ToF32Array, f32ToF16Array } from '../../runtime/half.js';
import { roundTrip, type QuantDType } from '../../runtime/quant.js';
import { expectClose, expectRelL2, F16_TOL, randomNd, testGpu, uploadAt } from '../helpers.js';

const stored = (data: Float32Array, dtype: 'f32' | 'f16') => (dtype === 'f32' ? data : f16ToF32Array(f32ToF16Array(data)));

type WeightDType = 'f32' | 'f16' | QuantDType;

/** The values a weight of `dtype` holds (what the reference must be given): f16-rounded, or quantized and back. */
const storedWeight = (w: ndarray.NdArray<Float32Array>, dtype: WeightDType) =>
  ndarray(dtype === 'q8' || dtype === 'q4' ? roundTrip(w.data, w.shape[0], w.shape[1], dtype) : stored(w.data, dtype), w.shape.slice());

/**
 * The fused f16 kernel's reference: qkvRopeRef on the f16 values, its outputs rounded to f16 — q, and
 * the cache rows it wrote (the other rows hold f16 values already, which rounding leaves alone).
 */
function qkvRopeF16Ref(x: ndarray.NdArray<Float32Array>, a: QkvOperands<ndarray.NdArray<Float32Array>>, o: QkvRopeOptions) {
  const q = f16Ref(qkvRopeRef)(x, a, o);
  roundF16Array(a.kCache.data);
  roundF16Array(a.vCache.data);
  return q;
}

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

    const f16Cases: (Omit<(typeof cases)[number], 'dtype'> & { dtype: WeightDType })[] = [
      ...cases,
      { M: 1, K: 64, heads: 4, kvHeads: 2, D: 8, position: 4000, dtype: 'q8' },
      { M: 4, K: 40, heads: 3, kvHeads: 1, D: 8, position: 17, dtype: 'q4' },
      { M: MATVEC_MAX_M, K: 7, heads: 2, kvHeads: 2, D: 6, position: 3, dtype: 'q8' },
      { M: 2, K: 96, heads: 5, kvHeads: 5, D: 4, position: 1999, dtype: 'q4' },
    ];
    f16Cases.forEach((c, i) => {
      it(`f16: x [${c.M}, ${c.K}], ${c.heads} q / ${c.kvHeads} kv heads of ${c.D}, at position ${c.position}, ${c.dtype} weights, f16 caches`, async function () {
        const gpu = await device();
        if (!gpu.hasF16) this.skip();
        const o: QkvRopeOptions = { heads: c.heads, kvHeads: c.kvHeads, headDim: c.D, theta: 10000, eps: 1e-5, position: c.position };
        const rows = c.position + c.M + 2;
        const x = uploadAt(gpu, randomNd([c.M, c.K], 10 + i), 'f16');
        const gamma = randomNd([c.K], 20 + i, 0.5, 1.5);
        const w = [c.heads, c.kvHeads, c.kvHeads].map((h, j) => randomNd([h * c.D, c.K], 30 + 3 * i + j));
        const [kc, vc] = [0, 1].map((j) => uploadAt(gpu, randomNd([rows, c.kvHeads * c.D], 60 + 2 * i + j), 'f16')); // rows outside the write keep their values
        const t = {
          gamma: gpu.upload([c.K], gamma.data),
          wq: uploadWeight(gpu, w[0].data, w[0].shape, c.dtype),
          wk: uploadWeight(gpu, w[1].data, w[1].shape, c.dtype),
          wv: uploadWeight(gpu, w[2].data, w[2].shape, c.dtype),
          kCache: kc.t,
          vCache: vc.t,
        };
        const before = gpu.dispatchCount;
        const q = qkvRope(gpu, x.t, t, o);
        expect(gpu.dispatchCount - before, 'one dispatch').to.equal(1);
        expect([q.dtype, t.kCache.dtype, t.vCache.dtype]).to.deep.equal(['f16', 'f16', 'f16']);
        const [wq, wk, wv] = w.map((nd) => storedWeight(nd, c.dtype));
        const ref = qkvRopeF16Ref(x.nd, { gamma, wq, wk, wv, kCache: kc.nd, vCache: vc.nd }, o);
        expectClose(await q.read(), ref.data, F16_TOL, 'q');
        expectClose(await t.kCache.read(), kc.nd.data, F16_TOL, 'key cache');
        expectClose(await t.vCache.read(), vc.nd.data, F16_TOL, 'value cache');
        [q, x.t, ...Object.values(t)].forEach((u) => u.dispose());
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
    // needs the f16 rmsNorm/linear/rope from the other branches
    for (const [what, M, withBias] of [['a prompt (M > 8)', MATVEC_MAX_M + 3, false], ['attention biases', 2, true]] as const) {
      it(`f16: takes the unfused ops for ${what}, within relL2 2e-3 of the f32 reference (each op rounds to f16)`, async function () {
        const gpu = await device();
        if (!gpu.hasF16) this.skip();
        const [K, D, position] = [24, 8, 5];
        const o: QkvRopeOptions = { heads: 3, kvHeads: 1, headDim: D, theta: 10000, eps: 1e-6, position };
        const rows = position + M + 2;
        const x = uploadAt(gpu, randomNd([M, K], 1), 'f16');
        const gamma = randomNd([K], 2, 0.5, 1.5);
        const w = [3, 1, 1].map((h, j) => randomNd([h * D, K], 3 + j));
        const b = withBias ? [3, 1, 1].map((h, j) => randomNd([h * D], 6 + j)) : [];
        const [kc, vc] = [0, 1].map((j) => uploadAt(gpu, randomNd([rows, D], 9 + j), 'f16'));
        const t = {
          gamma: gpu.upload([K], gamma.data),
          wq: gpu.upload(w[0].shape, w[0].data, 'f16'),
          wk: gpu.upload(w[1].shape, w[1].data, 'f16'),
          wv: gpu.upload(w[2].shape, w[2].data, 'f16'),
          ...(withBias ? { bq: gpu.upload(b[0].shape, b[0].data), bk: gpu.upload(b[1].shape, b[1].data), bv: gpu.upload(b[2].shape, b[2].data) } : {}),
          kCache: kc.t,
          vCache: vc.t,
        };
        const before = gpu.dispatchCount;
        const q = qkvRope(gpu, x.t, t, o);
        expect(gpu.dispatchCount - before).to.be.greaterThan(1);
        expect([q.dtype, t.kCache.dtype, t.vCache.dtype]).to.deep.equal(['f16', 'f16', 'f16']);
        const [wq, wk, wv] = w.map((nd) => storedWeight(nd, 'f16'));
        const [bq, bk, bv] = withBias ? b : [];
        const cached = [kc.nd.data.slice(), vc.nd.data.slice()];
        const ref = qkvRopeRef(x.nd, { gamma, wq, wk, wv, bq, bk, bv, kCache: kc.nd, vCache: vc.nd }, o);
        expectRelL2(await q.read(), ref.data, 'q', 2e-3);
        for (const [name, tensor, expected, old] of [['key cache', t.kCache, kc.nd.data, cached[0]], ['value cache', t.vCache, vc.nd.data, cached[1]]] as const) {
          const got = await tensor.read();
          const [from, to] = [position * D, (position + M) * D];
          expectRelL2(got.subarray(from, to), expected.subarray(from, to), `${name} rows ${position} … ${position + M - 1}`, 2e-3);
          expectClose([...got.subarray(0, from), ...got.subarray(to)], [...old.subarray(0, from), ...old.subarray(to)], { atol: 0, rtol: 0 }, `${name}, other rows`);
        }
        [q, x.t, ...Object.values(t)].forEach((u) => u.dispose());
      });
    }

    it('refuses activations of mixed precision, naming the operand', async function () {
      const gpu = await device();
      if (!gpu.hasF16) this.skip();
      const o: QkvRopeOptions = { heads: 2, kvHeads: 1, headDim: 4, theta: 10000, eps: 1e-6, position: 0 };
      const t = {
        gamma: gpu.empty([8]), wq: gpu.empty([8, 8]), wk: gpu.empty([4, 8]), wv: gpu.empty([4, 8]), kCache: gpu.empty([4, 4], 'f16'), vCache: gpu.empty([4, 4], 'f16'),
      };
      const x32 = gpu.empty([1, 8]);
      const x16 = gpu.empty([1, 8], 'f16');
      expect(() => qkvRope(gpu, x32, t, o)).to.throw(/qkvRope: kCache is f16 but the op runs at f32/);
      expect(() => qkvRope(gpu, x16, { ...t, vCache: gpu.empty([4, 4]) }, o)).to.throw(/qkvRope: vCache is f32 but the op runs at f16/);
      expect(() => qkvRope(gpu, x16, { ...t, gamma: gpu.empty([8], 'f16') }, o)).to.throw(/qkvRope: gamma must be f32, got f16/);
      [x32, x16, ...Object.values(t)].forEach((u) => u.dispose());
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
    const f16Cases: [M: number, N: number, K: number, dtype: WeightDType][] = [...cases, [1, 24, 64, 'q8'], [3, 17, 40, 'q4'], [MATVEC_MAX_M, 9, 7, 'q8'], [2, 33, 96, 'q4']];
    f16Cases.forEach(([M, N, K, dtype], i) => {
      it(`f16: x [${M}, ${K}] → [${M}, ${N}], ${dtype} weights`, async function () {
        const gpu = await device();
        if (!gpu.hasF16) this.skip();
        const x = uploadAt(gpu, randomNd([M, K], 80 + i), 'f16');
        const gamma = randomNd([K], 90 + i, 0.5, 1.5);
        const wg = randomNd([N, K], 100 + i);
        const wu = randomNd([N, K], 110 + i);
        const tg = gpu.upload([K], gamma.data);
        const twg = uploadWeight(gpu, wg.data, [N, K], dtype);
        const twu = uploadWeight(gpu, wu.data, [N, K], dtype);
        const before = gpu.dispatchCount;
        const y = gateUpSwiglu(gpu, x.t, tg, 1e-5, twg, twu);
        expect(gpu.dispatchCount - before, 'one dispatch').to.equal(1);
        expect(y.dtype).to.equal('f16');
        const ref = f16Ref(gateUpSwigluRef)(x.nd, gamma, 1e-5, storedWeight(wg, dtype), storedWeight(wu, dtype));
        expectClose(await y.read(), ref.data, F16_TOL, 'y');
        [x.t, tg, twg, twu, y].forEach((t) => t.dispose());
      });
    });

    // needs the f16 rmsNorm/linear/rope from the other branches
    for (const [what, M, dtypes] of [['a prompt (M > 8)', MATVEC_MAX_M + 3, ['f16', 'f16']], ['gate and up of different dtypes', 2, ['f16', 'q8']]] as const) {
      it(`f16: takes the unfused ops for ${what}, within relL2 2e-3 of the f32 reference (each op rounds to f16)`, async function () {
        const gpu = await device();
        if (!gpu.hasF16) this.skip();
        const [N, K] = [19, 40];
        const x = uploadAt(gpu, randomNd([M, K], 3), 'f16');
        const gamma = randomNd([K], 4, 0.5, 1.5);
        const w = [5, 6].map((seed) => randomNd([N, K], seed));
        const tg = gpu.upload([K], gamma.data);
        const [twg, twu] = w.map((nd, j) => uploadWeight(gpu, nd.data, [N, K], dtypes[j]));
        const before = gpu.dispatchCount;
        const y = gateUpSwiglu(gpu, x.t, tg, 1e-5, twg, twu);
        expect(gpu.dispatchCount - before).to.be.greaterThan(1);
        expect(y.dtype).to.equal('f16');
        const ref = gateUpSwigluRef(x.nd, gamma, 1e-5, storedWeight(w[0], dtypes[0]), storedWeight(w[1], dtypes[1]));
        expectRelL2(await y.read(), ref.data, 'y', 2e-3);
        [x.t, tg, twg, twu, y].forEach((t) => t.dispose());
      });
    }

    it('refuses an f16 gamma, naming it', async function () {
      const gpu = await device();
      if (!gpu.hasF16) this.skip();
      const x = gpu.empty([1, 8], 'f16');
      const [g16, w] = [gpu.empty([8], 'f16'), gpu.empty([4, 8])];
      expect(() => gateUpSwiglu(gpu, x, g16, 1e-5, w, w)).to.throw(/gateUpSwiglu: gamma must be f32, got f16/);
      [x, g16, w].forEach((t) => t.dispose());
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

  it('are taken wherever the device has subgroups, with a column\'s lanes capped at the subgroup size (lavapipe: 8), and compose with the f16 variants', async () => {
    const gpu = await testGpu();
    for (const kernel of ['linear_matvec', 'qkv_rope', 'gate_up_swiglu']) {
      expect(gpu.kernelSource(kernel)).to.not.match(/^[^/]*subgroup(Add|ShuffleXor)/m);
      if (!gpu.subgroupMinSize) continue; // an adapter without subgroups runs only the tree (the specs above)
      expect(subgroupKernel(gpu, kernel, gpu.subgroupMinSize)).to.deep.equal({ kernel: `${kernel}+subgroups`, SUBGROUPS: 1, lanes: gpu.subgroupMinSize });
      expect(subgroupKernel(gpu, kernel, 2 * gpu.subgroupMinSize).lanes, 'capped at the subgroup size').to.equal(gpu.subgroupMinSize);
      expect(subgroupKernel(gpu, kernel, 2).lanes).to.equal(2);
      expect(gpu.kernelSource(`${kernel}+subgroups`)).to.match(/^enable subgroups;$/m);
      if (!gpu.hasF16) continue;
      const aliases = kernel === 'linear_matvec' ? ['act', 'out'] : ['act']; // linear: x and y / residual (f32 logits from f16 x)
      const both = subgroupKernel(gpu, precisionKernel(gpu, kernel, aliases), gpu.subgroupMinSize).kernel; // what the ops dispatch at f16
      expect(both).to.equal(`${kernel}+f16(${aliases.join(',')})+subgroups`);
      expect(gpu.kernelSource(both)).to.match(/^enable f16;$/m).and.match(/^enable subgroups;$/m).and.match(/^alias act = f16;/m);
    }
  });
});
