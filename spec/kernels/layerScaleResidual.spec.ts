import { expect } from 'chai';
import { layerScaleResidual, layerScaleResidualRef } from '../../ops/layerScaleResidual.js';
import { expectClose, randomNd, testGpu } from '../helpers.js';

const TOL = { atol: 1e-6, rtol: 1e-6 };

describe('layerScaleResidual (kernels/layer_scale_residual.wgsl)', () => {
  for (const shape of [[1], [7], [33, 255], [7, 33, 5], [16, 16, 192]]) {
    it(`matches the CPU reference for [${shape}]`, async () => {
      const gpu = await testGpu();
      const C = shape[shape.length - 1];
      const x = randomNd(shape, 31);
      const gamma = randomNd([C], 32);
      const res = randomNd(shape, 33);
      const [tx, tg, tr] = [gpu.upload(shape, x.data), gpu.upload([C], gamma.data), gpu.upload(shape, res.data)];
      const y = layerScaleResidual(gpu, tx, tg, tr);
      expectClose(await y.read(), layerScaleResidualRef(x, gamma, res).data, TOL);
      [tx, tg, tr, y].forEach((t) => t.dispose());
    });
  }

  it('splits big operands on whole rows (C = 33, 4 KiB bindings)', async () => {
    const gpu = await testGpu();
    const shape = [300, 33];
    const x = randomNd(shape, 34);
    const gamma = randomNd([33], 35);
    const res = randomNd(shape, 36);
    const [tx, tg, tr] = [gpu.upload(shape, x.data), gpu.upload([33], gamma.data), gpu.upload(shape, res.data)];
    const y = layerScaleResidual(gpu, tx, tg, tr, { maxBindingBytes: 12000 });
    expectClose(await y.read(), layerScaleResidualRef(x, gamma, res).data, TOL);
    [tx, tg, tr, y].forEach((t) => t.dispose());
  });

  it('handles a ConvNeXt stage-1 sized activation (96×96×192, 7 MB)', async () => {
    const gpu = await testGpu();
    const shape = [96, 96, 192];
    const x = randomNd(shape, 37);
    const gamma = randomNd([192], 38);
    const res = randomNd(shape, 39);
    const [tx, tg, tr] = [gpu.upload(shape, x.data), gpu.upload([192], gamma.data), gpu.upload(shape, res.data)];
    const y = layerScaleResidual(gpu, tx, tg, tr);
    expectClose(await y.read(), layerScaleResidualRef(x, gamma, res).data, TOL);
    [tx, tg, tr, y].forEach((t) => t.dispose());
  });

  it('rejects mismatched shapes, naming both', async () => {
    const gpu = await testGpu();
    const x = gpu.empty([4, 6]);
    const r = gpu.empty([6, 4]);
    const g = gpu.empty([6]);
    const g5 = gpu.empty([5]);
    expect(() => layerScaleResidual(gpu, x, g, r)).to.throw(/\[4,6\].*\[6,4\]/);
    expect(() => layerScaleResidual(gpu, x, g5, x)).to.throw(/\[5\].*\[4,6\]/);
    [x, r, g, g5].forEach((t) => t.dispose());
  });
});
