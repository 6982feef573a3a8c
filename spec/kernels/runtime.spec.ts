import { expect } from 'chai';
import { readdirSync } from 'node:fs';
import { KERNELS } from '../../kernels/index.js';
import { Gpu } from '../../runtime/gpu.js';
import { BufferPool } from '../../runtime/pool.js';
import { bf16BitsToF32, f16BitsToF32, f32ToF16Bits } from '../../runtime/half.js';
import { testGpu } from '../helpers.js';

describe('runtime', () => {
  it('kernels/index.ts lists exactly the .wgsl files in kernels/', () => {
    const files = readdirSync(new URL('../../kernels/', import.meta.url))
      .filter((f) => f.endsWith('.wgsl'))
      .map((f) => f.slice(0, -5))
      .sort();
    expect([...KERNELS].sort()).to.deep.equal(files);
  });

  it('f16 conversion round-trips every finite half and rounds ties to even', () => {
    for (let h = 0; h < 0x10000; h++) {
      const exp = (h >> 10) & 0x1f;
      if (exp === 31) continue; // inf / NaN
      const back = f32ToF16Bits(f16BitsToF32(h));
      // ±0 both fine
      if (back !== h) throw new Error(`half 0x${h.toString(16)} → ${f16BitsToF32(h)} → 0x${back.toString(16)}`);
    }
    expect(f32ToF16Bits(1 + 2 ** -11)).to.equal(0x3c00); // tie → even (down)
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).to.equal(0x3c02); // tie → even (up)
    expect(f32ToF16Bits(65520)).to.equal(0x7c00); // overflow → inf
    expect(f16BitsToF32(0x0001)).to.equal(2 ** -24); // smallest subnormal
    expect(f32ToF16Bits(2 ** -25 * 1.5)).to.equal(0x0001);
    expect(bf16BitsToF32(0x3f80)).to.equal(1);
  });

  it('uploads and reads back f32, f16, u32 and i32 tensors', async () => {
    const gpu = await testGpu();
    const f = gpu.upload([3], [1.5, -2, 3.25]);
    const h = gpu.upload([3], [0.5, -1, 65504], 'f16');
    const u = gpu.upload([2], [7, 4000000000], 'u32');
    const i = gpu.upload([2], [-5, 9], 'i32');
    expect([...(await f.read())]).to.deep.equal([1.5, -2, 3.25]);
    expect([...(await h.read())]).to.deep.equal([0.5, -1, 65504]);
    expect([...(await u.read())]).to.deep.equal([7, 4000000000]);
    expect([...(await i.read())]).to.deep.equal([-5, 9]);
    [f, h, u, i].forEach((t) => t.dispose());
  });

  it('rejects uploads whose data does not match the shape', async () => {
    const gpu = await testGpu();
    expect(() => gpu.upload([2, 3], [1, 2, 3])).to.throw(/\[2,3\] has 6 elements but the data has 3/);
  });

  it('refuses a tensor over maxBufferSize, naming its shape', async () => {
    const gpu = await testGpu();
    const n = 2 * Math.floor(gpu.limits.maxBufferSize / 8) + 2048; // even, over the limit as f32
    expect(() => gpu.empty([n])).to.throw(new RegExp(`tensor \\[${n}\\] f32: .*maxBufferSize`));
    expect(() => gpu.weight([2, n / 2], 'f32', 'w')).to.throw(new RegExp(`w \\[2,${n / 2}\\] f32: .*maxBufferSize`));
  });

  it('reuses pooled buffers of the same bucket', async () => {
    const gpu = await testGpu();
    const a = gpu.empty([1000]);
    const buffer = a.buffer;
    a.dispose();
    const b = gpu.empty([990]);
    expect(b.buffer).to.equal(buffer);
    b.dispose();
    expect(BufferPool.bucket(5000)).to.be.within(5000, 5000 * 1.125);
  });

  it('refuses to release a pooled buffer twice (a view and its source both disposed)', async () => {
    const gpu = await testGpu();
    const a = gpu.empty([8]);
    const view = a.reshape([2, 4]);
    a.dispose();
    // Otherwise the buffer would sit twice in the free list and be handed to two live tensors.
    expect(() => view.dispose()).to.throw(/released twice/);
    const b = gpu.empty([8]);
    const c = gpu.empty([8]);
    expect(b.buffer).to.not.equal(c.buffer);
    [b, c].forEach((t) => t.dispose());
  });

  it('surfaces a WGSL error as a rejected read, not a hang', async () => {
    const gpu = await testGpu();
    gpu.defineKernel('broken', '@compute @workgroup_size(1) fn main() { let x: u32 = undefined_thing; }');
    const y = gpu.empty([4]);
    gpu.dispatch({ kernel: 'broken', bindings: [], workgroups: [1] });
    let error: Error | undefined;
    await y.read().catch((e: Error) => (error = e));
    expect(error?.message).to.match(/WebGPU error/);
    y.dispose();
    // the context stays usable afterwards
    const z = gpu.upload([1], [2]);
    expect([...(await z.read())]).to.deep.equal([2]);
    z.dispose();
  });

  it('explains how to get an adapter when there is none', async () => {
    const fakeGpu = { requestAdapter: async () => null } as unknown as GPU;
    let error: Error | undefined;
    await Gpu.create({ gpu: fakeGpu }).catch((e: Error) => (error = e));
    expect(error?.message).to.match(/no adapter/);
    expect(error?.message).to.match(/lavapipe/);
  });

  it('refuses a binding larger than maxStorageBufferBindingSize, naming it', async () => {
    const gpu = await testGpu();
    const limit = gpu.limits.maxStorageBufferBindingSize;
    const big = gpu.empty([limit / 4 + 64]);
    const y = gpu.empty([1]);
    expect(() =>
      gpu.dispatch({ kernel: 'add', constants: { WG: 64, GRID_X: 32768 }, bindings: [big, big, y], workgroups: [1] }),
    ).to.throw(/over maxStorageBufferBindingSize/);
    big.dispose();
    y.dispose();
  });

  it('refuses a binding range past the tensor (inside its pool bucket) or at an unaligned offset, naming it', async () => {
    const gpu = await testGpu();
    const a = gpu.empty([100]); // 400 bytes in a 512-byte bucket: WebGPU alone would accept bytes 256 … 512
    const y = gpu.empty([64]);
    const dispatch = (offset: number, size: number) =>
      gpu.dispatch({ kernel: 'add', constants: { WG: 64, GRID_X: 32768 }, bindings: [{ tensor: a, offset, size }, y, y], workgroups: [1] });
    expect(() => dispatch(256, 256)).to.throw(/add: binding 1 is bytes 256 … 512 of \[100\] f32 \(400 bytes\)/);
    expect(() => dispatch(4, 256)).to.throw(/start at a multiple of 256/);
    expect(() => gpu.copy(a, 0, y, 128, 200)).to.throw(/copy: dst bytes 128 … 328 are not inside \[64\] f32/);
    [a, y].forEach((t) => t.dispose());
  });
});

