import { expect } from 'chai';
import { layerNorm, layerNormRef } from '../../ops/layerNorm.js';
import { f16Ref } from '../../ops/precision.js';
import { expectClose, F16_TOL, randomNd, testGpu, uploadAt, type Tolerance } from '../helpers.js';

// Cases that take lavapipe many seconds (65 536+ workgroups) run only with CONVLLAVA_SLOW_SPECS=1.
const slowIt = process.env.CONVLLAVA_SLOW_SPECS ? it : it.skip;

const TOL = { atol: 1e-5, rtol: 1e-5 };

async function check(shape: number[], eps: number, seed: number, offset = 0, maxBindingBytes?: number, tol = TOL): Promise<void> {
  const gpu = await testGpu();
  const C = shape[shape.length - 1];
  const x = randomNd(shape, seed, offset - 1, offset + 1);
  const gamma = randomNd([C], seed + 1);
  const beta = randomNd([C], seed + 2);
  const [tx, tg, tb] = [gpu.upload(shape, x.data), gpu.upload([C], gamma.data), gpu.upload([C], beta.data)];
  const y = layerNorm(gpu, tx, tg, tb, eps, { maxBindingBytes });
  expectClose(await y.read(), layerNormRef(x, gamma, beta, eps).data, tol);
  [tx, tg, tb, y].forEach((t) => t.dispose());
}

/**
 * f16 activations: x uploaded at f16, gamma / beta f32 weights; against the f64 reference on the
 * f16 values, rounded once at the end (f16Ref). `dispatches`: the number of row chunks expected.
 */
async function checkF16(
  ctx: Mocha.Context,
  shape: number[],
  eps: number,
  seed: number,
  o: { lo?: number; hi?: number; maxBindingBytes?: number; tol?: Tolerance; dispatches?: number } = {},
): Promise<void> {
  const gpu = await testGpu();
  if (!gpu.hasF16) ctx.skip();
  const C = shape[shape.length - 1];
  const x = uploadAt(gpu, randomNd(shape, seed, o.lo ?? -1, o.hi ?? 1), 'f16');
  const gamma = randomNd([C], seed + 1);
  const beta = randomNd([C], seed + 2);
  const [tg, tb] = [gpu.upload([C], gamma.data), gpu.upload([C], beta.data)];
  const before = gpu.dispatchCount;
  const y = layerNorm(gpu, x.t, tg, tb, eps, { maxBindingBytes: o.maxBindingBytes });
  if (o.dispatches !== undefined) expect(gpu.dispatchCount - before, 'row chunks').to.equal(o.dispatches);
  expect(y.dtype).to.equal('f16');
  expectClose(await y.read(), f16Ref(layerNormRef)(x.nd, gamma, beta, eps).data, o.tol ?? F16_TOL);
  [x.t, tg, tb, y].forEach((t) => t.dispose());
}

