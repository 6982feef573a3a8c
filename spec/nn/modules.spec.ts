/**
 * Every nn/ module against its CPU twin (the same module loaded on cpuOps, i.e. over the ops'
 * references) on seeded random weights and inputs in [-1, 1], ragged sizes, f32 and f16 weights;
 * and the two rules of the layer: a forward leaves nothing allocated but its output, and the
 * ConvNeXt block gives the same result in row chunks as in one piece.
 */
import { expect } from 'chai';
import { Attention } from '../../nn/attention.js';
import { forEachRowChunk } from '../../nn/chunks.js';
import { ConvNextBlock } from '../../nn/convnext-block.js';
import { DecoderLayer } from '../../nn/decoder-layer.js';
import { DepthwiseConv7, Embedding, LayerNorm, Linear, PatchConv, RMSNorm } from '../../nn/layers.js';
import { WeightLoader } from '../../nn/loader.js';
import { SwiGluMlp } from '../../nn/mlp.js';
import { cpuOps, gpuOps, type Nd, type TensorOps } from '../../nn/ops.js';
import { Projector } from '../../nn/projector.js';
import type { Gpu } from '../../runtime/gpu.js';
import type { Tensor } from '../../runtime/tensor.js';
import { SyntheticWeights } from '../../synthetic/checkpoint.js';
import { llmNames, visionNames } from '../../weights/names.js';
import { expectClose, randomNd, testGpu } from '../helpers.js';

type Shapes = { name: string; shape: number[] }[];

/** Loads the same module on the GPU and on the CPU from the same seeded weights. */
async function twins(gpu: Gpu, tensors: Shapes, dtype: 'f32' | 'f16', make: <T>(w: WeightLoader<T>) => Promise<unknown>): Promise<{ onGpu: unknown; onCpu: unknown; free: () => void }> {
  const source = new SyntheticWeights(tensors, 5);
  const what = { part: 'spec weights', config: 'spec' };
  const g = new WeightLoader(gpuOps(gpu), source, tensors, what, { dtype });
  const c = new WeightLoader(cpuOps, source, tensors, what, { dtype });
  const onGpu = await make(g);
  const onCpu = await make(c);
  return { onGpu, onCpu, free: () => (gpu.flush(), g.tensors.forEach((t) => t.dispose())) };
}

/** Runs `run` on both devices with the same random input; compares, checks nothing leaked on the GPU. */
async function agree(gpu: Gpu, shape: number[], run: <T>(ops: TensorOps<T>, x: T, device: 'gpu' | 'cpu') => T, label: string, tol = { atol: 1e-5, rtol: 1e-4 }): Promise<void> {
  const x = randomNd(shape, 17);
  const input = gpu.upload(shape, x.data);
  const live = gpu.pool.liveBytes;
  const y = run(gpuOps(gpu), input, 'gpu');
  expect(gpu.pool.liveBytes - live, `${label}: only the output stays allocated`).to.equal(y.buffer.size);
  const ref = run<Nd>(cpuOps, x, 'cpu');
  expect(y.shape).to.deep.equal(ref.shape);
  expectClose((await y.read()) as Float32Array, ref.data, tol, label);
  y.dispose();
  input.dispose();
}

