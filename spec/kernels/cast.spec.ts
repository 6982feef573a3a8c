import { expect } from 'chai';
import ndarray from 'ndarray';
import { cast, castRef } from '../../ops/cast.js';
import { f16BitsToF32 } from '../../runtime/half.js';
import { randomNd, testGpu } from '../helpers.js';

/**
 * Bit-exact comparison: equal f32 bit patterns (so −0 ≠ +0 and ±inf are checked), except that any
 * NaN matches any NaN (the payload is not part of the contract).
 */
function expectSameBits(actual: Float32Array, expected: Float32Array, label: string): void {
  expect(actual.length, `${label} length`).to.equal(expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  const bad: string[] = [];
  let count = 0;
  for (let i = 0; i < e.length; i++) {
    if (a[i] === e[i] || (Number.isNaN(actual[i]) && Number.isNaN(expected[i]))) continue;
    if (++count <= 8) bad.push(`  [${i}] got ${Object.is(actual[i], -0) ? '-0' : actual[i]} (0x${a[i].toString(16)}), expected ${Object.is(expected[i], -0) ? '-0' : expected[i]} (0x${e[i].toString(16)})`);
  }
  if (count) throw new Error(`${label}: ${count} of ${e.length} elements differ in their bits; first:\n${bad.join('\n')}`);
}

const f32 = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0];

/** f32 values at the edges of f16: overflow, ties, subnormals, signed zeros, inf and NaN. */
function edgeValues(): Float32Array {
  const v: number[] = [
    0, -0, 1, -1, 65504, -65504, 65519.99, 65520, -65520, 65536, 1e6, -1e30, 3.4e38,
    Infinity, -Infinity, NaN, f32(0x7f800001), f32(0xffc00000),
    2 ** -14, 2 ** -14 * (1 - 2 ** -11), 2 ** -24, 2 ** -25, 2 ** -25 * (1 + 2 ** -20), -(2 ** -25), 2 ** -26, 3 * 2 ** -25, 5 * 2 ** -25,
    2 ** -30, 1e-38, 1e-45, -1e-45, f32(0x00000001), 1e-8, -6e-8,
  ];
  // ties between neighbouring f16 values (half an ulp above 1 + k·2⁻¹⁰): even k stays, odd k rounds up
  for (let k = 0; k < 6; k++) v.push(1 + (k + 0.5) * 2 ** -10, -(1024 + k + 0.5), 2 ** -14 + (k + 0.5) * 2 ** -24);
  // just off the ties
  for (const d of [1, -1]) v.push(1 + 0.5 * 2 ** -10 + d * 2 ** -23, 2048 + 1 + d * 2 ** -12);
  // every f16 value as an f32 (exact: must come back unchanged), every 37th bit pattern
  for (let h = 0; h < 0x10000; h += 37) v.push(f16BitsToF32(h));
  return Float32Array.from(v);
}