describe('runtime: weight tensors', () => {
  it('allocate exact-size buffers outside the pool, counted in live bytes and freed on dispose', async () => {
    const gpu = await testGpu();
    const before = gpu.pool.liveBytes;
    const w = gpu.weight([1000, 3], 'f16');
    expect(w.buffer.size).to.equal(6000);
    expect(gpu.pool.liveBytes - before).to.equal(6000);
    gpu.write(w, new Float32Array(3000).fill(0.5));
    expect((await w.read())[2999]).to.equal(0.5);
    w.dispose();
    expect(gpu.pool.liveBytes).to.equal(before);
  });
});

describe('runtime: partial writes', () => {
  it('write at an offset changes only the named elements; an odd f16 run may end the tensor', async () => {
    const gpu = await testGpu();
    const h = gpu.upload([5], [1, 2, 3, 4, 5], 'f16');
    gpu.write(h, [-3, -4, -5], 2); // odd length, ends the tensor: its pad half lies past the end
    expect([...(await h.read())]).to.deep.equal([1, 2, -3, -4, -5]);
    const f = gpu.upload([4], [1, 2, 3, 4]);
    gpu.write(f, [9], 1);
    expect([...(await f.read())]).to.deep.equal([1, 9, 3, 4]);
    [h, f].forEach((t) => t.dispose());
  });

  it('rejects writes past the end, and odd f16 runs whose pad half would clobber the next element', async () => {
    const gpu = await testGpu();
    // Pool buckets are larger than the tensor, so neither of these would fail on the GPU by itself.
    const f = gpu.upload([4], [1, 2, 3, 4]);
    expect(() => gpu.write(f, [7, 8], 3)).to.throw(/2 elements at offset 3 do not fit tensor \[4\] f32/);
    const h = gpu.upload([6], [1, 2, 3, 4, 5, 6], 'f16');
    expect(() => gpu.write(h, [9], 2)).to.throw(/odd number \(1\) of f16 elements at offset 2.*\[6\]/);
    expect([...(await h.read())]).to.deep.equal([1, 2, 3, 4, 5, 6]);
    [f, h].forEach((t) => t.dispose());
  });
});

