import { expect } from 'chai';
import ndarray from 'ndarray';
import { swiglu, swigluRef } from '../../ops/swiglu.js';
import { f16Ref } from '../../ops/precision.js';
import { expectClose, F16_TOL, randomNd, testGpu, uploadAt } from '../helpers.js';

const TOL = { atol: 1e-7, rtol: 1e-5 };

describe('swiglu (kernels/swiglu.wgsl)', () => {
  const cases: [number[], number][] = [[[1], 1], [[7], 1], [[33, 255], 1], [[3, 255], 8], [[5, 1001], 8]];
  for (const [shape, range] of cases) {
    it(`matches the CPU reference for [${shape}], gate in [-${range}, ${range}]`, async () => {
      const gpu = await testGpu();
      const gate = randomNd(shape, 21, -range, range);
      const up = randomNd(shape, 22);
      const [tg, tu] = [gpu.upload(shape, gate.data), gpu.upload(shape, up.data)];
      const y = swiglu(gpu, tg, tu);
      expectClose(await y.read(), swigluRef(gate, up).data, TOL);
      [tg, tu, y].forEach((t) => t.dispose());
    });
  }

  // f16: f32 math on the f16 inputs, rounded once; within one f16 ulp of the rounded reference.
  for (const [shape, range] of cases) {
    it(`f16: matches the f16-rounding reference for [${shape}], gate in [-${range}, ${range}]`, async function () {
      const gpu = await testGpu();
      if (!gpu.hasF16) this.skip();
      const gate = uploadAt(gpu, randomNd(shape, 21, -range, range), 'f16');
      const up = uploadAt(gpu, randomNd(shape, 22), 'f16');
      const y = swiglu(gpu, gate.t, up.t);
      expect(y.dtype).to.equal('f16');
      expectClose(await y.read(), f16Ref(swigluRef)(gate.nd, up.nd).data, F16_TOL);
      [gate.t, up.t, y].forEach((t) => t.dispose());
    });
  }

  it('f16: exact in the limits (gate = ±100, ±6e4); a product past 65504 is inf, as in the reference', async function () {
    const gpu = await testGpu();
    if (!gpu.hasF16) this.skip();
    const gate = ndarray(Float32Array.from([100, -100, 60000, -60000, 60000]), [5]);
    const up = ndarray(Float32Array.from([0.5, 0.5, 1, 1, 2]), [5]);
    const [tg, tu] = [gpu.upload([5], gate.data, 'f16'), gpu.upload([5], up.data, 'f16')];
    const y = await swiglu(gpu, tg, tu).read();
    const ref = f16Ref(swigluRef)(gate, up).data;
    expect(Array.from(y)).to.deep.equal(Array.from(ref));
    expect(y[4]).to.equal(Infinity); // 120000 is past the f16 range
    [tg, tu].forEach((t) => t.dispose());
  });

  it('is finite and exact in the limits (gate = ±100, ±1e4)', async () => {
    const gpu = await testGpu();
    const gate = randomNd([4], 0);
    gate.data.set([100, -100, 1e4, -1e4]);
    const up = randomNd([4], 23);
    const [tg, tu] = [gpu.upload([4], gate.data), gpu.upload([4], up.data)];
    const y = await swiglu(gpu, tg, tu).read();
    expect(Array.from(y).every(Number.isFinite)).to.equal(true);
    expectClose(y, swigluRef(gate, up).data, { atol: 1e-30, rtol: 1e-6 });
    [tg, tu].forEach((t) => t.dispose());
  });

  it('handles > 16.7 M elements (more workgroups than one grid dimension: folded grid)', async () => {
    const gpu = await testGpu();
    const shape = [4099, 4097]; // 16.79 M elements > 65535 · 256, 67 MB: one binding
    const gate = randomNd(shape, 24, -8, 8);
    const up = randomNd(shape, 25);
    const [tg, tu] = [gpu.upload(shape, gate.data), gpu.upload(shape, up.data)];
    const y = swiglu(gpu, tg, tu);
    expectClose(await y.read(), swigluRef(gate, up).data, TOL);
    [tg, tu, y].forEach((t) => t.dispose());
  });

  it('splits operands larger than one binding into aligned chunks', async () => {
    const gpu = await testGpu();
    const shape = [33, 255];
    const gate = randomNd(shape, 26, -8, 8);
    const up = randomNd(shape, 27);
    const [tg, tu] = [gpu.upload(shape, gate.data), gpu.upload(shape, up.data)];
    const y = swiglu(gpu, tg, tu, { maxBindingBytes: 8192 }); // 8415 floats → 5 chunks
    expectClose(await y.read(), swigluRef(gate, up).data, TOL);
    [tg, tu, y].forEach((t) => t.dispose());
  });

  it('f16: splits operands larger than one binding into aligned chunks', async function () {
    const gpu = await testGpu();
    if (!gpu.hasF16) this.skip();
    const shape = [33, 255];
    const gate = uploadAt(gpu, randomNd(shape, 26, -8, 8), 'f16');
    const up = uploadAt(gpu, randomNd(shape, 27), 'f16');
    const before = gpu.dispatchCount;
    const y = swiglu(gpu, gate.t, up.t, { maxBindingBytes: 8192 }); // 8415 halves → 3 chunks
    expect(gpu.dispatchCount - before).to.equal(3);
    expectClose(await y.read(), f16Ref(swigluRef)(gate.nd, up.nd).data, F16_TOL);
    [gate.t, up.t, y].forEach((t) => t.dispose());
  });

  it('rejects mismatched shapes, naming both', async () => {
    const gpu = await testGpu();
    const a = gpu.empty([2, 3]);
    const b = gpu.empty([3, 2]);
    expect(() => swiglu(gpu, a, b)).to.throw(/\[2,3\].*\[3,2\]/);
    [a, b].forEach((t) => t.dispose());
  });

  it('rejects mixed precisions and non-activation operands, naming the operand', async () => {
    const gpu = await testGpu();
    const a = gpu.empty([2, 3]);
    const h = gpu.empty([2, 3], 'f16');
    const u = gpu.empty([2, 3], 'u32');
    expect(() => swiglu(gpu, a, h)).to.throw(/swiglu: up is f16 but the op runs at f32/);
    expect(() => swiglu(gpu, h, a)).to.throw(/swiglu: up is f32 but the op runs at f16/);
    expect(() => swiglu(gpu, u, a)).to.throw(/swiglu: gate must be an f32 or f16 activation tensor, got u32/);
    [a, h, u].forEach((t) => t.dispose());
  });
});
