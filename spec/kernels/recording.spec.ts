/**
 * Cheap recording (runtime/recorder.ts, pipelines.ts, bind-groups.ts): explicit layouts read from the
 * WGSL, bind groups reused across dispatches and dropped with their buffers, pipelines looked up by
 * value, compile-only recording, the counters and the per-dispatch profile.
 */
import { expect } from 'chai';
import { add } from '../../ops/add.js';
import { randomFill } from '../../ops/randomFill.js';
import { BindGroupCache } from '../../runtime/bind-groups.js';
import { declaredBindings, type LayoutRecord } from '../../runtime/pipelines.js';
import { testGpu } from '../helpers.js';

describe('recording: layouts from the WGSL', () => {
  it('reads each binding as uniform, read-only or read-write storage, ignoring comments', () => {
    const kinds = declaredBindings(
      'k',
      `// @group(0) @binding(3) var<storage, read_write> commented: array<f32>;
       @group(0) @binding(0) var<uniform> p: Params;
       @group(0) @binding(1) var<storage, read> x: array<f32>;
       @group(0) @binding(2) var<storage> y: array<f32>;
       @group(0) @binding(4) var<storage, read_write> out: array<f32>;
       @group(0) @binding(1) var<storage, read> x4: array<vec4f>;   /* a vec4 view of binding 1 */`,
    );
    expect([...kinds]).to.deep.equal(['uniform', 'read-only-storage', 'read-only-storage', undefined, 'storage']);
  });

  it('refuses two views of one binding that disagree, naming the kernel and binding', () => {
    const src = `@group(0) @binding(1) var<storage, read> x: array<f32>;\n@group(0) @binding(1) var<storage, read_write> x4: array<vec4f>;`;
    expect(() => declaredBindings('viewy', src)).to.throw(/kernel 'viewy': @binding\(1\) is declared both as read-only-storage and as storage/);
  });

  it('a run-time kernel gets its layout from its own source; its read_write binding is writable', async () => {
    const gpu = await testGpu();
    gpu.defineKernel(
      'spec_double',
      `@group(0) @binding(1) var<storage, read> x: array<f32>;
       @group(0) @binding(2) var<storage, read_write> y: array<f32>;
       @compute @workgroup_size(4) fn main(@builtin(global_invocation_id) g: vec3u) { y[g.x] = 2.0 * x[g.x]; }`,
    );
    const x = gpu.upload([4], [1, 2, 3, 4]);
    const y = gpu.empty([4]);
    gpu.dispatch({ kernel: 'spec_double', bindings: [x, y], workgroups: [1] });
    expect([...(await y.read())]).to.deep.equal([2, 4, 6, 8]);
    [x, y].forEach((t) => t.dispose());
  });
});

describe('recording: pipelines and bind groups are reused', () => {
  it('the same constants in a new object find the same pipeline; other constants compile another', async () => {
    const gpu = await testGpu();
    const x = gpu.upload([8], new Float32Array(8).fill(1));
    add(gpu, x, x).dispose();
    const before = gpu.pipelineCount;
    add(gpu, x, x).dispose(); // ops/add.ts builds { WG, GRID_X } afresh each call
    expect(gpu.pipelineCount).to.equal(before);
    const y = gpu.empty([8]);
    gpu.dispatch({ kernel: 'add', constants: { WG: 32, GRID_X: 32768 }, params: new Uint32Array([8, 0, 0, 0]).buffer, bindings: [x, x, y], workgroups: [1] });
    expect(gpu.pipelineCount).to.equal(before + 1);
    await gpu.sync();
    [x, y].forEach((t) => t.dispose());
  });

  it('reuses bind groups for the same buffers and ranges, with each dispatch its own params', async () => {
    const gpu = await testGpu();
    const ok: boolean[] = [];
    for (let i = 0; i < 3; i++) {
      const before = gpu.bindGroupStats;
      const t = randomFill(gpu, [8], 'f32', { seed: i, center: 10 * i, halfWidth: 0.5 }); // params differ per call
      if (i > 0) ok.push(gpu.bindGroupStats.misses === before.misses); // the pooled buffer and the arena come back: a hit
      const values = await t.read();
      for (const v of values) expect(Math.abs(v - 10 * i)).to.be.at.most(0.5);
      t.dispose();
    }
    expect(ok).to.deep.equal([true, true]);
  });

  it('drops cached groups whose buffer is destroyed (weights disposed, the pool trimmed) and keeps working', async () => {
    const gpu = await testGpu();
    const w = gpu.weight([64]);
    gpu.write(w, new Float32Array(64).fill(2));
    const y = add(gpu, w, w);
    expect((await y.read())[0]).to.equal(4);
    const cached = gpu.bindGroupStats.cached;
    w.dispose(); // an exact-size buffer: destroyed now
    expect(gpu.bindGroupStats.cached).to.equal(cached - 1);
    y.dispose();
    gpu.pool.trim(); // destroys y's free buffer too
    const w2 = gpu.weight([64]);
    gpu.write(w2, new Float32Array(64).fill(3));
    expect((await add(gpu, w2, w2).read())[0]).to.equal(6); // no "destroyed buffer" error from a stale group
    w2.dispose();
  });

  it('is bounded: the least recently used group goes first', async () => {
    const gpu = await testGpu();
    const device = gpu.device;
    const bindGroupLayout = device.createBindGroupLayout({ entries: [{ binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'read-only-storage' } }] });
    const layout: LayoutRecord = { id: 999_999, bindGroupLayout, pipelineLayout: device.createPipelineLayout({ bindGroupLayouts: [bindGroupLayout] }) };
    const cache = new BindGroupCache(device, 3);
    const buffers = Array.from({ length: 5 }, () => device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE }));
    const get = (b: GPUBuffer) => cache.get(layout, 1, 1, [b], [0], [256]);
    const first = get(buffers[0]);
    get(buffers[1]);
    get(buffers[2]);
    expect(get(buffers[0])).to.equal(first); // a hit, now the most recent
    get(buffers[3]); // evicts buffers[1]'s group
    get(buffers[4]); // evicts buffers[2]'s group
    expect(cache.size).to.equal(3);
    expect(get(buffers[0])).to.equal(first);
    const misses = cache.misses;
    get(buffers[1]);
    expect(cache.misses).to.equal(misses + 1);
    cache.forgetBuffer(buffers[1]);
    expect(cache.size).to.equal(2);
    buffers.forEach((b) => b.destroy());
  });
});