describe('layerNorm (kernels/layer_norm.wgsl)', () => {
  for (const shape of [[1], [1, 7], [5, 33], [7, 255], [3, 4, 192], [9, 3072], [2, 5000], [3, 9001]]) {
    it(`matches the f64 reference for [${shape}]`, () => check(shape, 1e-6, 41));
  }

  // At x ≈ 100 the f32 mean alone is uncertain by ulp(100)/2 ≈ 4e-6, i.e. ~1e-5 after dividing by
  // std ≈ 0.58; a one-pass E[x²] − mean² variance would be off by ~1e-3 relative here.
  it('is careful with a large common offset (x in 100 ± 1: two-pass variance)', () =>
    check([17, 384], 1e-12, 42, 100, undefined, { atol: 4e-5, rtol: 1e-5 }));

  it('handles 20 000 rows of 192 (15 MB) split across 1 MiB bindings', () => check([20000, 192], 1e-6, 43, 0, 1 << 20));

  // 8 rows of C = 8 per workgroup: 67 500 workgroups, more than one grid dimension holds. (Rows
  // this short must not be nearly constant: x − mean would cancel, which no f32 kernel survives.)
  slowIt('handles 540 000 short rows (folded grid; ~10 s on lavapipe, set CONVLLAVA_SLOW_SPECS=1)', () => check([540000, 8], 1e-6, 44));

  it('splits odd rows (C = 255, odd element count) across 64 KiB bindings: 5 chunks of 64 rows', async () => {
    const gpu = await testGpu();
    const before = gpu.dispatchCount;
    await check([301, 255], 1e-6, 45, 0, 1 << 16);
    expect(gpu.dispatchCount - before).to.equal(5);
  });

  describe('f16 activations (x, y f16; gamma, beta f32; statistics f32)', () => {
    for (const shape of [[1], [1, 7], [5, 33], [7, 255], [3, 4, 192], [9, 3072], [2, 5000], [3, 9001]]) {
      it(`matches the f16-rounding reference for [${shape}]`, function () {
        return checkF16(this, shape, 1e-6, 41);
      });
    }

    // x in 100 ± 1 is quantized to f16 steps of 1/16 (the reference gets the same values). The f32
    // mean's uncertainty (~1e-5 after dividing by std, as in the f32 case) is an absolute error,
    // so outputs near zero need the f32 case's atol on top of one f16 ulp.
    it('is careful with a large common offset (x in 100 ± 1: two-pass variance)', function () {
      return checkF16(this, [17, 384], 1e-12, 42, { lo: 99, hi: 101, tol: { atol: 4e-5, rtol: F16_TOL.rtol } });
    });

    // (x − mean)² reaches 4·10⁶ here, past f16's largest finite value 65 504: the sums must be f32.
    it('keeps the statistics in f32 (x in ±2000: squares overflow f16)', function () {
      return checkF16(this, [6, 1000], 1e-6, 46, { lo: -2000, hi: 2000 });
    });

    // 7.7 MB of f16: chunks start on lcm(128 halves, 192) = 2 rows; 1 MiB holds 2730 rows → 8 chunks.
    it('handles 20 000 rows of 192 split across 1 MiB bindings (whole rows per chunk)', function () {
      return checkF16(this, [20000, 192], 1e-6, 43, { maxBindingBytes: 1 << 20, dispatches: 8 });
    });

    // Chunks of 128 rows of 255 halves (lcm(128, 255) = 32 640 halves = 63.75 KiB); the last chunk
    // holds 45 rows, an odd number of halves ending mid-word.
    it('splits odd rows (C = 255, odd element count) across 64 KiB bindings: 3 chunks', function () {
      return checkF16(this, [301, 255], 1e-6, 45, { maxBindingBytes: 1 << 16, dispatches: 3 });
    });

    it('rejects non-activation x and non-f32 gamma / beta, naming the operand', async () => {
      const gpu = await testGpu();
      const xh = gpu.empty([4, 6], 'f16');
      const xu = gpu.empty([4, 6], 'u32');
      const g = gpu.empty([6]);
      const gh = gpu.empty([6], 'f16');
      const b = gpu.empty([6]);
      expect(() => layerNorm(gpu, xu, g, b, 1e-6)).to.throw(/layerNorm: x must be an f32 or f16 activation tensor, got u32/);
      expect(() => layerNorm(gpu, xh, gh, b, 1e-6)).to.throw(/layerNorm: gamma must be f32, got f16/);
      expect(() => layerNorm(gpu, xh, g, gh, 1e-6)).to.throw(/layerNorm: beta must be f32, got f16/);
      [xh, xu, g, gh, b].forEach((t) => t.dispose());
    });
  });

  it('rejects a gamma that does not match the last dim, naming both', async () => {
    const gpu = await testGpu();
    const x = gpu.empty([4, 6]);
    const g = gpu.empty([5]);
    const b = gpu.empty([6]);
    expect(() => layerNorm(gpu, x, g, b, 1e-6)).to.throw(/\[5\].*\[4,6\]/);
    [x, g, b].forEach((t) => t.dispose());
  });
});
