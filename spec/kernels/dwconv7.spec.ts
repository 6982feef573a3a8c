import { expect } from 'chai';
import ndarray from 'ndarray';
import { dwconv7, dwconv7Ref } from '../../ops/dwconv7.js';
import { f16BitsToF32, f32ToF16Bits } from '../../runtime/half.js';
import { expectClose, randomNd, testGpu } from '../helpers.js';

// 49 products of values in [-1, 1] summed in f32 in another order than the f64 reference.
const TOL = { atol: 2e-6, rtol: 1e-5 };

async function check([H, W, C]: number[], seed: number, { f16 = false, bandRows }: { f16?: boolean; bandRows?: number } = {}): Promise<void> {
  const gpu = await testGpu();
  const x = randomNd([H, W, C], seed);
  const w = randomNd([C, 1, 7, 7], seed + 1);
  const bias = randomNd([C], seed + 2);
  // f16 weights: the reference gets the same f16-rounded values the kernel unpacks.
  const wRef = f16 ? ndarray(w.data.map((v) => f16BitsToF32(f32ToF16Bits(v))), w.shape) : w;
  const tx = gpu.upload([H, W, C], x.data);
  const tw = gpu.upload([C, 1, 7, 7], w.data, f16 ? 'f16' : 'f32');
  const tb = gpu.upload([C], bias.data);
  const y = dwconv7(gpu, tx, tw, tb, { bandRows });
  expectClose(await y.read(), dwconv7Ref(x, wRef, bias).data, TOL);
  [tx, tw, tb, y].forEach((t) => t.dispose());
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

  it('rejects mismatched weights, naming both shapes', async () => {
    const gpu = await testGpu();
    const x = gpu.empty([4, 4, 8]);
    const w = gpu.empty([8, 1, 3, 3]);
    const b = gpu.empty([8]);
    expect(() => dwconv7(gpu, x, w, b)).to.throw(/\[8,1,3,3\].*\[4,4,8\]/);
    [x, w, b].forEach((t) => t.dispose());
  });
});
