/**
 * Every nn/ module at f16 activations (gpuOps(gpu, 'f16')) against its f16 CPU twin (cpuOpsAt('f16'):
 * each op's reference with its output rounded to f16 where the kernel stores it). Both round at the
 * same points, so they differ only where an intermediate lands one f16 ulp apart and the next op
 * carries that on: a few ulps, far below the f16-vs-f32 gap these tests would catch (about 1e-3).
 */
import { expect } from 'chai';
import { Attention } from '../../nn/attention.js';
import { ConvNextBlock } from '../../nn/convnext-block.js';
import { DecoderLayer } from '../../nn/decoder-layer.js';
import { DepthwiseConv7, Embedding, LayerNorm, Linear, PatchConv, RMSNorm } from '../../nn/layers.js';
import { WeightLoader } from '../../nn/loader.js';
import { SwiGluMlp } from '../../nn/mlp.js';
import { cpuOpsAt, gpuOps, type Nd, type TensorOps } from '../../nn/ops.js';
import { Projector } from '../../nn/projector.js';
import { toF16Nd } from '../../ops/precision.js';
import type { Gpu } from '../../runtime/gpu.js';
import type { Tensor } from '../../runtime/tensor.js';
import { SyntheticWeights } from '../../synthetic/checkpoint.js';
import { llmNames, visionNames } from '../../weights/names.js';
import { expectClose, randomNd, relL2, testGpu } from '../helpers.js';

type Shapes = { name: string; shape: number[] }[];

/** A few f16 ulps (2⁻¹⁰ relative each) of drift through a module's ops. */
const TOL = { atol: 2e-4, rtol: 4e-3 };

async function twins(gpu: Gpu, tensors: Shapes, dtype: 'f32' | 'f16', make: <T>(w: WeightLoader<T>) => Promise<unknown>) {
  const source = new SyntheticWeights(tensors, 5);
  const what = { part: 'spec weights', config: 'spec' };
  const g = new WeightLoader(gpuOps(gpu, 'f16'), source, tensors, what, { dtype });
  const c = new WeightLoader(cpuOpsAt('f16'), source, tensors, what, { dtype });
  const onGpu = await make(g);
  const onCpu = await make(c);
  return { onGpu, onCpu, free: () => (gpu.flush(), g.tensors.forEach((t) => t.dispose())) };
}

/** Runs `run` on both twins with the same f16 input; the GPU output must be f16 and agree. */
async function agree(gpu: Gpu, shape: number[], run: <T>(ops: TensorOps<T>, x: T, device: 'gpu' | 'cpu') => T, label: string): Promise<void> {
  const x = toF16Nd(randomNd(shape, 17));
  const input = gpu.upload(shape, x.data, 'f16');
  const live = gpu.pool.liveBytes;
  const y = run(gpuOps(gpu, 'f16'), input, 'gpu');
  expect(gpu.pool.liveBytes - live, `${label}: only the output stays allocated`).to.equal(y.buffer.size);
  expect(y.dtype, `${label} output`).to.equal('f16');
  const ref = run<Nd>(cpuOpsAt('f16'), x, 'cpu');
  expect(y.shape).to.deep.equal(ref.shape);
  const got = (await y.read()) as Float32Array;
  expectClose(got, ref.data, TOL, label);
  expect(relL2(got, ref.data), `${label} relative L2`).to.be.below(2e-3);
  y.dispose();
  input.dispose();
}