describe('runtime: ordering', () => {
  it('a write into a recycled buffer does not overtake recorded work that still reads it', async () => {
    const gpu = await testGpu();
    const { add } = await import('../../ops/add.js');
    gpu.pool.trim(); // no free buffers of other specs: c must get b's
    const n = 4096;
    const a = gpu.upload([n], new Float32Array(n).fill(1));
    const b = gpu.upload([n], new Float32Array(n).fill(2));
    const y = add(gpu, a, b); // recorded, not submitted
    b.dispose(); // b's buffer goes back to the pool …
    const c = gpu.upload([n], new Float32Array(n).fill(100)); // … and is reused and written here
    expect(c.buffer).to.equal(b.buffer);
    expect((await y.read())[0]).to.equal(3); // the add still saw b = 2
    [a, c, y].forEach((t) => t.dispose());
  });

  it('reuses staging buffers for small reads', async () => {
    const gpu = await testGpu();
    const t = gpu.upload([3], [1, 2, 3]);
    for (let i = 0; i < 5; i++) expect([...(await t.read())]).to.deep.equal([1, 2, 3]);
    const results = await Promise.all([t.read(), t.read()]); // concurrent reads use separate buffers
    expect([...results[1]]).to.deep.equal([1, 2, 3]);
    t.dispose();
  });
});

describe('runtime: timeGpu', () => {
  it('an error thrown while recording leaves the context usable (no half-recorded timed pass)', async () => {
    const gpu = await testGpu();
    const { add } = await import('../../ops/add.js');
    const a = gpu.upload([4], [1, 2, 3, 4]);
    const wrong = gpu.empty([5]);
    let error: Error | undefined;
    await gpu
      .timeGpu(() => {
        add(gpu, a, a).dispose();
        add(gpu, a, wrong); // shape mismatch: throws mid-recording
      })
      .catch((e: Error) => (error = e));
    expect(error?.message).to.match(/add: shape mismatch/);
    expect([...(await add(gpu, a, a).read())]).to.deep.equal([2, 4, 6, 8]);
    [a, wrong].forEach((t) => t.dispose());
  });
});

describe('runtime: device loss', () => {
  it('rejects pending and later reads with the reason instead of hanging', async () => {
    const gpu = await Gpu.create();
    const t = gpu.upload([4], [1, 2, 3, 4]);
    gpu.device.destroy(); // what a driver reset or a lost GPU looks like to the program
    let error: Error | undefined;
    await Promise.race([
      t.read().catch((e: Error) => (error = e)),
      new Promise((resolve) => setTimeout(resolve, 10_000)),
    ]);
    expect(error?.message).to.match(/device lost|destroyed|lost/i);
    gpu.destroy();
  });
});

describe('runtime: params arena', () => {
  it('keeps every dispatch’s own params when one batch fills more than one arena', async () => {
    const gpu = await testGpu();
    const { randomFill } = await import('../../ops/randomFill.js');
    // 300 dispatches whose params differ (center = i), recorded in one batch: 300 blocks at 256-byte
    // steps fill more than one 64 KiB arena. Nothing is submitted until the first read.
    const tensors = Array.from({ length: 300 }, (_, i) => randomFill(gpu, [8], 'f32', { seed: i, center: i, halfWidth: 0.25 }));
    for (let i = 0; i < tensors.length; i++) {
      const values = await tensors[i].read();
      for (const v of values) expect(Math.abs(v - i), `tensor ${i}`).to.be.at.most(0.25);
      tensors[i].dispose();
    }
  });
});
