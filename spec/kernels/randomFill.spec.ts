import { expect } from 'chai';
import { randomFill, randomFillRef, seedFor } from '../../ops/randomFill.js';
import { f16BitsToF32, f32ToF16Bits } from '../../runtime/half.js';
import { expectClose, testGpu } from '../helpers.js';

describe('randomFill (kernels/random_fill.wgsl)', () => {
  for (const n of [1, 7, 33, 255, 70001]) {
    it(`f32 values equal the CPU reference bit for bit (n = ${n})`, async () => {
      const gpu = await testGpu();
      const t = randomFill(gpu, [n], 'f32', { seed: 1234 + n, center: 0.5, halfWidth: 0.25 });
      const ref = randomFillRef(n, { seed: 1234 + n, center: 0.5, halfWidth: 0.25 });
      expectClose(await t.read(), ref, { atol: 0, rtol: 0 }, 'randomFill f32');
      const got = await t.read();
      expect(Math.min(...got)).to.be.at.least(0.25);
      expect(Math.max(...got)).to.be.below(0.75);
      t.dispose();
    });
  }

  it('f16 values are the reference rounded to half (odd length)', async () => {
    const gpu = await testGpu();
    const n = 1001;
    const t = randomFill(gpu, [n], 'f16', { seed: 9 });
    const ref = Array.from(randomFillRef(n, { seed: 9 }), (v) => f16BitsToF32(f32ToF16Bits(v)));
    // pack2x16float's rounding mode is implementation-defined: allow one half-ulp step (2^-11 relative)
    expectClose(await t.read(), ref, { atol: 2 ** -24, rtol: 2 ** -10 }, 'randomFill f16');
    t.dispose();
  });

  it('fills tensors bigger than one storage binding, chunk by chunk, with the same values', async () => {
    const gpu = await testGpu();
    const n = gpu.limits.maxStorageBufferBindingSize / 4 + 4099; // one chunk + a ragged tail
    const t = randomFill(gpu, [n], 'f32', { seed: 77 });
    const got = await t.read();
    const ref = randomFillRef(n, { seed: 77 });
    for (const i of [0, 1, n / 2, n - 4100, n - 4099, n - 1].map(Math.floor)) expect(got[i], `element ${i}`).to.equal(ref[i]);
    t.dispose();
  });

  it('gives different tensors different seeds', () => {
    expect(seedFor('model.layers.0.mlp.up_proj.weight')).to.not.equal(seedFor('model.layers.1.mlp.up_proj.weight'));
  });
});