describe('nn modules at f16 activations vs their f16 CPU twins (cpuOpsAt)', () => {
  let gpu: Gpu;
  before(async function () {
    gpu = await testGpu();
    if (!gpu.hasF16) this.skip();
  });

  it('Linear (+GELU), LayerNorm, RMSNorm, DepthwiseConv7, PatchConv, Embedding', async () => {
    const tensors = [
      { name: 'fc.weight', shape: [33, 7] }, { name: 'fc.bias', shape: [33] }, { name: 'ln.weight', shape: [7] }, { name: 'ln.bias', shape: [7] },
      { name: 'dw.weight', shape: [6, 1, 7, 7] }, { name: 'dw.bias', shape: [6] },
      { name: 'pc.weight', shape: [5, 6, 2, 2] }, { name: 'pc.bias', shape: [5] },
      { name: 'emb.weight', shape: [11, 6] },
    ];
    const m = await twins(gpu, tensors, 'f16', async (w) => ({
      fc: await Linear.load(w, 'fc.weight', 'fc.bias'),
      ln: await LayerNorm.load(w, 'ln.weight', 'ln.bias', 1e-6),
      rms: await RMSNorm.load(w, 'ln.weight', 1e-5),
      dw: await DepthwiseConv7.load(w, 'dw.weight', 'dw.bias'),
      pc: await PatchConv.load(w, 'pc.weight', 'pc.bias', 2),
      emb: await Embedding.load(w, 'emb.weight'),
    }));
    type M<T> = { fc: Linear<T>; ln: LayerNorm<T>; rms: RMSNorm<T>; dw: DepthwiseConv7<T>; pc: PatchConv<T>; emb: Embedding<T> };
    const pick = <T>(d: 'gpu' | 'cpu') => (d === 'gpu' ? m.onGpu : m.onCpu) as unknown as M<T>;
    await agree(gpu, [5, 7], (_, x, d) => pick<typeof x>(d).fc.forward(x), 'Linear');
    await agree(gpu, [12, 7], (_, x, d) => pick<typeof x>(d).fc.forward(x, { activation: 'gelu' }), 'Linear+GELU (tiled, 12 rows)');
    await agree(gpu, [3, 2, 7], (_, x, d) => pick<typeof x>(d).ln.forward(x), 'LayerNorm');
    await agree(gpu, [5, 7], (_, x, d) => pick<typeof x>(d).rms.forward(x), 'RMSNorm');
    await agree(gpu, [9, 7, 6], (_, x, d) => pick<typeof x>(d).dw.forward(x), 'DepthwiseConv7');
    await agree(gpu, [9, 7, 6], (_, x, d) => pick<typeof x>(d).pc.forward(x), 'PatchConv');
    await agree(gpu, [1], (_, __, d) => pick<Tensor | Nd>(d).emb.forward([3, 0, 10, 3]) as never, 'Embedding');
    // lm_head-style: f32 logits from f16 hidden states
    const x = toF16Nd(randomNd([2, 7], 3));
    const input = gpu.upload([2, 7], x.data, 'f16');
    const logits = pick<Tensor>('gpu').fc.forward(input, { outDtype: 'f32' });
    expect(logits.dtype).to.equal('f32');
    expectClose((await logits.read()) as Float32Array, pick<Nd>('cpu').fc.forward(x, { outDtype: 'f32' }).data, { atol: 1e-5, rtol: 1e-4 }, 'f32 logits');
    [input, logits].forEach((t) => t.dispose());
    m.free();
  });

  it('ConvNextBlock with layer scale, whole and in row chunks', async () => {
    const C = 8;
    const b = visionNames.block(0, 0);
    const tensors: Shapes = [
      { name: b.dwconvWeight, shape: [C, 1, 7, 7] }, { name: b.dwconvBias, shape: [C] },
      { name: b.normWeight, shape: [C] }, { name: b.normBias, shape: [C] },
      { name: b.pwconv1Weight, shape: [4 * C, C] }, { name: b.pwconv1Bias, shape: [4 * C] },
      { name: b.pwconv2Weight, shape: [C, 4 * C] }, { name: b.pwconv2Bias, shape: [C] },
      { name: b.layerScale, shape: [C] },
    ];
    const m = await twins(gpu, tensors, 'f16', (w) => ConvNextBlock.load(w, 0, 0, { eps: 1e-6, layerScale: true }));
    const pick = <T>(d: 'gpu' | 'cpu') => (d === 'gpu' ? m.onGpu : m.onCpu) as unknown as ConvNextBlock<T>;
    const before = gpu.dispatchCount;
    await agree(gpu, [3, 11, C], (_, x, d) => pick<typeof x>(d).forward(x), 'block');
    expect(gpu.dispatchCount - before, 'dispatches of one block at f16').to.equal(4);
    await agree(gpu, [3, 11, C], (_, x, d) => pick<typeof x>(d).forward(x, d === 'gpu' ? { maxChunkRows: 7 } : {}), 'block, chunked on the GPU');
    m.free();
  });

  it('SwiGluMlp, Attention and DecoderLayer (GQA; a prompt, then decode steps through an f16 KV cache)', async () => {
    const [H, I, heads, kvHeads, D] = [16, 24, 4, 2, 8];
    const n = llmNames.layer(0);
    const tensors: Shapes = [
      { name: n.inputNorm, shape: [H] }, { name: n.postAttentionNorm, shape: [H] },
      { name: n.q, shape: [heads * D, H] }, { name: n.k, shape: [kvHeads * D, H] }, { name: n.v, shape: [kvHeads * D, H] },
      { name: n.o, shape: [H, heads * D] }, { name: n.gate, shape: [I, H] }, { name: n.up, shape: [I, H] }, { name: n.down, shape: [H, I] },
    ];
    const shape = { heads, kvHeads, headDim: D, theta: 10000, maxContext: 24, eps: 1e-6 };
    const mlp = await twins(gpu, tensors, 'f16', async (w) => ({ mlp: await SwiGluMlp.load(w, n), norm: await RMSNorm.load(w, n.postAttentionNorm, 1e-6) }));
    const pickMlp = <T>(d: 'gpu' | 'cpu') => (d === 'gpu' ? mlp.onGpu : mlp.onCpu) as unknown as { mlp: SwiGluMlp<T>; norm: RMSNorm<T> };
    for (const rows of [1, 5, 10]) await agree(gpu, [rows, H], (_, x, d) => pickMlp<typeof x>(d).mlp.forward(x, pickMlp<typeof x>(d).norm), `SwiGluMlp, ${rows} rows`);
    mlp.free();

    for (const kind of ['Attention', 'DecoderLayer'] as const) {
      const m = await twins(gpu, tensors, 'f16', async (w) =>
        kind === 'Attention' ? { attn: await Attention.load(w, n, shape), norm: await RMSNorm.load(w, n.inputNorm, 1e-6) } : DecoderLayer.load(w, 0, shape),
      );
      const forward = <T>(d: 'gpu' | 'cpu', x: T, pos: number): T => {
        const model = (d === 'gpu' ? m.onGpu : m.onCpu) as { attn: Attention<T>; norm: RMSNorm<T> } | DecoderLayer<T>;
        return model instanceof DecoderLayer ? model.forward(x, pos) : model.attn.forward(x, pos, model.norm);
      };
      await agree(gpu, [10, H], (_, x, d) => forward(d, x, 0), `${kind} prompt (positions 0…9)`);
      await agree(gpu, [1, H], (_, x, d) => forward(d, x, 10), `${kind} decode step (position 10)`);
      await agree(gpu, [3, H], (_, x, d) => forward(d, x, 11), `${kind} 3 rows (positions 11…13)`);
      const attn = (d: 'gpu' | 'cpu') => {
        const model = (d === 'gpu' ? m.onGpu : m.onCpu) as { attn: Attention<unknown> } | DecoderLayer<unknown>;
        return model instanceof DecoderLayer ? model.selfAttn : model.attn;
      };
      const [gk, gv] = (attn('gpu') as Attention<Tensor>).caches;
      const [ck, cv] = (attn('cpu') as Attention<Nd>).caches;
      expect(gk.dtype, 'the KV cache is f16').to.equal('f16');
      const rows = 14 * kvHeads * D;
      expectClose(((await gk.read()) as Float32Array).subarray(0, rows), ck.data.subarray(0, rows), TOL, `${kind} key cache`);
      expectClose(((await gv.read()) as Float32Array).subarray(0, rows), cv.data.subarray(0, rows), TOL, `${kind} value cache`);
      m.free();
      [gk, gv].forEach((t) => t.dispose());
    }
  });

  it('Projector (mlp2x_gelu)', async () => {
    const config = { mm_projector_type: 'mlp2x_gelu', mm_hidden_size: 12, hidden_size: 10 };
    const source = new SyntheticWeights([
      { name: 'model.mm_projector.0.weight', shape: [10, 12] }, { name: 'model.mm_projector.0.bias', shape: [10] },
      { name: 'model.mm_projector.2.weight', shape: [10, 10] }, { name: 'model.mm_projector.2.bias', shape: [10] },
    ], 9);
    const onGpu = await Projector.fromSource(gpuOps(gpu, 'f16'), config, source);
    const onCpu = await Projector.fromSource(cpuOpsAt('f16'), config, source);
    await agree(gpu, [6, 12], (_, x, d) => ((d === 'gpu' ? onGpu : onCpu) as unknown as Projector<typeof x>).forward(x), 'Projector');
    onGpu.dispose();
  });
});
