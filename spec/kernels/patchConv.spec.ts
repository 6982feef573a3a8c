import { expect } from 'chai';
import ndarray from 'ndarray';
import { patchConv, patchConvRef } from '../../ops/patchConv.js';
import { f16BitsToF32, f32ToF16Bits } from '../../runtime/half.js';
import { expectClose, randomNd, testGpu } from '../helpers.js';

// Sums of up to Cin·k² = 768 products of values in [-1, 1], f32 vs the f64 reference.
const TOL = { atol: 1e-5, rtol: 1e-5 };

async function check([H, W, Cin]: number[], Cout: number, k: number, seed: number, { f16 = false, bandRows }: { f16?: boolean; bandRows?: number } = {}): Promise<void> {
  const gpu = await testGpu();
  const x = randomNd([H, W, Cin], seed);
  const w = randomNd([Cout, Cin, k, k], seed + 1);
  const bias = randomNd([Cout], seed + 2);
  const wRef = f16 ? ndarray(w.data.map((v) => f16BitsToF32(f32ToF16Bits(v))), w.shape) : w;
  const tx = gpu.upload([H, W, Cin], x.data);
  const tw = gpu.upload(w.shape, w.data, f16 ? 'f16' : 'f32');
  const tb = gpu.upload([Cout], bias.data);
  const y = patchConv(gpu, tx, tw, tb, k, { bandRows });
  const ref = patchConvRef(x, wRef, bias, k);
  expect(y.shape).to.deep.equal(ref.shape);
  expectClose(await y.read(), ref.data, TOL);
  [tx, tw, tb, y].forEach((t) => t.dispose());
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
});
