/**
 * nn/loader.ts, the one weight loader: dtype policy, shape check naming both shapes, progress, a
 * tensor asked for twice loaded once, and rollback (weights and adopted buffers) on failure.
 */
import { expect } from 'chai';
import { WeightLoader, type WeightReader } from '../../nn/loader.js';
import { cpuOps, gpuOps } from '../../nn/ops.js';
import { LlamaDecoder, type LlamaConfig } from '../../llm/llama.js';
import { f16BitsToF32, f32ToF16Bits } from '../../runtime/half.js';
import { SyntheticWeights } from '../../synthetic/checkpoint.js';
import { decoderTensorShapes } from '../../weights/names.js';
import { testGpu } from '../helpers.js';

const TENSORS = [
  { name: 'm.weight', shape: [6, 4] },
  { name: 'm.bias', shape: [6] },
];

describe('WeightLoader (nn/loader.ts)', () => {
  it('matrices take the requested dtype (default f32), vectors stay f32; progress counts each tensor once', async () => {
    const gpu = await testGpu();
    const source = new SyntheticWeights(TENSORS, 3);
    for (const [dtype, want] of [[undefined, 'f32'], ['f16', 'f16']] as const) {
      const progress: [number, number, string][] = [];
      const w = new WeightLoader(gpuOps(gpu), source, TENSORS, { part: 'test weights', config: 'test.json' }, { dtype, onProgress: (...p) => progress.push(p) });
      const m = await w.get('m.weight');
      const b = await w.get('m.bias');
      expect(await w.get('m.weight'), 'asked twice: the same tensor').to.equal(m);
      expect([m.dtype, b.dtype]).to.deep.equal([want, 'f32']);
      expect(progress).to.deep.equal([[1, 2, 'm.weight'], [2, 2, 'm.bias']]);
      expect(w.tensors).to.have.length(2);
      await gpu.sync(); // the weights are generated on the GPU: let the fills run before freeing them
      for (const t of w.tensors) t.dispose();
    }
  });

  it('on the CPU, f16 rounds matrices through f16 (as the GPU stores them) and keeps vectors exact', async () => {
    const source = new SyntheticWeights(TENSORS, 3);
    const w = new WeightLoader(cpuOps, source, TENSORS, { part: 'test weights', config: 'test.json' }, { dtype: 'f16' });
    const exact = await source.readF32('m.weight');
    expect(Array.from((await w.get('m.weight')).data)).to.deep.equal(Array.from(exact, (v) => f16BitsToF32(f32ToF16Bits(v))));
    expect(Array.from((await w.get('m.bias')).data)).to.deep.equal(Array.from(await source.readF32('m.bias')));
  });

  it('refuses a wrong shape naming both, a missing tensor, and a name the model does not expect', async () => {
    const gpu = await testGpu();
    const loader = (expected: { name: string; shape: number[] }[], source: WeightReader = new SyntheticWeights(TENSORS, 3)) =>
      new WeightLoader(gpuOps(gpu), source, expected, { part: 'test weights', config: 'test.json' });
    const err = (p: Promise<unknown>) => p.then(() => expect.fail('loaded'), (e: Error) => e.message);
    expect(await err(loader([{ name: 'm.weight', shape: [6, 5] }]).get('m.weight'))).to.equal(
      "test weights: 'm.weight' has shape [6,4] but test.json implies [6,5]",
    );
    expect(await err(loader([{ name: 'x.weight', shape: [2, 2] }]).get('x.weight'))).to.equal(
      "test weights: tensor 'x.weight' is missing from the checkpoint",
    );
    expect(await err(loader(TENSORS).get('other'))).to.match(/'other' is not among the tensors this model expects/);
  });

  it('a model whose load fails frees every tensor it loaded and every buffer it made (KV caches)', async () => {
    const gpu = await testGpu();
    const config: LlamaConfig = {
      hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 4,
      head_dim: 8, rms_norm_eps: 1e-6, rope_theta: 10000, rope_scaling: null, vocab_size: 50,
      max_position_embeddings: 16, tie_word_embeddings: false, hidden_act: 'silu', attention_bias: false,
    };
    const good = new SyntheticWeights(decoderTensorShapes(config), 1);
    // The last tensor (lm_head) fails to load, after both layers (and their caches) were made.
    const failing: WeightReader = {
      has: (n) => good.has(n),
      shape: (n) => good.shape(n),
      readF32: (n) => good.readF32(n),
      toGpu: async (g, n, dtype) => {
        if (n === 'lm_head.weight') throw new Error('disk on fire');
        return good.toGpu(g, n, dtype);
      },
    };
    await gpu.sync();
    const live = gpu.pool.liveBytes;
    await LlamaDecoder.load(gpu, failing, config).then(
      () => expect.fail('loaded'),
      (e: Error) => expect(e.message).to.equal('disk on fire'),
    );
    expect(gpu.pool.liveBytes).to.equal(live);
    const decoder = await LlamaDecoder.load(gpu, good, config);
    expect(gpu.pool.liveBytes).to.be.greaterThan(live);
    decoder.dispose();
    expect(gpu.pool.liveBytes).to.equal(live);
  });
});
