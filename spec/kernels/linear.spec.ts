import { expect } from 'chai';
import ndarray, { type NdArray } from 'ndarray';
import { linear, linearRef, type LinearOptions, linearWithBindingLimit, geluRef, MATVEC_MAX_M, uploadWeight, linearFlops } from '../../ops/linear.js';
import { f16Ref, type Precision } from '../../ops/precision.js';
import { f16ToF32Array, f32ToF16Array } from '../../runtime/half.js';
import type { Gpu } from '../../runtime/gpu.js';
import type { Tensor } from '../../runtime/tensor.js';
import { expectClose, F16_TOL, randomNd, rng, testGpu, uploadAt } from '../helpers.js';

type WDType = 'f32' | 'f16';

/**
 * Tolerance for sums of K products of values in [-1, 1]: f32 accumulation error grows like √K.
 * f16 weights get the same tolerance, because the reference is fed the same f16-rounded weights.
 */
function tol(K: number) {
  return { atol: 1e-5 * Math.sqrt(K), rtol: 1e-5 };
}

/** The weights the GPU actually holds: f16 rounds each value (to nearest even). */
function asStored(w: NdArray<Float32Array>, dtype: WDType): NdArray<Float32Array> {
  if (dtype === 'f32') return w;
  return ndarray(f16ToF32Array(f32ToF16Array(w.data)), w.shape.slice());
}

interface Case {
  xShape: number[];
  N: number;
  dtype: WDType;
  bias: boolean;
  gelu: boolean;
  /** The epilogue: + residual, or + residual with a layer scale γ (ConvNeXt). */
  residual?: 'add' | 'scaled';
}

/** Runs one case through `run` (linear, or linear with a small binding limit) and the reference. */
async function check(gpu: Gpu, c: Case, seed: number, run = (x: Tensor, w: Tensor, b?: Tensor, epilogue: LinearOptions = {}) => linear(gpu, x, w, b, { ...epilogue, activation: c.gelu ? 'gelu' : undefined })) {
  const K = c.xShape[c.xShape.length - 1];
  const yShape = [...c.xShape.slice(0, -1), c.N];
  const x = randomNd(c.xShape, seed);
  const w = randomNd([c.N, K], seed + 1);
  const b = c.bias ? randomNd([c.N], seed + 2) : undefined;
  const r = c.residual ? randomNd(yShape, seed + 3) : undefined;
  const g = c.residual === 'scaled' ? randomNd([c.N], seed + 4) : undefined;
  const tx = gpu.upload(c.xShape, x.data);
  const tw = uploadWeight(gpu, w.data, [c.N, K], c.dtype);
  const tb = b ? gpu.upload([c.N], b.data) : undefined;
  const tr = r ? gpu.upload(yShape, r.data) : undefined;
  const tg = g ? gpu.upload([c.N], g.data) : undefined;
  const y = run(tx, tw, tb, { residual: tr, scale: tg });
  expect(y.shape).to.deep.equal(yShape);
  const ref = linearRef(x, asStored(w, c.dtype), b, { activation: c.gelu ? 'gelu' : undefined, residual: r, scale: g });
  expectClose(await y.read(), ref.data, tol(K), `linear x [${c.xShape}] w [${c.N}, ${K}] ${c.dtype}`);
  [tx, tw, tb, tr, tg, y].forEach((t) => t?.dispose());
}

/**
 * An f16 output against f16Ref(linearRef) on the f16 values of x: both sum in f32 / f64 and round
 * once, so they differ by the f32 accumulation error (tol(K).atol, as the f32 cases) plus one f16
 * ulp of the rounding (F16_TOL). An f32 output from f16 x differs by the accumulation error only.
 */
function f16Tol(K: number, out: Precision) {
  return out === 'f16' ? { atol: tol(K).atol + F16_TOL.atol, rtol: F16_TOL.rtol } : tol(K);
}

/** A case with f16 activations: x at `x`, y and the residual at `out` (x's by default). */
interface PrecisionCase extends Case {
  x: Precision;
  out?: Precision;
}

