/**
 * nn/tidy.ts: a scope frees what was allocated inside it except what it returns, also on errors;
 * views keep their source; nested scopes hand their results outward; older tensors and weights are
 * never touched.
 */
import { expect } from 'chai';
import { add } from '../../ops/add.js';
import { tidy } from '../../nn/tidy.js';
import { testGpu } from '../helpers.js';

describe('tidy (nn/tidy.ts)', () => {
  it('frees every pooled tensor made inside except the returned one', async () => {
    const gpu = await testGpu();
    const a = gpu.upload([4], [1, 2, 3, 4]);
    const live = gpu.pool.liveBytes;
    let inner: ReturnType<typeof gpu.empty> | null = null;
    const out = tidy(gpu, () => {
      inner = add(gpu, a, a); // 2a
      return add(gpu, inner, a); // 3a
    });
    expect(inner!.isDisposed, 'intermediate freed').to.equal(true);
    expect(a.isDisposed, 'input untouched').to.equal(false);
    expect(Array.from((await out.read()) as Float32Array)).to.deep.equal([3, 6, 9, 12]);
    expect(gpu.pool.liveBytes - live).to.equal(out.buffer.size);
    out.dispose();
    a.dispose();
  });

  it('keeps the source of a returned reshape view, and tensors in a returned array or object', async () => {
    const gpu = await testGpu();
    const a = gpu.upload([2, 2], [1, 2, 3, 4]);
    const view = tidy(gpu, () => add(gpu, a, a).reshape([4]));
    expect(Array.from((await view.read()) as Float32Array)).to.deep.equal([2, 4, 6, 8]);
    view.dispose(); // the one release of the buffer: no "released twice"
    const live = gpu.pool.liveBytes;
    const { x, ys } = tidy(gpu, () => ({ x: add(gpu, a, a), ys: [add(gpu, a, a)], n: 3 }));
    expect(x.isDisposed || ys[0].isDisposed).to.equal(false);
    expect(gpu.pool.liveBytes - live).to.equal(x.buffer.size + ys[0].buffer.size);
    x.dispose();
    ys[0].dispose();
    a.dispose();
  });

  it('nested scopes: the inner result belongs to the outer scope, which frees it unless returned', async () => {
    const gpu = await testGpu();
    const a = gpu.upload([4], [1, 1, 1, 1]);
    const live = gpu.pool.liveBytes;
    let fromInner: ReturnType<typeof gpu.empty> | null = null;
    const out = tidy(gpu, () => {
      fromInner = tidy(gpu, () => add(gpu, a, a));
      expect(fromInner.isDisposed, 'alive while the outer scope runs').to.equal(false);
      return add(gpu, fromInner, a);
    });
    expect(fromInner!.isDisposed, 'freed by the outer scope').to.equal(true);
    expect(gpu.pool.liveBytes - live).to.equal(out.buffer.size);
    out.dispose();
    a.dispose();
  });

  it('an exception frees everything made inside and propagates; a Promise is refused', async () => {
    const gpu = await testGpu();
    const a = gpu.upload([4], [1, 1, 1, 1]);
    const live = gpu.pool.liveBytes;
    expect(() =>
      tidy(gpu, () => {
        add(gpu, a, a);
        throw new Error('boom');
      }),
    ).to.throw('boom');
    expect(gpu.pool.liveBytes).to.equal(live);
    expect(gpu.scopes.length).to.equal(0);
    expect(() => tidy(gpu, async () => add(gpu, a, a))).to.throw(/synchronous/);
    expect(gpu.pool.liveBytes).to.equal(live);
    a.dispose();
  });

  it('does not free a weight made inside, nor dispose a buffer twice after a manual dispose', async () => {
    const gpu = await testGpu();
    const live = gpu.pool.liveBytes;
    const w = tidy(gpu, () => {
      const weight = gpu.weight([8]);
      const t = gpu.empty([8]);
      t.reshape([2, 4]).dispose(); // released through a view: the scope must not release it again
      return { weight };
    }).weight;
    expect(w.isDisposed).to.equal(false);
    w.dispose();
    expect(gpu.pool.liveBytes).to.equal(live);
  });
});