describe('recording: compile-only, counters and the profile', () => {
  it('precompile compiles without recording, and rejects a kernel that does not compile', async () => {
    const gpu = await testGpu();
    const x = gpu.upload([8], new Float32Array(8).fill(1));
    const dispatches = gpu.dispatchCount;
    const created = await gpu.precompile(() => {
      add(gpu, x, x, { maxBindingBytes: 256 }).dispose();
      gpu.dispatch({ kernel: 'add', constants: { WG: 16, GRID_X: 32768 }, params: new Uint32Array([8, 0, 0, 0]).buffer, bindings: [x, x, x], workgroups: [1] });
    });
    expect(created).to.be.at.least(1);
    expect(gpu.dispatchCount).to.equal(dispatches);
    expect(await gpu.precompile(() => add(gpu, x, x).dispose())).to.equal(0);
    gpu.defineKernel('spec_broken', '@compute @workgroup_size(1) fn main() { let v: u32 = nope; }');
    let error: Error | undefined;
    await gpu.precompile(() => gpu.dispatch({ kernel: 'spec_broken', bindings: [], workgroups: [1] })).catch((e: Error) => (error = e));
    expect(error?.message).to.match(/precompile: a pipeline failed to compile/);
    expect([...(await add(gpu, x, x).read())][0]).to.equal(2); // still usable
    x.dispose();
  });

  it('counts dispatches, passes, copies (not a read\'s staging copy) and the JS time inside dispatch', async () => {
    const gpu = await testGpu();
    const a = gpu.upload([16], new Float32Array(16).fill(1));
    const b = gpu.empty([16]);
    await gpu.sync();
    const c0 = gpu.counters();
    const s = add(gpu, a, a); //      pass 1
    gpu.copy(s, 0, b, 0, 64); //      ends it: 1 copy
    const t = add(gpu, b, a); //      pass 2
    expect([...(await t.read())][0]).to.equal(3); // the staging copy is not counted
    const c1 = gpu.counters();
    expect(c1.dispatches - c0.dispatches).to.equal(2);
    expect(c1.passes - c0.passes).to.equal(2);
    expect(c1.copies - c0.copies).to.equal(1);
    expect(c1.recordMs - c0.recordMs).to.be.above(0);
    [a, b, s, t].forEach((x) => x.dispose());
  });

  it('profile times each dispatch on the GPU and keeps its results', async () => {
    const gpu = await testGpu();
    const a = gpu.upload([1024], new Float32Array(1024).fill(1));
    let y: ReturnType<typeof add> | null = null;
    const profile = await gpu.profile(() => {
      const s = add(gpu, a, a);
      y = add(gpu, s, a);
      s.dispose();
    });
    expect(profile.method).to.equal(gpu.features.has('timestamp-query') ? 'timestamp-query' : 'wall-clock');
    expect(profile.rows.map((r) => r.kernel)).to.deep.equal(['add', 'add']);
    for (const r of profile.rows) expect(r.ms).to.be.a('number').and.at.least(0);
    expect((await y!.read())[5]).to.equal(3);
    // an error while recording leaves the context usable
    let error: Error | undefined;
    const wrong = gpu.empty([3]);
    await gpu.profile(() => add(gpu, a, wrong)).catch((e: Error) => (error = e));
    wrong.dispose();
    expect(error?.message).to.match(/shape mismatch/);
    expect((await add(gpu, a, a).read())[0]).to.equal(2);
    [a, y!].forEach((t) => t.dispose());
  });
});
