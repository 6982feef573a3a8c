/**
 * Gpu.readLater (runtime/gpu.ts): a read started now and awaited later, what the pipelined decode
 * loop uses to record step N+1 while token N comes back.
 */
import { expect } from 'chai';
import { linear } from '../../ops/linear.js';
import { randomArray, testGpu } from '../helpers.js';

describe('runtime: readLater', () => {
  it('copies the value at the time of the call, whatever later work writes', async () => {
    const gpu = await testGpu();
    const t = gpu.upload([3], [7, 8, 9], 'u32');
    const pending = gpu.readLater(t);
    gpu.write(t, [1, 2, 3]);
    expect(Array.from(await pending)).to.deep.equal([7, 8, 9]);
    expect(Array.from(await t.read())).to.deep.equal([1, 2, 3]);
    t.dispose();
  });

  it('resolves without waiting for work submitted after it', async () => {
    const gpu = await testGpu();
    const t = gpu.upload([1], [7], 'u32');
    const start = performance.now();
    const pending = gpu.readLater(t).then((v) => ({ v, ms: performance.now() - start }));
    // Seconds of GPU work on lavapipe, recorded and submitted after the read.
    const x = gpu.upload([256, 1024], randomArray(256 * 1024, 1));
    const w = gpu.upload([1024, 1024], randomArray(1024 * 1024, 2));
    for (let i = 0; i < 8; i++) linear(gpu, x, w).dispose();
    await gpu.sync();
    const laterMs = performance.now() - start;
    const read = await pending;
    expect(Array.from(read.v)).to.deep.equal([7]);
    expect(read.ms, `the read took ${read.ms.toFixed(0)} ms, the later work ${laterMs.toFixed(0)} ms`).to.be.below(laterMs / 2);
    [t, x, w].forEach((a) => a.dispose());
  });

  it('a read never awaited raises no unhandled rejection; awaited, it rejects with the reason', async () => {
    const gpu = await testGpu();
    const t = gpu.upload([1], [7], 'u32');
    t.dispose();
    const unhandled: unknown[] = [];
    const listener = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', listener);
    try {
      gpu.readLater(t); // a discarded speculative step's read
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(unhandled).to.deep.equal([]);
    } finally {
      process.off('unhandledRejection', listener);
    }
    await gpu.readLater(t).then(
      () => expect.fail('read a disposed tensor'),
      (e: Error) => expect(e.message).to.equal('read: tensor [1] was disposed'),
    );
  });
});