describe('nn modules vs their CPU twins (the same module on cpuOps)', () => {
  let gpu: Gpu;
  before(async () => {
    gpu = await testGpu();
  });

  for (const dtype of ['f32', 'f16'] as const) {
    it(`Linear (with and without fused GELU), LayerNorm, RMSNorm (${dtype} weights)`, async () => {
      const tensors = [{ name: 'fc.weight', shape: [33, 7] }, { name: 'fc.bias', shape: [33] }, { name: 'ln.weight', shape: [7] }, { name: 'ln.bias', shape: [7] }];
      const m = await twins(gpu, tensors, dtype, async (w) => ({
        fc: await Linear.load(w, 'fc.weight', 'fc.bias'),
        ln: await LayerNorm.load(w, 'ln.weight', 'ln.bias', 1e-6),
        rms: await RMSNorm.load(w, 'ln.weight', 1e-5),
      }));
      const pick = <T>(d: 'gpu' | 'cpu') => (d === 'gpu' ? m.onGpu : m.onCpu) as unknown as { fc: Linear<T>; ln: LayerNorm<T>; rms: RMSNorm<T> };
      await agree(gpu, [5, 7], (_, x, d) => pick<typeof x>(d).fc.forward(x), 'Linear');
      await agree(gpu, [5, 7], (_, x, d) => pick<typeof x>(d).fc.forward(x, { activation: 'gelu' }), 'Linear+GELU');
      await agree(gpu, [3, 2, 7], (_, x, d) => pick<typeof x>(d).ln.forward(x), 'LayerNorm');
      await agree(gpu, [5, 7], (_, x, d) => pick<typeof x>(d).rms.forward(x), 'RMSNorm');
      m.free();
    });
  }

  it('DepthwiseConv7, PatchConv (f16 weights), Embedding', async () => {
    const tensors = [
      { name: 'dw.weight', shape: [6, 1, 7, 7] }, { name: 'dw.bias', shape: [6] },
      { name: 'pc.weight', shape: [5, 6, 2, 2] }, { name: 'pc.bias', shape: [5] },
      { name: 'emb.weight', shape: [11, 6] },
    ];
    const m = await twins(gpu, tensors, 'f16', async (w) => ({
      dw: await DepthwiseConv7.load(w, 'dw.weight', 'dw.bias'),
      pc: await PatchConv.load(w, 'pc.weight', 'pc.bias', 2),
      emb: await Embedding.load(w, 'emb.weight'),
    }));
    const pick = <T>(d: 'gpu' | 'cpu') => (d === 'gpu' ? m.onGpu : m.onCpu) as unknown as { dw: DepthwiseConv7<T>; pc: PatchConv<T>; emb: Embedding<T> };
    await agree(gpu, [9, 7, 6], (_, x, d) => pick<typeof x>(d).dw.forward(x), 'DepthwiseConv7');
    await agree(gpu, [9, 7, 6], (_, x, d) => pick<typeof x>(d).pc.forward(x), 'PatchConv');
    await agree(gpu, [1], (_, __, d) => pick<Tensor | Nd>(d).emb.forward([3, 0, 10, 3]) as never, 'Embedding');
    m.free();
  });

  const C = 8;
  const blockTensors = (layerScale: boolean): Shapes => {
    const b = visionNames.block(0, 0);
    return [
      { name: b.dwconvWeight, shape: [C, 1, 7, 7] }, { name: b.dwconvBias, shape: [C] },
      { name: b.normWeight, shape: [C] }, { name: b.normBias, shape: [C] },
      { name: b.pwconv1Weight, shape: [4 * C, C] }, { name: b.pwconv1Bias, shape: [4 * C] },
      { name: b.pwconv2Weight, shape: [C, 4 * C] }, { name: b.pwconv2Bias, shape: [C] },
      ...(layerScale ? [{ name: b.layerScale, shape: [C] }] : []),
    ];
  };
  for (const layerScale of [true, false]) {
    it(`ConvNextBlock ${layerScale ? 'with' : 'without'} layer scale, whole and in row chunks (33 pixels in chunks of 7)`, async () => {
      const m = await twins(gpu, blockTensors(layerScale), 'f32', (w) => ConvNextBlock.load(w, 0, 0, { eps: 1e-6, layerScale }));
      const pick = <T>(d: 'gpu' | 'cpu') => (d === 'gpu' ? m.onGpu : m.onCpu) as unknown as ConvNextBlock<T>;
      const before = gpu.dispatchCount;
      await agree(gpu, [3, 11, C], (_, x, d) => pick<typeof x>(d).forward(x), 'block');
      // dwconv7, LayerNorm, pwconv1 + GELU, pwconv2 + layer scale + residual (the agree() helper itself dispatches nothing)
      expect(gpu.dispatchCount - before, 'dispatches of one block').to.equal(4);
      await agree(gpu, [3, 11, C], (_, x, d) => pick<typeof x>(d).forward(x, d === 'gpu' ? { maxChunkRows: 7 } : {}), 'block, chunked on the GPU vs whole on the CPU');
      m.free();
    });
  }

  it('forEachRowChunk: chunks overwrite their rows of a and free their intermediates', async () => {
    const a = randomNd([10, 3], 1);
    const b = randomNd([10, 3], 2);
    const ga = gpu.upload([10, 3], a.data);
    const gb = gpu.upload([10, 3], b.data);
    const live = gpu.pool.liveBytes;
    const ops = gpuOps(gpu);
    const out = forEachRowChunk(ops, ga, gb, 4, (x, y) => ops.add(x, y));
    expect(out).to.equal(ga);
    expect(gpu.pool.liveBytes).to.equal(live);
    expectClose((await out.read()) as Float32Array, a.data.map((v, i) => v + b.data[i]), { atol: 1e-6, rtol: 0 }, 'a + b');
    ga.dispose();
    gb.dispose();
  });

  for (const biases of [false, true]) {
    // Without attention biases (LLaMA) the decode-sized calls take the fused kernels (qkv_rope,
    // gate_up_swiglu, the residual epilogues); with them, and for the 10-row prompt, the unfused ops.
    it(`SwiGluMlp, Attention (GQA${biases ? ', biases' : ''}; a prompt, then decode steps through the cache), DecoderLayer`, async () => {
      const [H, I, heads, kvHeads, D] = [16, 24, 4, 2, 8];
      const n = llmNames.layer(0);
      const tensors: Shapes = [
        { name: n.inputNorm, shape: [H] }, { name: n.postAttentionNorm, shape: [H] },
        { name: n.q, shape: [heads * D, H] }, { name: n.qBias, shape: [heads * D] },
        { name: n.k, shape: [kvHeads * D, H] }, { name: n.kBias, shape: [kvHeads * D] },
        { name: n.v, shape: [kvHeads * D, H] }, { name: n.vBias, shape: [kvHeads * D] },
        { name: n.o, shape: [H, heads * D] }, { name: n.oBias, shape: [H] },
        { name: n.gate, shape: [I, H] }, { name: n.up, shape: [I, H] }, { name: n.down, shape: [H, I] },
      ].filter((t) => biases || !t.name.endsWith('bias'));
      const shape = { heads, kvHeads, headDim: D, theta: 10000, maxContext: 24, eps: 1e-6 };
      for (const dtype of ['f32', 'f16'] as const) {
        const mlp = await twins(gpu, tensors, dtype, async (w) => ({ mlp: await SwiGluMlp.load(w, n), norm: await RMSNorm.load(w, n.postAttentionNorm, 1e-6) }));
        const pickMlp = <T>(d: 'gpu' | 'cpu') => (d === 'gpu' ? mlp.onGpu : mlp.onCpu) as unknown as { mlp: SwiGluMlp<T>; norm: RMSNorm<T> };
        for (const rows of [1, 5, 10]) {
          await agree(gpu, [rows, H], (_, x, d) => pickMlp<typeof x>(d).mlp.forward(x, pickMlp<typeof x>(d).norm), `SwiGluMlp ${dtype}, ${rows} rows`);
        }
        mlp.free();
      }

      for (const kind of ['Attention', 'DecoderLayer'] as const) {
        const m = await twins(gpu, tensors, 'f16', async (w) =>
          kind === 'Attention' ? { attn: await Attention.load(w, n, shape), norm: await RMSNorm.load(w, n.inputNorm, 1e-6) } : DecoderLayer.load(w, 0, shape),
        );
        const forward = <T>(d: 'gpu' | 'cpu', x: T, pos: number): T => {
          const model = (d === 'gpu' ? m.onGpu : m.onCpu) as { attn: Attention<T>; norm: RMSNorm<T> } | DecoderLayer<T>;
          return model instanceof DecoderLayer ? model.forward(x, pos) : model.attn.forward(x, pos, model.norm);
        };
        await agree(gpu, [10, H], (_, x, d) => forward(d, x, 0), `${kind} prompt (positions 0…9)`);
        await agree(gpu, [1, H], (_, x, d) => forward(d, x, 10), `${kind} decode step (position 10, keys 0…10)`);
        await agree(gpu, [3, H], (_, x, d) => forward(d, x, 11), `${kind} 3 rows (positions 11…13)`);
        // The caches both twins wrote must agree too (the fused kernel writes them in place).
        const attn = (d: 'gpu' | 'cpu') => {
          const model = (d === 'gpu' ? m.onGpu : m.onCpu) as { attn: Attention<unknown> } | DecoderLayer<unknown>;
          return model instanceof DecoderLayer ? model.selfAttn : model.attn;
        };
        const [gk, gv] = (attn('gpu') as Attention<Tensor>).caches;
        const [ck, cv] = (attn('cpu') as Attention<Nd>).caches;
        const rows = 14 * kvHeads * D;
        expectClose(((await gk.read()) as Float32Array).subarray(0, rows), ck.data.subarray(0, rows), { atol: 1e-5, rtol: 1e-4 }, `${kind} key cache`);
        expectClose(((await gv.read()) as Float32Array).subarray(0, rows), cv.data.subarray(0, rows), { atol: 1e-5, rtol: 1e-4 }, `${kind} value cache`);
        m.free();
        [gk, gv].forEach((t) => t.dispose()); // made by the module, not loaded
      }
    });
  }

  it('Projector (mlp2x_gelu) on both devices', async () => {
    const config = { mm_projector_type: 'mlp2x_gelu', mm_hidden_size: 12, hidden_size: 10 };
    const source = new SyntheticWeights([
      { name: 'model.mm_projector.0.weight', shape: [10, 12] }, { name: 'model.mm_projector.0.bias', shape: [10] },
      { name: 'model.mm_projector.2.weight', shape: [10, 10] }, { name: 'model.mm_projector.2.bias', shape: [10] },
    ], 9);
    const onGpu = await Projector.fromSource(gpu, config, source);
    const onCpu = await Projector.fromSource(cpuOps, config, source);
    await agree(gpu, [6, 12], (_, x, d) => ((d === 'gpu' ? onGpu : onCpu) as unknown as Projector<typeof x>).forward(x), 'Projector');
    onGpu.dispose();
  });
});