/** Runs one precision case through `run` and the reference on the values x and the residual hold. */
async function checkAt(gpu: Gpu, c: PrecisionCase, seed: number, run = (x: Tensor, w: Tensor, b: Tensor | undefined, opts: LinearOptions) => linear(gpu, x, w, b, opts)) {
  const K = c.xShape[c.xShape.length - 1];
  const yShape = [...c.xShape.slice(0, -1), c.N];
  const out = c.out ?? c.x;
  const x = uploadAt(gpu, randomNd(c.xShape, seed), c.x);
  const w = randomNd([c.N, K], seed + 1);
  const b = c.bias ? randomNd([c.N], seed + 2) : undefined;
  const r = c.residual ? uploadAt(gpu, randomNd(yShape, seed + 3, -4, 4), out) : undefined;
  const g = c.residual === 'scaled' ? randomNd([c.N], seed + 4) : undefined;
  const tw = uploadWeight(gpu, w.data, [c.N, K], c.dtype);
  const tb = b ? gpu.upload([c.N], b.data) : undefined;
  const tg = g ? gpu.upload([c.N], g.data) : undefined;
  const activation = c.gelu ? ('gelu' as const) : undefined;
  const y = run(x.t, tw, tb, { activation, residual: r?.t, scale: tg, outDtype: c.out });
  expect(y.shape).to.deep.equal(yShape);
  expect(y.dtype, 'y dtype').to.equal(out);
  const ref = (out === 'f16' ? f16Ref(linearRef) : linearRef)(x.nd, asStored(w, c.dtype), b, { activation, residual: r?.nd, scale: g });
  expectClose(await y.read(), ref.data, f16Tol(K, out), `linear x [${c.xShape}] ${c.x} · w [${c.N}, ${K}] ${c.dtype} → ${out}`);
  [x.t, tw, tb, r?.t, tg, y].forEach((t) => t?.dispose());
}

function describeCase(c: Case): string {
  const epilogue = c.residual === 'scaled' ? ', residual + γ·y' : c.residual ? ', + residual' : '';
  return `x [${c.xShape}] · w [${c.N}, ${c.xShape[c.xShape.length - 1]}]ᵀ ${c.dtype}${c.bias ? ' + bias' : ''}${c.gelu ? ', gelu' : ''}${epilogue}`;
}

