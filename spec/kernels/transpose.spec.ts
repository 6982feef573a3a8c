import { expect } from 'chai';
import { nchwToNhwc, nchwToNhwcRef, nhwcToNchw, nhwcToNchwRef } from '../../ops/transpose.js';
import { expectClose, randomNd, testGpu, uploadAt } from '../helpers.js';

const EXACT = { atol: 0, rtol: 0 };

describe('nchwToNhwc / nhwcToNchw (kernels/transpose.wgsl)', () => {
  for (const shape of [[1, 1, 1], [3, 7, 5], [5, 33, 33], [192, 7, 9], [1, 1, 255], [255, 1, 1], [64, 40, 32]]) {
    it(`round-trips [${shape}] exactly, matching the references`, async () => {
      const gpu = await testGpu();
      const x = randomNd(shape, 61);
      const tx = gpu.upload(shape, x.data);
      const nhwc = nchwToNhwc(gpu, tx);
      const ref = nchwToNhwcRef(x);
      expect(nhwc.shape).to.deep.equal(ref.shape);
      expectClose(await nhwc.read(), ref.data, EXACT, 'nchwToNhwc');
      const back = nhwcToNchw(gpu, nhwc);
      expectClose(await back.read(), nhwcToNchwRef(ref).data, EXACT, 'nhwcToNchw');
      expectClose(await back.read(), x.data, EXACT, 'round trip');
      [tx, nhwc, back].forEach((t) => t.dispose());
    });
  }

  // f16: the same moves of two-byte elements; odd sizes put rows and tiles mid-word.
  for (const shape of [[1, 1, 1], [3, 7, 5], [5, 33, 33], [192, 7, 9], [1, 1, 255], [255, 1, 1], [64, 40, 32]]) {
    it(`f16: round-trips [${shape}] exactly, matching the references`, async function () {
      const gpu = await testGpu();
      if (!gpu.hasF16) this.skip();
      const x = uploadAt(gpu, randomNd(shape, 61, -60000, 60000), 'f16');
      const nhwc = nchwToNhwc(gpu, x.t);
      expect(nhwc.dtype).to.equal('f16');
      const ref = nchwToNhwcRef(x.nd);
      expect(nhwc.shape).to.deep.equal(ref.shape);
      expectClose(await nhwc.read(), ref.data, EXACT, 'nchwToNhwc');
      const back = nhwcToNchw(gpu, nhwc);
      expect(back.dtype).to.equal('f16');
      expectClose(await back.read(), nhwcToNchwRef(ref).data, EXACT, 'nhwcToNchw');
      expectClose(await back.read(), x.nd.data, EXACT, 'round trip');
      [x.t, nhwc, back].forEach((t) => t.dispose());
    });
  }

  it('handles a 1536×1536 RGB image (more tiles than one grid dimension holds)', async () => {
    const gpu = await testGpu();
    const shape = [3, 1536, 1536];
    const x = randomNd(shape, 62);
    const tx = gpu.upload(shape, x.data);
    const nhwc = nchwToNhwc(gpu, tx);
    expectClose(await nhwc.read(), nchwToNhwcRef(x).data, EXACT, 'nchwToNhwc');
    [tx, nhwc].forEach((t) => t.dispose());
  });

  it('rejects tensors that are not 3-D', async () => {
    const gpu = await testGpu();
    const x = gpu.empty([2, 3]);
    expect(() => nchwToNhwc(gpu, x)).to.throw(/\[C, H, W\].*\[2,3\]/);
    expect(() => nhwcToNchw(gpu, x)).to.throw(/\[H, W, C\].*\[2,3\]/);
    x.dispose();
  });

  it('rejects tensors that are not activations, naming the op', async () => {
    const gpu = await testGpu();
    const x = gpu.empty([2, 3, 4], 'u32');
    expect(() => nchwToNhwc(gpu, x)).to.throw(/nchwToNhwc: x must be an f32 or f16 activation tensor, got u32/);
    expect(() => nhwcToNchw(gpu, x)).to.throw(/nhwcToNchw: x must be an f32 or f16 activation tensor, got u32/);
    x.dispose();
  });
});
