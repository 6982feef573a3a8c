import { expect } from 'chai';
import { patchConv, patchConvRef } from '../../ops/patchConv.js';
import { f16Ref, toF16Nd, type Precision } from '../../ops/precision.js';
import { Tensor } from '../../runtime/tensor.js';
import { bindingSizes, expectClose, expectMostlyExact, F16_TOL, randomNd, testGpu, uploadAt } from '../helpers.js';

// Sums of up to Cin·k² = 768 products of values in [-1, 1], f32 vs the f64 reference.
const TOL = { atol: 1e-5, rtol: 1e-5 };
// f16 activations: the same f32 sum, rounded once to f16. A sum within TOL of a rounding boundary
// may round the other way than the reference: TOL plus one f16 ulp (F16_TOL).
const F16_SUM_TOL = { atol: TOL.atol + F16_TOL.atol, rtol: TOL.rtol + F16_TOL.rtol };

interface CheckOptions {
  /** Activation precision of x and y (default f32). */
  act?: Precision;
  /** f16 weights (default f32). */
  f16?: boolean;
  bandRows?: number;
  maxBindingBytes?: number;
}

async function check([H, W, Cin]: number[], Cout: number, k: number, seed: number, { act = 'f32', f16 = false, bandRows, maxBindingBytes }: CheckOptions = {}): Promise<void> {
  const gpu = await testGpu();
  const x = uploadAt(gpu, randomNd([H, W, Cin], seed), act);
  const w = randomNd([Cout, Cin, k, k], seed + 1);
  const bias = randomNd([Cout], seed + 2);
  const wRef = f16 ? toF16Nd(w) : w;
  const tw = gpu.upload(w.shape, w.data, f16 ? 'f16' : 'f32');
  const tb = gpu.upload([Cout], bias.data);
  const y = patchConv(gpu, x.t, tw, tb, k, { bandRows, maxBindingBytes });
  expect(y.dtype).to.equal(act);
  const ref = (act === 'f32' ? patchConvRef : f16Ref(patchConvRef))(x.nd, wRef, bias, k);
  expect(y.shape).to.deep.equal(ref.shape);
  const got = await y.read();
  expectClose(got, ref.data, act === 'f32' ? TOL : F16_SUM_TOL);
  if (act === 'f16') expectMostlyExact(got, ref.data);
  [x.t, tw, tb, y].forEach((t) => t.dispose());
}

