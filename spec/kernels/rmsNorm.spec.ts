import { expect } from 'chai';
import { f16Ref } from '../../ops/precision.js';
import { rmsNorm, rmsNormRef } from '../../ops/rmsNorm.js';
import { expectClose, F16_TOL, randomNd, testGpu, uploadAt } from '../helpers.js';

// Cases that take lavapipe many seconds (65 536+ workgroups) run only with CONVLLAVA_SLOW_SPECS=1.
const slowIt = process.env.CONVLLAVA_SLOW_SPECS ? it : it.skip;

const TOL = { atol: 1e-6, rtol: 1e-5 };

async function check(shape: number[], eps: number, seed: number, maxBindingBytes?: number): Promise<void> {
  const gpu = await testGpu();
  const C = shape[shape.length - 1];
  const x = randomNd(shape, seed);
  const gamma = randomNd([C], seed + 1);
  const [tx, tg] = [gpu.upload(shape, x.data), gpu.upload([C], gamma.data)];
  const y = rmsNorm(gpu, tx, tg, eps, { maxBindingBytes });
  expectClose(await y.read(), rmsNormRef(x, gamma, eps).data, TOL);
  [tx, tg, y].forEach((t) => t.dispose());
}

/**
 * f16 activations: x uploaded at f16, gamma an f32 weight; against the f64 reference on the f16
 * values, rounded once at the end (f16Ref). `dispatches`: the number of row chunks expected.
 */
async function checkF16(
  ctx: Mocha.Context,
  shape: number[],
  eps: number,
  seed: number,
  o: { lo?: number; hi?: number; maxBindingBytes?: number; dispatches?: number } = {},
): Promise<void> {
  const gpu = await testGpu();
  if (!gpu.hasF16) ctx.skip();
  const C = shape[shape.length - 1];
  const x = uploadAt(gpu, randomNd(shape, seed, o.lo ?? -1, o.hi ?? 1), 'f16');
  const gamma = randomNd([C], seed + 1);
  const tg = gpu.upload([C], gamma.data);
  const before = gpu.dispatchCount;
  const y = rmsNorm(gpu, x.t, tg, eps, { maxBindingBytes: o.maxBindingBytes });
  if (o.dispatches !== undefined) expect(gpu.dispatchCount - before, 'row chunks').to.equal(o.dispatches);
  expect(y.dtype).to.equal('f16');
  expectClose(await y.read(), f16Ref(rmsNormRef)(x.nd, gamma, eps).data, F16_TOL);
  [x.t, tg, y].forEach((t) => t.dispose());
}

describe('rmsNorm (kernels/rms_norm.wgsl)', () => {
  for (const shape of [[1], [1, 7], [5, 33], [7, 255], [3, 4096], [2, 5003], [3, 9001]]) {
    it(`matches the f64 reference for [${shape}]`, () => check(shape, 1e-5, 51));
  }

  it('handles 70 000 rows of 64 (18 MB) split across 4 MiB bindings', () => check([70000, 64], 1e-6, 52, 4 << 20));

  // 8 rows of C = 3 per workgroup: 67 500 workgroups, more than one grid dimension holds.
  slowIt('handles 540 000 short rows (folded grid; ~10 s on lavapipe, set CONVLLAVA_SLOW_SPECS=1)', () => check([540000, 3], 1e-6, 53));

  it('splits odd rows (C = 255, odd element count) across 64 KiB bindings: 5 chunks of 64 rows', async () => {
    const gpu = await testGpu();
    const before = gpu.dispatchCount;
    await check([301, 255], 1e-6, 54, 1 << 16);
    expect(gpu.dispatchCount - before).to.equal(5);
  });

  describe('f16 activations (x, y f16; gamma f32; mean square f32)', () => {
    for (const shape of [[1], [1, 7], [5, 33], [7, 255], [3, 4096], [2, 5003], [3, 9001]]) {
      it(`matches the f16-rounding reference for [${shape}]`, function () {
        return checkF16(this, shape, 1e-5, 51);
      });
    }

    // x² reaches 4·10⁶ here, past f16's largest finite value 65 504: the sum must be f32.
    it('keeps the mean square in f32 (x in ±2000: squares overflow f16)', function () {
      return checkF16(this, [6, 1000], 1e-6, 55, { lo: -2000, hi: 2000 });
    });

    // 9 MB of f16: 4 MiB holds 32 768 rows of 64 → 3 chunks.
    it('handles 70 000 rows of 64 split across 4 MiB bindings (whole rows per chunk)', function () {
      return checkF16(this, [70000, 64], 1e-6, 52, { maxBindingBytes: 4 << 20, dispatches: 3 });
    });

    // Chunks of 128 rows of 255 halves (lcm(128, 255) = 32 640 halves = 63.75 KiB); the last chunk
    // holds 45 rows, an odd number of halves ending mid-word.
    it('splits odd rows (C = 255, odd element count) across 64 KiB bindings: 3 chunks', function () {
      return checkF16(this, [301, 255], 1e-6, 54, { maxBindingBytes: 1 << 16, dispatches: 3 });
    });

    it('rejects non-activation x and a non-f32 gamma, naming the operand', async () => {
      const gpu = await testGpu();
      const xh = gpu.empty([4, 6], 'f16');
      const xu = gpu.empty([4, 6], 'u32');
      const g = gpu.empty([6]);
      const gh = gpu.empty([6], 'f16');
      expect(() => rmsNorm(gpu, xu, g, 1e-6)).to.throw(/rmsNorm: x must be an f32 or f16 activation tensor, got u32/);
      expect(() => rmsNorm(gpu, xh, gh, 1e-6)).to.throw(/rmsNorm: gamma must be f32, got f16/);
      [xh, xu, g, gh].forEach((t) => t.dispose());
    });
  });

  it('rejects a gamma that does not match the last dim, naming both', async () => {
    const gpu = await testGpu();
    const x = gpu.empty([4, 6]);
    const g = gpu.empty([5]);
    expect(() => rmsNorm(gpu, x, g, 1e-6)).to.throw(/\[5\].*\[4,6\]/);
    [x, g].forEach((t) => t.dispose());
  });
});