describe('linear (kernels/linear_tiled.wgsl, kernels/linear_matvec.wgsl)', () => {
  // [M, N, K]: ragged sizes around the 64 × 64 × 16 tile, K % 8 == 0 (vector loads) and not,
  // M = 1 … MATVEC_MAX_M (matrix-vector kernel) and above (tiled kernel).
  const sizes: [number, number, number][] = [
    [1, 1, 1], [1, 7, 33], [1, 255, 64], [3, 129, 7], [MATVEC_MAX_M, 33, 255],
    [MATVEC_MAX_M + 1, 64, 64], [7 * 5, 33, 129], [64, 129, 64], [33, 255, 7], [129, 64, 33], [255, 7, 255], [65, 65, 256],
    [2, 70, 8], [100, 70, 24], [70, 100, 8],
  ];
  sizes.forEach(([M, N, K], i) => {
    for (const dtype of ['f32', 'f16'] as const) {
      // Alternate the epilogue so every size meets bias and gelu at least once per dtype.
      // … and the residual epilogue (plain and layer-scaled) on most sizes.
      const residual = (['add', 'scaled', undefined] as const)[(i + (dtype === 'f16' ? 2 : 0)) % 3];
      const c: Case = { xShape: [M, K], N, dtype, bias: i % 2 === 0, gelu: (i + (dtype === 'f16' ? 1 : 0)) % 3 === 0, residual };
      it(`matches the CPU reference: ${describeCase(c)}`, async () => check(await testGpu(), c, 100 + i));
    }
  });

  describe('f16 activations: x at f16, y and the residual at x\'s precision or outDtype', () => {
    /** Runs a case on a device with shader-f16 (skipped elsewhere). */
    const itF16 = (title: string, body: (gpu: Gpu) => Promise<void>) =>
      it(title, async function () {
        const gpu = await testGpu();
        if (!gpu.hasF16) this.skip();
        await body(gpu);
      });

    // Every size above (matvec M ≤ 8 and tiled; K % 8 == 0 vector loads and ragged K scalar ones),
    // f32 and f16 weights, the epilogues rotated differently from the f32 cases.
    sizes.forEach(([M, N, K], i) => {
      for (const dtype of ['f32', 'f16'] as const) {
        const residual = (['add', 'scaled', undefined] as const)[(i + (dtype === 'f16' ? 1 : 0)) % 3];
        const c: PrecisionCase = { xShape: [M, K], N, dtype, x: 'f16', bias: i % 2 === 1, gelu: (i + (dtype === 'f16' ? 2 : 0)) % 3 === 0, residual };
        itF16(`f16 → f16: ${describeCase(c)}`, (gpu) => checkAt(gpu, c, 500 + i));
      }
    });

    // Values on a grid (x, w: multiples of 2⁻⁶ in [-1, 1]; γ, bias: 2⁻³; residual: 2⁻⁴ in [-4, 4]) are exact
    // in f16 and every sum and product of the kernel is exact in f32 (≤ 21 significant bits), so the only
    // rounding left is the one at the store: the kernels must match f16Ref bit for bit, and a second
    // rounding anywhere (of y before the epilogue, say) shows here in a fifth of the outputs.
    const exact: [number, number, number, WDType][] = [[1, 64, 255, 'f16'], [5, 33, 70, 'f32'], [40, 64, 129, 'f16'], [70, 33, 65, 'f32']];
    exact.forEach(([M, K, N, dtype], i) => {
      itF16(`rounds once, at the store: bit-exact with f16Ref on exactly summable values, x [${M}, ${K}] · w [${N}, ${K}]ᵀ ${dtype} + bias, residual + γ·y`, async (gpu) => {
        const grid = (shape: number[], seed: number, step: number, bound = 1) =>
          ndarray(randomNd(shape, seed, -bound, bound).data.map((v) => Math.round(v / step) * step), shape);
        const x = grid([M, K], 800 + i, 2 ** -6);
        const w = grid([N, K], 810 + i, 2 ** -6);
        const b = grid([N], 820 + i, 2 ** -3);
        const g = grid([N], 830 + i, 2 ** -3);
        const r = grid([M, N], 840 + i, 2 ** -4, 4);
        const tx = gpu.upload([M, K], x.data, 'f16');
        const tw = uploadWeight(gpu, w.data, [N, K], dtype);
        const [tb, tg] = [gpu.upload([N], b.data), gpu.upload([N], g.data)];
        for (const out of ['f16', 'f32'] as const) {
          const tr = gpu.upload([M, N], r.data, out);
          const y = linear(gpu, tx, tw, tb, { residual: tr, scale: tg, outDtype: out });
          const ref = (out === 'f16' ? f16Ref(linearRef) : linearRef)(x, w, b, { residual: r, scale: g });
          expectClose(await y.read(), ref.data, { atol: 0, rtol: 0 }, `exact f16 x → ${out}`);
          [tr, y].forEach((t) => t.dispose());
        }
        [tx, tw, tb, tg].forEach((t) => t.dispose());
      });
    });

    // outDtype: f32 logits from f16 hidden states (the lm_head), and the reverse; the residual at the output's precision.
    const mixed: PrecisionCase[] = [
      { xShape: [1, 64], N: 255, dtype: 'f16', x: 'f16', out: 'f32', bias: false, gelu: false }, //            matvec, vec4
      { xShape: [3, 33], N: 70, dtype: 'f32', x: 'f16', out: 'f32', bias: true, gelu: true, residual: 'scaled' }, // matvec, scalar
      { xShape: [70, 40], N: 129, dtype: 'f16', x: 'f16', out: 'f32', bias: true, gelu: false, residual: 'add' }, // tiled, vec4
      { xShape: [33, 7], N: 65, dtype: 'f32', x: 'f16', out: 'f32', bias: false, gelu: true }, //              tiled, scalar
      { xShape: [2, 24], N: 33, dtype: 'f16', x: 'f32', out: 'f16', bias: true, gelu: true, residual: 'scaled' }, // matvec
      { xShape: [65, 33], N: 70, dtype: 'f32', x: 'f32', out: 'f16', bias: false, gelu: false, residual: 'add' }, // tiled
    ];
    mixed.forEach((c, i) => itF16(`${c.x} → ${c.out} (outDtype): ${describeCase(c)}`, (gpu) => checkAt(gpu, c, 600 + i)));

    itF16('flattens leading dims and K = 0 (act(bias)), both kernels', async (gpu) => {
      await checkAt(gpu, { xShape: [2, 3, 5, 33], N: 7, dtype: 'f16', x: 'f16', bias: true, gelu: true }, 610);
      await checkAt(gpu, { xShape: [1, 2, 40], N: 9, dtype: 'f32', x: 'f16', bias: true, gelu: false, residual: 'add' }, 611);
      await checkAt(gpu, { xShape: [3, 0], N: 5, dtype: 'f16', x: 'f16', bias: true, gelu: true }, 612);
      await checkAt(gpu, { xShape: [9, 0], N: 70, dtype: 'f32', x: 'f16', out: 'f32', bias: true, gelu: false }, 613);
    });

    itF16('GELU: to f32 accuracy into an f32 output from f16 x, and rounded once into an f16 output', async (gpu) => {
      // As the f32 GELU case: K = 1, x = 1 (exact in f16), so y[m, n] = gelu(w[n]).
      const N = 2001;
      const wv = Float32Array.from({ length: N }, (_, n) => -10 + (20 * n) / (N - 1));
      const tw = gpu.upload([N, 1], wv);
      for (const M of [1, MATVEC_MAX_M + 1]) {
        const tx = gpu.upload([M, 1], new Float32Array(M).fill(1), 'f16');
        const want = new Float32Array(M * N).map((_, i) => geluRef(wv[i % N]));
        const y32 = linear(gpu, tx, tw, undefined, { activation: 'gelu', outDtype: 'f32' });
        expectClose(await y32.read(), want, { atol: 1e-7, rtol: 1e-6 }, `gelu f16 → f32 (M = ${M})`);
        const y16 = linear(gpu, tx, tw, undefined, { activation: 'gelu' });
        expect(y16.dtype).to.equal('f16');
        expectClose(await y16.read(), f16Ref(() => ndarray(want, [M, N]))().data, F16_TOL, `gelu f16 → f16 (M = ${M})`);
        [tx, y32, y16].forEach((t) => t.dispose());
      }
      tw.dispose();
    });

    itF16('dispatches the +f16 variants (composed with +subgroups for the matvec kernel where the device has subgroups)', async (gpu) => {
      const w = uploadWeight(gpu, randomNd([16, 64], 1).data, [16, 64], 'f16');
      const sub = gpu.subgroupMinSize ? '+subgroups' : '';
      const runs: [number[], Precision | undefined, string, string][] = [
        [[1, 64], undefined, `linear_matvec+f16(act,out)${sub}`, 'main_vec4'],
        [[2, 64], 'f32', `linear_matvec+f16(act)${sub}`, 'main_vec4'],
        [[20, 64], undefined, 'linear_tiled+f16(act,out)', 'main_vec4'],
        [[20, 63], 'f32', 'linear_tiled+f16(act)', 'main'],
      ];
      for (const [shape, outDtype, kernel, entry] of runs) {
        const x = gpu.upload(shape, randomNd(shape, 2).data, 'f16');
        const wk = shape[1] === 64 ? w : gpu.upload([16, 63], new Float32Array(16 * 63));
        let y: Tensor | undefined;
        const { rows } = await gpu.profile(() => {
          y = linear(gpu, x, wk, undefined, { outDtype });
        });
        expect(rows.map((r) => `${r.kernel} ${r.entry}`)).to.deep.equal([`${kernel} ${entry}`]);
        [x, y, wk === w ? undefined : wk].forEach((t) => t?.dispose());
      }
      w.dispose();
    });

    // Bindings split by rows at 2 bytes per element: f16 x with odd K (rows start mid-word, slices
    // on 256-byte boundaries), f16 and f32 weights, f32 y from f16 x.
    const small: [PrecisionCase, number][] = [
      [{ xShape: [1, 33], N: 129, dtype: 'f16', x: 'f16', bias: true, gelu: false }, 8448], //                     w: 128 + 1 rows
      [{ xShape: [5, 40], N: 200, dtype: 'f32', x: 'f16', out: 'f32', bias: false, gelu: true, residual: 'scaled' }, 8192], // w: 48-row slices
      [{ xShape: [300, 40], N: 64, dtype: 'f16', x: 'f16', bias: true, gelu: true, residual: 'add' }, 4096], //  x/y/residual: 32-row, w: 48-row slices
      [{ xShape: [300, 33], N: 8, dtype: 'f32', x: 'f16', bias: false, gelu: true }, 8448], //                     x: 128 + 128 + 44 rows
      [{ xShape: [130, 40], N: 200, dtype: 'f16', x: 'f16', out: 'f32', bias: true, gelu: false, residual: 'add' }, 12800], // x/y: 16-row, w: 160-row slices
    ];
    small.forEach(([c, limit], i) => {
      itF16(`with a ${limit}-byte binding limit, ${c.x} → ${c.out ?? c.x}: ${describeCase(c)}`, async (gpu) => {
        const before = gpu.dispatchCount;
        await checkAt(gpu, c, 700 + i, (x, w, b, opts) => linearWithBindingLimit(gpu, x, w, b, opts, limit));
        expect(gpu.dispatchCount - before).to.be.greaterThan(1);
      });
    });

    itF16('refuses mixed precisions and a bad outDtype with clear errors, allocating nothing', async (gpu) => {
      const x16 = gpu.empty([2, 4], 'f16');
      const w = gpu.empty([3, 4]);
      const r32 = gpu.empty([2, 3]);
      const r16 = gpu.empty([2, 3], 'f16');
      const b16 = gpu.empty([3], 'f16');
      const live = gpu.pool.liveBytes;
      expect(() => linear(gpu, x16, w, undefined, { residual: r32 })).to.throw(/linear: residual is f32 but the output is f16/);
      expect(() => linear(gpu, x16, w, undefined, { residual: r16, outDtype: 'f32' })).to.throw(/linear: residual is f16 but the output is f32/);
      expect(() => linear(gpu, x16, w, undefined, { outDtype: 'bf16' as Precision })).to.throw(/linear: outDtype must be 'f32' or 'f16', got 'bf16'/);
      expect(() => linear(gpu, x16, w, b16)).to.throw(/linear: bias must be f32, got f16/);
      expect(gpu.pool.liveBytes).to.equal(live);
      [x16, w, r32, r16, b16].forEach((t) => t.dispose());
    });
  });

  it('flattens leading dims of x: [2, 3, 5, 33] → [2, 3, 5, 7] (tiled), [1, 2, 40] → [1, 2, 9] and [33] → [7] (matvec)', async () => {
    const gpu = await testGpu();
    await check(gpu, { xShape: [33], N: 7, dtype: 'f32', bias: false, gelu: true }, 6);
    await check(gpu, { xShape: [2, 3, 5, 33], N: 7, dtype: 'f16', bias: true, gelu: true }, 7);
    await check(gpu, { xShape: [1, 2, 40], N: 9, dtype: 'f32', bias: true, gelu: false }, 8);
  });

  it('refuses an epilogue of the wrong shape, and a layer scale without a residual', async () => {
    const gpu = await testGpu();
    const x = gpu.upload([2, 3], [1, 2, 3, 4, 5, 6]);
    const w = gpu.upload([4, 3], new Float32Array(12));
    const r = gpu.upload([2, 5], new Float32Array(10));
    const g = gpu.upload([4], new Float32Array(4));
    expect(() => linear(gpu, x, w, undefined, { residual: r })).to.throw(/residual is \[2,5\] but the output is \[2,4\]/);
    expect(() => linear(gpu, x, w, undefined, { scale: g })).to.throw(/scale without residual/);
    [x, w, r, g].forEach((t) => t.dispose());
  });

  it('K = 0 gives act(bias) (an empty sum), for both kernels', async () => {
    const gpu = await testGpu();
    await check(gpu, { xShape: [3, 0], N: 5, dtype: 'f16', bias: true, gelu: true }, 41);
    await check(gpu, { xShape: [9, 0], N: 70, dtype: 'f32', bias: true, gelu: false }, 42);
  });

  it('applies GELU to float32 accuracy over [-10, 10] (erfc fit, both kernels)', async () => {
    const gpu = await testGpu();
    // y[m, n] = gelu(x[m] · w[n]) with K = 1 and x = 1: every output is the GELU of one weight.
    const N = 2001;
    const wv = Float32Array.from({ length: N }, (_, n) => -10 + (20 * n) / (N - 1));
    const tw = gpu.upload([N, 1], wv);
    for (const M of [1, MATVEC_MAX_M + 1]) {
      const tx = gpu.upload([M, 1], new Float32Array(M).fill(1));
      const y = linear(gpu, tx, tw, undefined, { activation: 'gelu' });
      const got = await y.read();
      const want = new Float32Array(M * N).map((_, i) => geluRef(wv[i % N]));
      expectClose(got, want, { atol: 1e-7, rtol: 1e-6 }, `gelu (M = ${M})`);
      [tx, y].forEach((t) => t.dispose());
    }
    tw.dispose();
  });

  describe('operands over the binding limit, bound in 256-byte-aligned slices', () => {
    // Small limits split these small tensors many ways: w by rows (f16 with odd K: slices of 128
    // rows, each row starting mid-word), x and y by rows, both at once, for both kernels.
    const small: [Case, number][] = [
      [{ xShape: [1, 33], N: 129, dtype: 'f32', bias: true, gelu: false }, 9000], // w: 64 + 64 + 1 rows
      [{ xShape: [5, 33], N: 129, dtype: 'f16', bias: false, gelu: true }, 8448], // w: 128 + 1 rows
      [{ xShape: [1, 7], N: 300, dtype: 'f16', bias: true, gelu: false }, 2000], // w: 128 + 128 + 44 rows
      [{ xShape: [70, 40], N: 33, dtype: 'f32', bias: false, gelu: false, residual: 'scaled' }, 10240], // x, y, residual: 64 + 6 rows
      [{ xShape: [33, 255], N: 257, dtype: 'f16', bias: true, gelu: true }, 65280], // w: 128 + 128 + 1 rows
      [{ xShape: [130, 40], N: 200, dtype: 'f16', bias: true, gelu: true, residual: 'add' }, 6400], // w: 80-row, x/y/residual: 8-row slices
    ];
    small.forEach(([c, limit], i) => {
      it(`with a ${limit}-byte limit: ${describeCase(c)}`, async () => {
        const gpu = await testGpu();
        const before = gpu.dispatchCount;
        await check(gpu, c, 300 + i, (x, w, b, epilogue) => linearWithBindingLimit(gpu, x, w, b, { ...epilogue, activation: c.gelu ? 'gelu' : undefined }, limit));
        expect(gpu.dispatchCount - before).to.be.greaterThan(1);
      });
    });

    it('f32 weight of 134 MB (w [8200, 4096], over 128 MiB): M = 1, 3 (matvec) and 12 (tiled)', async function () {
      this.timeout(300000);
      const gpu = await testGpu();
      const [N, K] = [8200, 4096];
      expect(N * K * 4).to.be.greaterThan(gpu.limits.maxStorageBufferBindingSize);
      const w = randomNd([N, K], 11);
      const tw = gpu.upload([N, K], w.data);
      for (const M of [1, 3, 12]) {
        const x = randomNd([M, K], 12 + M);
        const b = randomNd([N], 13);
        const tx = gpu.upload([M, K], x.data);
        const tb = gpu.upload([N], b.data);
        const y = linear(gpu, tx, tw, tb);
        expectColumns(await y.read(), x, (n) => w.data.subarray(n * K, (n + 1) * K), b.data, N, K, columnsAround(8192, N), `w [${N}, ${K}] f32, M = ${M}`);
        [tx, tb, y].forEach((t) => t.dispose());
      }
      tw.dispose();
    });

    it('f16 weight of 134 MB with odd K (w [16400, 4097], over 128 MiB): M = 1 and 2 (matvec; tiled splits with odd K are above)', async function () {
      this.timeout(300000);
      const gpu = await testGpu();
      const [N, K] = [16400, 4097];
      expect(Math.ceil((N * K) / 2) * 4).to.be.greaterThan(gpu.limits.maxStorageBufferBindingSize);
      // Random halves in ±[2⁻⁴, 1) drawn as bits (converting 67 M floats would dominate the test).
      const bits = new Uint16Array(N * K + 1);
      const r = rng(21);
      for (let i = 0; i < bits.length; i += 2) {
        const u = (r() * 0x100000000) >>> 0;
        bits[i] = (u & 0x83ff) | ((11 + ((u >>> 10) & 3)) << 10);
        bits[i + 1] = ((u >>> 16) & 0x83ff) | ((11 + ((u >>> 12) & 3)) << 10);
      }
      const tw = gpu.upload([N, K], bits.subarray(0, N * K), 'f16');
      const wRow = (n: number) => f16ToF32Array(bits.subarray(n * K, (n + 1) * K));
      // The split lands at row 16256 (the largest multiple of 128 rows of 8194 bytes under 128 MiB).
      const cols = columnsAround(16256, N);
      for (const M of [1, 2]) {
        const x = randomNd([M, K], 22 + M);
        const tx = gpu.upload([M, K], x.data);
        const y = linear(gpu, tx, tw);
        expectColumns(await y.read(), x, wRow, undefined, N, K, cols, `w [${N}, ${K}] f16, M = ${M}`);
        [tx, y].forEach((t) => t.dispose());
      }
      tw.dispose();
    });

    it('x of 134 MB ([8200, 4096], tiled) and y of 134 MB ([8200, 4096] from K = 3)', async function () {
      this.timeout(300000);
      const gpu = await testGpu();
      await check(gpu, { xShape: [8200, 4096], N: 3, dtype: 'f16', bias: true, gelu: false }, 31);
      await check(gpu, { xShape: [8200, 3], N: 4096, dtype: 'f32', bias: false, gelu: false }, 32);
    });
  });

  it('rejects mismatched shapes and dtypes, naming the shapes', async () => {
    const gpu = await testGpu();
    const x = gpu.empty([2, 5]);
    const w = gpu.empty([3, 4]);
    const w5 = gpu.empty([3, 5]);
    const b = gpu.empty([4]);
    const xi = gpu.empty([2, 5], 'u32');
    expect(() => linear(gpu, x, w)).to.throw(/x is \[2,5\] but w is \[3,4\]/);
    expect(() => linear(gpu, x, w5, b)).to.throw(/bias is \[4\] but w is \[3,5\]/);
    expect(() => linear(gpu, x, gpu.empty([15]))).to.throw(/w must be \[N, K\].*\[15\]/);
    expect(() => linear(gpu, xi, w5)).to.throw(/x must be an f32 or f16 activation tensor, got u32/);
    [x, w, w5, b, xi].forEach((t) => t.dispose());
  });

  it('refuses operands that cannot be sliced under the binding limit, allocating nothing', async () => {
    const gpu = await testGpu();
    const x = gpu.empty([1, 33]);
    const w = gpu.empty([129, 33]);
    const live = gpu.pool.liveBytes;
    expect(() => linearWithBindingLimit(gpu, x, w, undefined, {}, 100)).to.throw(/w \[129,33\] f32 cannot be bound in slices of ≤ 100 bytes/);
    expect(gpu.pool.liveBytes).to.equal(live);
    [x, w].forEach((t) => t.dispose());
  });

  it('counts 2·M·N·K flops', () => {
    expect(linearFlops(576, 4096, 4096)).to.equal(2 * 576 * 4096 * 4096);
  });
});

