import { expect } from 'chai';
import { dwconv7, dwconv7Ref } from '../../ops/dwconv7.js';
import { f16Ref, toF16Nd, type Precision } from '../../ops/precision.js';
import { Tensor } from '../../runtime/tensor.js';
import { bindingSizes, expectClose, expectMostlyExact, F16_TOL, randomNd, testGpu, uploadAt } from '../helpers.js';

// 49 products of values in [-1, 1] summed in f32 in another order than the f64 reference.
const TOL = { atol: 2e-6, rtol: 1e-5 };
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

async function check([H, W, C]: number[], seed: number, { act = 'f32', f16 = false, bandRows, maxBindingBytes }: CheckOptions = {}): Promise<void> {
  const gpu = await testGpu();
  const x = uploadAt(gpu, randomNd([H, W, C], seed), act);
  const w = randomNd([C, 1, 7, 7], seed + 1);
  const bias = randomNd([C], seed + 2);
  // f16 weights: the reference gets the same f16-rounded values the kernel unpacks.
  const wRef = f16 ? toF16Nd(w) : w;
  const tw = gpu.upload([C, 1, 7, 7], w.data, f16 ? 'f16' : 'f32');
  const tb = gpu.upload([C], bias.data);
  const y = dwconv7(gpu, x.t, tw, tb, { bandRows, maxBindingBytes });
  expect(y.dtype).to.equal(act);
  if (act === 'f32') expectClose(await y.read(), dwconv7Ref(x.nd, wRef, bias).data, TOL);
  else {
    const got = await y.read();
    const ref = f16Ref(dwconv7Ref)(x.nd, wRef, bias).data;
    expectClose(got, ref, F16_SUM_TOL);
    expectMostlyExact(got, ref);
  }
  [x.t, tw, tb, y].forEach((t) => t.dispose());
}

describe('dwconv7 (kernels/dwconv7.wgsl)', () => {
  const shapes = [[1, 1, 1], [1, 1, 16], [7, 7, 5], [7, 33, 1], [33, 7, 16], [33, 33, 5], [9, 13, 192], [20, 17, 33]];
  for (const shape of shapes) {
    it(`matches the CPU reference for [${shape}], f32 weights`, () => check(shape, 81));
  }
  for (const shape of [[7, 7, 5], [33, 9, 192]]) {
    it(`matches the CPU reference for [${shape}], f16 weights (odd counts straddle words)`, () => check(shape, 82, { f16: true }));
  }

  it('processes an image in bands of rows with unaligned binding offsets (W·C = 165 floats)', () =>
    check([29, 33, 5], 83, { bandRows: 4 }));

  it('handles a 96×96×192 activation (7 MB)', () => check([96, 96, 192], 84, { f16: true }));

  describe('f16 activations', () => {
    beforeEach(async function () {
      if (!(await testGpu()).hasF16) this.skip();
    });

    for (const shape of shapes) {
      it(`matches the f16-rounding reference for [${shape}], f32 weights`, () => check(shape, 85, { act: 'f16' }));
    }
    for (const shape of [[7, 7, 5], [33, 9, 192]]) {
      it(`matches the f16-rounding reference for [${shape}], f16 weights`, () => check(shape, 86, { act: 'f16', f16: true }));
    }

    it('processes an image in bands of rows with unaligned binding offsets (W·C = 165 halves: odd offsets, bands ending mid-word)', () =>
      check([29, 33, 5], 87, { act: 'f16', bandRows: 4 }));

    it('handles a 96×96×192 activation (3.5 MB), f16 weights', () => check([96, 96, 192], 88, { act: 'f16', f16: true }));
  });

  for (const act of ['f32', 'f16'] as const) {
    it(`bands by ${act === 'f32' ? 4 : 2}-byte elements to keep ${act} bindings under maxBindingBytes`, async function () {
      const gpu = await testGpu();
      if (act === 'f16' && !gpu.hasF16) this.skip();
      // Rows of W·C = 165 elements: 660 bytes at f32, 330 at f16. An 8 KiB binding holds a band of
      // ⌊(8192 − 256) / row bytes⌋ − 6 output rows: 6 at f32 (5 bands of 29 rows), 18 at f16 (2 bands).
      const [H, W, C] = [29, 33, 5];
      const x = uploadAt(gpu, randomNd([H, W, C], 89), act);
      const w = randomNd([C, 1, 7, 7], 90);
      const bias = randomNd([C], 91);
      const tw = gpu.upload(w.shape, w.data);
      const tb = gpu.upload([C], bias.data);
      let y: Tensor | undefined;
      const sizes = bindingSizes(gpu, () => (y = dwconv7(gpu, x.t, tw, tb, { maxBindingBytes: 8192 })));
      expect(sizes.length).to.equal(act === 'f32' ? 5 : 2);
      for (const s of sizes) expect(Math.max(s[0], s[3]), `x / y bindings of [${s}]`).to.be.at.most(8192);
      const ref = dwconv7Ref(x.nd, w, bias);
      expectClose(await y!.read(), act === 'f32' ? ref.data : f16Ref(dwconv7Ref)(x.nd, w, bias).data, act === 'f32' ? TOL : F16_SUM_TOL);
      [x.t, tw, tb, y!].forEach((t) => t.dispose());
    });
  }

  it('rejects mismatched weights, naming both shapes', async () => {
    const gpu = await testGpu();
    const x = gpu.empty([4, 4, 8]);
    const w = gpu.empty([8, 1, 3, 3]);
    const b = gpu.empty([8]);
    expect(() => dwconv7(gpu, x, w, b)).to.throw(/\[8,1,3,3\].*\[4,4,8\]/);
    [x, w, b].forEach((t) => t.dispose());
  });

  it('rejects activations of another dtype and an f16 bias (biases stay f32 at either precision)', async () => {
    const gpu = await testGpu();
    const w = gpu.empty([8, 1, 7, 7]);
    const b = gpu.empty([8]);
    const xi = gpu.empty([4, 4, 8], 'u32');
    const xh = gpu.empty([4, 4, 8], 'f16');
    const bh = gpu.empty([8], 'f16');
    const live = gpu.pool.liveBytes;
    expect(() => dwconv7(gpu, xi, w, b)).to.throw(/dwconv7: x must be an f32 or f16 activation tensor, got u32/);
    expect(() => dwconv7(gpu, xh, w, bh)).to.throw(/dwconv7: bias must be f32, got f16/);
    expect(gpu.pool.liveBytes).to.equal(live); // refused before allocating y
    [w, b, xi, xh, bh].forEach((t) => t.dispose());
  });
});