describe('patchConv (kernels/patch_conv.wgsl)', () => {
  const cases: [number[], number, number][] = [
    [[4, 4, 3], 1, 4], [[7, 9, 3], 5, 4], [[33, 35, 3], 16, 4], [[2, 2, 1], 1, 2], [[7, 7, 5], 7, 2],
    [[16, 18, 33], 70, 2], [[9, 8, 192], 96, 2], [[5, 5, 7], 3, 1],
  ];
  for (const [shape, Cout, k] of cases) {
    it(`matches the CPU reference for x [${shape}], Cout ${Cout}, k ${k}`, () => check(shape, Cout, k, 91));
  }
  it('matches with f16 weights (stem: 4×4, Cin 3, Cout 33)', () => check([17, 21, 3], 33, 4, 92, { f16: true }));
  it('matches with f16 weights (downsampling: 2×2, Cin 48, Cout 65)', () => check([10, 14, 48], 65, 2, 93, { f16: true }));
  it('processes bands of output rows with unaligned binding offsets', () => check([23, 13, 5], 9, 2, 94, { bandRows: 3 }));
  it('handles a stem on a 384×384 image (→ 96×96×192, 7 MB)', () => check([384, 384, 3], 192, 4, 95, { f16: true }));

  describe('f16 activations', () => {
    beforeEach(async function () {
      if (!(await testGpu()).hasF16) this.skip();
    });

    for (const [shape, Cout, k] of cases) {
      it(`matches the f16-rounding reference for x [${shape}], Cout ${Cout}, k ${k}`, () => check(shape, Cout, k, 96, { act: 'f16' }));
    }
    it('matches with f16 weights (stem: 4×4, Cin 3, Cout 33)', () => check([17, 21, 3], 33, 4, 97, { act: 'f16', f16: true }));
    it('matches with f16 weights (downsampling: 2×2, Cin 48, Cout 65)', () => check([10, 14, 48], 65, 2, 98, { act: 'f16', f16: true }));
    it('processes bands of output rows with unaligned binding offsets', () => check([23, 13, 5], 9, 2, 99, { act: 'f16', bandRows: 3 }));
    // k·W·Cin = 225 and Wo·Cout = 35: the second band starts at odd elements of x and y (mid-word).
    it('processes bands starting and ending mid-word (x [23, 15, 5], k 3, Cout 7)', () => check([23, 15, 5], 7, 3, 104, { act: 'f16', bandRows: 3 }));
    it('handles a stem on a 384×384 image (→ 96×96×192, 3.5 MB), f16 weights', () => check([384, 384, 3], 192, 4, 100, { act: 'f16', f16: true }));
  });

  for (const act of ['f32', 'f16'] as const) {
    it(`bands by ${act === 'f32' ? 4 : 2}-byte elements to keep ${act} bindings under maxBindingBytes`, async function () {
      const gpu = await testGpu();
      if (act === 'f16' && !gpu.hasF16) this.skip();
      // x [23, 13, 5], k 2: an output row reads 2·13·5 = 130 elements of x (520 bytes at f32, 260 at
      // f16) and writes 6·9 = 54 of y. A 2 KiB binding less one alignment holds ⌊1792 / row bytes⌋
      // output rows: 3 at f32 (4 bands of 11), 6 at f16 (2 bands).
      const x = uploadAt(gpu, randomNd([23, 13, 5], 101), act);
      const w = randomNd([9, 5, 2, 2], 102);
      const bias = randomNd([9], 103);
      const tw = gpu.upload(w.shape, w.data);
      const tb = gpu.upload([9], bias.data);
      let y: Tensor | undefined;
      const sizes = bindingSizes(gpu, () => (y = patchConv(gpu, x.t, tw, tb, 2, { maxBindingBytes: 2048 })));
      expect(sizes.length).to.equal(act === 'f32' ? 4 : 2);
      for (const s of sizes) expect(Math.max(s[0], s[3]), `x / y bindings of [${s}]`).to.be.at.most(2048);
      const ref = (act === 'f32' ? patchConvRef : f16Ref(patchConvRef))(x.nd, w, bias, 2);
      expectClose(await y!.read(), ref.data, act === 'f32' ? TOL : F16_SUM_TOL);
      [x.t, tw, tb, y!].forEach((t) => t.dispose());
    });
  }

  it('rejects mismatched weights, naming both shapes', async () => {
    const gpu = await testGpu();
    const x = gpu.empty([8, 8, 3]);
    const w = gpu.empty([16, 4, 4, 4]);
    const b = gpu.empty([16]);
    expect(() => patchConv(gpu, x, w, b, 4)).to.throw(/\[16,4,4,4\].*\[8,8,3\]/);
    const w3 = gpu.empty([16, 3, 4, 4]);
    const live = gpu.pool.liveBytes;
    expect(() => patchConv(gpu, x, w3, b, 4, { bandRows: 0 })).to.throw(/bandRows must be an integer ≥ 1, got 0/);
    expect(gpu.pool.liveBytes).to.equal(live); // refused before allocating the output
    w3.dispose();
    [x, w, b].forEach((t) => t.dispose());
  });

  it('rejects activations of another dtype and an f16 bias (biases stay f32 at either precision)', async () => {
    const gpu = await testGpu();
    const w = gpu.empty([16, 3, 4, 4]);
    const b = gpu.empty([16]);
    const xi = gpu.empty([8, 8, 3], 'u32');
    const xh = gpu.empty([8, 8, 3], 'f16');
    const bh = gpu.empty([16], 'f16');
    const live = gpu.pool.liveBytes;
    expect(() => patchConv(gpu, xi, w, b, 4)).to.throw(/patchConv: x must be an f32 or f16 activation tensor, got u32/);
    expect(() => patchConv(gpu, xh, w, bh, 4)).to.throw(/patchConv: bias must be f32, got f16/);
    expect(gpu.pool.liveBytes).to.equal(live); // refused before allocating y
    [w, b, xi, xh, bh].forEach((t) => t.dispose());
  });
});
