/**
 * nn/chunks.ts `sequential` / `sequentialSteps`: each intermediate is freed once the next step has
 * used it; the stepwise chain pauses between steps (not after the last) and, broken off at a pause
 * or failing in a step, frees what it made — the kept outputs too — but never its input.
 */
import { expect } from 'chai';
import { add } from '../../ops/add.js';
import { runToEnd, sequential, sequentialSteps } from '../../nn/chunks.js';
import { gpuOps } from '../../nn/ops.js';
import type { Tensor } from '../../runtime/tensor.js';
import { testGpu } from '../helpers.js';

describe('sequential / sequentialSteps (nn/chunks.ts)', () => {
  it('runs the chain, freeing intermediates (not kept ones, not x); the steps pause between steps only', async () => {
    const gpu = await testGpu();
    const ops = gpuOps(gpu);
    const x = gpu.upload([4], [1, 2, 3, 4]);
    const made: Tensor[] = [];
    const double = (h: Tensor) => (made.push(add(gpu, h, h)), made[made.length - 1]);
    const out = sequential(ops, x, [double, double, double]);
    expect(Array.from((await out.read()) as Float32Array)).to.deep.equal([8, 16, 24, 32]);
    expect(made.map((t) => t.isDisposed)).to.deep.equal([true, true, false]);
    expect(x.isDisposed).to.equal(false);
    out.dispose();

    made.length = 0;
    const steps = sequentialSteps(ops, x, [double, double, double], (i) => i === 0);
    const pauses: number[] = [];
    for (let s = steps.next(); ; s = steps.next()) {
      if (s.done) {
        expect(Array.from((await s.value.read()) as Float32Array)).to.deep.equal([8, 16, 24, 32]);
        break;
      }
      pauses.push(s.value);
    }
    expect(pauses).to.deep.equal([0, 1]);
    expect(made.map((t) => t.isDisposed)).to.deep.equal([false, true, false]); // step 0's output kept for the caller
    made.forEach((t) => t.dispose());
  });

  it('broken off at a pause, or failing in a step, frees what it made (kept outputs too), never x', async () => {
    const gpu = await testGpu();
    const ops = gpuOps(gpu);
    const x = gpu.upload([4], [1, 2, 3, 4]);
    const live = gpu.pool.liveBytes;
    const double = (h: Tensor) => add(gpu, h, h);
    const steps = sequentialSteps(ops, x, [double, double, double], () => true);
    steps.next();
    steps.next(); // paused after step 1: outputs 0 (kept) and 1 are alive
    steps.return(undefined as never);
    expect(gpu.pool.liveBytes).to.equal(live);

    const fail = (): Tensor => {
      throw new Error('step 2 failed');
    };
    expect(() => runToEnd(sequentialSteps(ops, x, [double, double, fail]))).to.throw('step 2 failed');
    expect(gpu.pool.liveBytes).to.equal(live);
    expect(x.isDisposed).to.equal(false);
    expect(Array.from((await x.read()) as Float32Array)).to.deep.equal([1, 2, 3, 4]);
    x.dispose();
  });
});