describe('cast (kernels/cast.wgsl)', () => {
  for (const shape of [[1], [7], [33, 255], [3, 1000, 7]]) {
    it(`f32 → f16 → f32 matches castRef bit for bit for [${shape}]`, async function () {
      const gpu = await testGpu();
      if (!gpu.hasF16) this.skip();
      const x = randomNd(shape, 71, -70000, 70000); // some past the f16 range: ±inf
      x.data.forEach((v, i) => (x.data[i] = i % 3 ? v * 2 ** -(i % 40) : v)); // many binades, subnormals
      const tx = gpu.upload(shape, x.data);
      const h = cast(gpu, tx, 'f16');
      expect(h.dtype).to.equal('f16');
      expect(h.shape).to.deep.equal(shape);
      const ref = castRef(x, 'f16');
      expectSameBits((await h.read()) as Float32Array, ref.data, 'f32 → f16');
      const back = cast(gpu, h, 'f32');
      expect(back.dtype).to.equal('f32');
      expectSameBits((await back.read()) as Float32Array, castRef(ref, 'f32').data, 'f16 → f32');
      [tx, h, back].forEach((t) => t.dispose());
    });
  }

  it('rounds overflow to ±inf, ties to even, keeps subnormals, signed zeros and NaN', async function () {
    const gpu = await testGpu();
    if (!gpu.hasF16) this.skip();
    const x = ndarray(edgeValues(), [edgeValues().length]);
    const ref = castRef(x, 'f16');
    // the reference itself, at a few of the points the kernel must reproduce
    const at = (v: number) => ref.data[x.data.indexOf(Math.fround(v))];
    expect(at(65519.99)).to.equal(65504);
    expect(at(65520)).to.equal(Infinity);
    expect(at(-65520)).to.equal(-Infinity);
    expect(at(1 + 0.5 * 2 ** -10)).to.equal(1); // tie, even neighbour below
    expect(at(1 + 1.5 * 2 ** -10)).to.equal(1 + 2 * 2 ** -10); // tie, even neighbour above
    expect(at(2 ** -25)).to.equal(0); // tie between 0 and the smallest subnormal: 0
    expect(at(3 * 2 ** -25)).to.equal(2 ** -23); // tie between 1 and 2 steps of 2⁻²⁴: 2
    expect(Number.isNaN(ref.data[x.data.findIndex((v, i) => Number.isNaN(v) && i > 0)])).to.equal(true);
    const tx = gpu.upload(x.shape, x.data);
    const h = cast(gpu, tx, 'f16');
    expectSameBits((await h.read()) as Float32Array, ref.data, 'f32 → f16 edges');
    const back = cast(gpu, h, 'f32');
    expectSameBits((await back.read()) as Float32Array, ref.data, 'f16 → f32 edges');
    [tx, h, back].forEach((t) => t.dispose());
  });

  it('f16 → f32 is exact for every f16 bit pattern', async function () {
    const gpu = await testGpu();
    if (!gpu.hasF16) this.skip();
    const bits = Uint16Array.from({ length: 0x10000 }, (_, i) => i);
    const values = Float32Array.from(bits, (h) => f16BitsToF32(h));
    const h = gpu.upload([0x10000], bits, 'f16');
    const y = cast(gpu, h, 'f32');
    expectSameBits((await y.read()) as Float32Array, values, 'f16 → f32');
    [h, y].forEach((t) => t.dispose());
  });

  for (const dtype of ['f32', 'f16'] as const) {
    it(`${dtype} → ${dtype} is a copy into a new tensor`, async function () {
      const gpu = await testGpu();
      if (dtype === 'f16' && !gpu.hasF16) this.skip();
      const x = castRef(randomNd([5, 7], 72), dtype);
      const tx = gpu.upload(x.shape, x.data, dtype);
      const y = cast(gpu, tx, dtype);
      expect(y).to.not.equal(tx);
      expect(y.buffer).to.not.equal(tx.buffer);
      expect(y.dtype).to.equal(dtype);
      tx.dispose(); // the copy does not share the input's buffer
      expectSameBits((await y.read()) as Float32Array, x.data, `${dtype} copy`);
      y.dispose();
    });
  }

  for (const to of ['f16', 'f32'] as const) {
    it(`splits operands larger than one binding into aligned chunks (→ ${to})`, async function () {
      const gpu = await testGpu();
      if (!gpu.hasF16) this.skip();
      const shape = [33, 255];
      const from = to === 'f16' ? 'f32' : 'f16';
      const x = castRef(randomNd(shape, 73, -2, 2), from);
      const tx = gpu.upload(shape, x.data, from);
      const before = gpu.dispatchCount;
      // 8415 elements, chunks of 2048 (8192 bytes of f32, 4096 of f16; starts multiples of 128): 5
      const y = cast(gpu, tx, to, { maxBindingBytes: 8192 });
      expect(gpu.dispatchCount - before).to.equal(5);
      expectSameBits((await y.read()) as Float32Array, castRef(x, to).data, `chunked → ${to}`);
      [tx, y].forEach((t) => t.dispose());
    });
  }

  it('chunk starts stay 256-byte aligned on the f16 side when the limit is not a multiple of 512 bytes', async function () {
    const gpu = await testGpu();
    if (!gpu.hasF16) this.skip();
    const x = randomNd([1001], 74);
    const tx = gpu.upload([1001], x.data);
    const y = cast(gpu, tx, 'f16', { maxBindingBytes: 768 }); // 192 f32 elements would start f16 at 384 bytes
    expectSameBits((await y.read()) as Float32Array, castRef(x, 'f16').data, 'chunked at 768 bytes');
    [tx, y].forEach((t) => t.dispose());
  });

  it('rejects non-activation tensors and unknown dtypes, naming the operand', async () => {
    const gpu = await testGpu();
    const ids = gpu.empty([3], 'u32');
    expect(() => cast(gpu, ids, 'f32')).to.throw(/cast: x must be an f32 or f16 activation tensor, got u32/);
    const x = gpu.empty([3]);
    expect(() => cast(gpu, x, 'bf16' as 'f16')).to.throw(/cast: dtype must be 'f32' or 'f16', got 'bf16'/);
    [ids, x].forEach((t) => t.dispose());
  });

  it('castRef: f16 rounding is the runtime/half.ts one, f32 a copy', () => {
    const x = ndarray(Float32Array.from([1 + 2 ** -11, 70000, 0.1]), [3]);
    expect(Array.from(castRef(x, 'f16').data)).to.deep.equal([1, Infinity, 0.0999755859375]);
    const c = castRef(x, 'f32');
    expect(c.data).to.not.equal(x.data);
    expect(Array.from(c.data)).to.deep.equal(Array.from(x.data));
  });
});