/** Columns 0 … 63, ±64 around a slice boundary, the last 64, and a sample in between. */
function columnsAround(boundary: number, N: number): number[] {
  const cols = new Set<number>();
  const r = rng(boundary);
  for (let i = 0; i < 64; i++) [i, boundary - 64 + i, boundary + i, N - 1 - i].forEach((n) => cols.add(n));
  for (let i = 0; i < 256; i++) cols.add(Math.floor(r() * N));
  return [...cols].filter((n) => n >= 0 && n < N).sort((a, b) => a - b);
}

/** Compares the chosen columns of y [M, N] with the reference computed for just those columns. */
function expectColumns(
  got: Float32Array | Uint32Array | Int32Array,
  x: NdArray<Float32Array>,
  wRow: (n: number) => Float32Array,
  bias: Float32Array | undefined,
  N: number,
  K: number,
  cols: number[],
  label: string,
): void {
  const M = x.shape[0];
  const wCols = new Float32Array(cols.length * K);
  cols.forEach((n, j) => wCols.set(wRow(n), j * K));
  const bCols = bias ? ndarray(Float32Array.from(cols, (n) => bias[n]), [cols.length]) : undefined;
  const ref = linearRef(x, ndarray(wCols, [cols.length, K]), bCols);
  const picked = new Float32Array(M * cols.length);
  for (let m = 0; m < M; m++) cols.forEach((n, j) => (picked[m * cols.length + j] = got[m * N + n]));
  expectClose(picked, ref.data, tol(K), label);
}
