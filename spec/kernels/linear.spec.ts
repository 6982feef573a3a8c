import { expect } from 'chai';
import ndarray, { type NdArray } from 'ndarray';
import { linear, linearRef, type LinearOptions, linearWithBindingLimit, geluRef, MATVEC_MAX_M, uploadWeight, linearFlops } from '../../ops/linear.js';
import { f16ToF32Array, f32ToF16Array } from '../../runtime/half.js';
import type { Gpu } from '../../runtime/gpu.js';
import type { Tensor } from '../../runtime/tensor.js';
import { expectClose, randomNd, rng, testGpu } from '../helpers.js';

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
    expect(() => linear(gpu, xi, w5)).to.throw(/x must be f32, got u32/);
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
