import { expect } from 'chai';
import { appendId, appendIdRef } from '../../ops/appendId.js';
import { argmax } from '../../ops/argmax.js';
import { randomArray, testGpu } from '../helpers.js';

describe('appendId (kernels/append_id.wgsl)', () => {
  it('writes a GPU-chosen id at each position, matching the CPU reference, leaving the rest', async () => {
    const gpu = await testGpu();
    const m = 33;
    const start = Uint32Array.from({ length: m }, (_, i) => 1000 + i);
    const ids = gpu.upload([m], start, 'u32');
    const expected = start.slice();
    for (const [at, seed] of [[0, 1], [7, 2], [32, 3], [7, 4]]) {
      const logits = randomArray(255, seed);
      const x = gpu.upload([1, 255], logits);
      const token = argmax(gpu, x).reshape([1]); // chosen on the GPU, never read back
      appendId(gpu, token, ids, at);
      appendIdRef([logits.indexOf(Math.max(...logits))], expected, at);
      [x, token].forEach((t) => t.dispose());
    }
    expect(Array.from(await ids.read())).to.deep.equal(Array.from(expected));
    ids.dispose();
  });

  it('refuses a position outside the list and a token that is not one u32', async () => {
    const gpu = await testGpu();
    const ids = gpu.empty([4], 'u32');
    const token = gpu.upload([1], [3], 'u32');
    const wide = gpu.upload([2], [3, 4], 'u32');
    const f = gpu.upload([1], [3]);
    expect(() => appendId(gpu, token, ids, 4)).to.throw('appendId: at 4 must be an integer in 0 … 3 (ids has 4 elements)');
    expect(() => appendId(gpu, wide, ids, 0)).to.throw('appendId: token must hold one id, got 2 elements');
    expect(() => appendId(gpu, f, ids, 0)).to.throw('appendId: token must be u32, got f32');
    expect(() => appendIdRef([1], new Uint32Array(2), -1)).to.throw('appendIdRef: at -1');
    [ids, token, wide, f].forEach((t) => t.dispose());
  });
});
