/**
 * The LLaMA decoder against the PyTorch oracle (spec/fixtures/convllava-tiny): the golden projected
 * image rows stand in for the vision tower, so this spec covers exactly llm/llama.ts + llm/generate.ts.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Gpu } from '../../runtime/gpu.js';
import { Checkpoint, TensorSet } from '../../weights/checkpoint.js';
import { decoderTensors, LlamaDecoder, type LlamaConfig } from '../../llm/llama.js';
import { inputsEmbeds } from '../../llm/llava.js';
import { cpuOps } from '../../nn/ops.js';
import { SyntheticWeights } from '../../synthetic/checkpoint.js';
import { collect, generateTokens } from '../../llm/generate.js';
import { LlamaTokenizer } from '../../llm/tokenizer.js';
import { expectRelL2, relL2, testGpu } from '../helpers.js';

const TINY = new URL('../fixtures/convllava-tiny/', import.meta.url);
const golden = JSON.parse(readFileSync(new URL('golden.json', TINY), 'utf8'));

describe('LLaMA decoder (llm/llama.ts) vs the fixture', function () {
  let gpu: Gpu;
  let ckpt: Checkpoint;
  let oracle: TensorSet;
  const tokenizer = new LlamaTokenizer();
  const decoders: Partial<Record<'f32' | 'f16', LlamaDecoder>> = {};

  before(async () => {
    gpu = await testGpu();
    ckpt = await Checkpoint.open(fileURLToPath(new URL('model', TINY)));
    oracle = await TensorSet.openFile(fileURLToPath(new URL('golden.safetensors', TINY)));
    decoders.f32 = await LlamaDecoder.load(gpu, ckpt.llm, ckpt.config, { dtype: 'f32', maxContext: 256 });
    decoders.f16 = await LlamaDecoder.load(gpu, ckpt.llm, ckpt.config, { dtype: 'f16', maxContext: 256 });
  });
  after(async () => {
    decoders.f32?.dispose();
    decoders.f16?.dispose();
    await ckpt?.close();
    await oracle?.close();
  });

  async function projected(c: number) {
    const rows = await oracle.readF32(`case${c}.projected`); // [1, 16, 64]
    return gpu.upload([rows.length / ckpt.config.hidden_size, ckpt.config.hidden_size], rows);
  }

  for (const dtype of ['f32', 'f16'] as const) {
    for (const c of [0, 1]) {
      it(`case ${c} (${dtype} weights): inputs_embeds, prefill_hidden at every position, logits_last within 1e-4`, async () => {
        const decoder = decoders[dtype]!;
        decoder.truncate(0);
        const image = await projected(c);
        const x = inputsEmbeds(decoder, golden.input_ids, image); //  [65, 64]
        image.dispose();
        expect(x.shape).to.deep.equal([65, 64]);
        expectRelL2(await x.read(), await oracle.readF32(`case${c}.inputs_embeds`), 'inputs_embeds', 1e-6);
        const hidden = decoder.forward(x);
        x.dispose();
        expect(decoder.length).to.equal(65);
        expectRelL2(await hidden.read(), await oracle.readF32(`case${c}.prefill_hidden`), 'prefill_hidden');
        const logits = decoder.lastLogits(hidden);
        hidden.dispose();
        expectRelL2(await logits.read(), await oracle.readF32(`case${c}.logits_last`), 'logits_last');
        logits.dispose();
      });

      // Greedy decoding runs in f32 (the fixture's precision); the f16 path is the same code on f16-exact weights.
      if (dtype === 'f16') continue;
      it(`case ${c} (${dtype} weights): 12 greedy tokens through prefill + KV-cache decode`, async () => {
        const decoder = decoders[dtype]!;
        decoder.truncate(0);
        const image = await projected(c);
        const x = inputsEmbeds(decoder, golden.input_ids, image);
        image.dispose();
        const hidden = decoder.forward(x);
        x.dispose();
        const logits = decoder.lastLogits(hidden);
        hidden.dispose();
        const result = await collect(generateTokens(decoder, tokenizer, logits, { maxNewTokens: 12 }));
        expect(result.ids).to.deep.equal(golden.cases[c].generated);
        expect(result.finishReason).to.equal('length');
        expect(decoder.length).to.equal(65 + 11); // the 12th token is chosen but not yet fed
      });
    }
  }

  it('a decode step allocates no GPU memory once warm (pooled activations are reused)', async () => {
    const decoder = decoders.f16!;
    decoder.truncate(0);
    const step = async (id: number) => {
      const x = decoder.embed([id]);
      const h = decoder.forward(x);
      x.dispose();
      const logits = decoder.logits(h);
      h.dispose();
      await logits.read();
      logits.dispose();
    };
    await step(1);
    await step(319);
    const held = gpu.pool.heldBytes;
    const live = gpu.pool.liveBytes;
    for (const id of [13563, 1546, 263]) await step(id);
    expect(gpu.pool.heldBytes).to.equal(held);
    expect(gpu.pool.liveBytes).to.equal(live);
  });

  it('a decode step is at most 7 dispatches per layer and no buffer copies (the fused kernels)', async () => {
    for (const decoder of [decoders.f32!, decoders.f16!]) {
      decoder.truncate(0);
      const prompt = decoder.embed([1, 319, 13563]);
      decoder.forward(prompt).dispose();
      prompt.dispose();
      const x = decoder.embed([1546]);
      const copy = gpu.copy;
      let copies = 0;
      gpu.copy = (...args) => (copies++, copy.apply(gpu, args));
      const before = gpu.dispatchCount;
      try {
        decoder.forward(x).dispose();
      } finally {
        gpu.copy = copy;
      }
      const perLayer = (gpu.dispatchCount - before - 1) / decoder.dims.layers; // − the final RMSNorm
      expect(perLayer, 'dispatches per layer').to.be.at.most(7);
      expect(copies, 'buffer copies').to.equal(0);
      x.dispose();
      await gpu.sync();
    }
  });

  it('refuses to run past the KV cache and rejects bad configs and shapes with clear messages', async () => {
    const decoder = decoders.f16!;
    decoder.truncate(0);
    const x = gpu.empty([257, 64]);
    expect(() => decoder.forward(x)).to.throw(/context full: 0 cached \+ 257 new positions > 256/);
    x.dispose();
    const img = gpu.empty([16, 32]);
    expect(() => inputsEmbeds(decoder, golden.input_ids, img)).to.throw(/\[16,32\].*hidden_size/);
    img.dispose();
    for (const maxContext of [0, 2.5]) {
      await LlamaDecoder.load(gpu, ckpt.llm, ckpt.config, { maxContext }).then(
        () => expect.fail(`loaded with maxContext ${maxContext}`),
        (e: Error) => expect(e.message).to.match(/maxContext must be an integer ≥ 1/),
      );
    }
    await LlamaDecoder.load(gpu, ckpt.llm, { ...ckpt.config, intermediate_size: 100 }).then(
      () => expect.fail('loaded with a wrong intermediate_size'),
      (e: Error) => expect(e.message).to.match(/mlp\.gate_proj\.weight' has shape \[172,64\] but config\.json implies \[100,64\]/),
    );
  });
});

describe('LLaMA decoder (llm/llama.ts) vs its CPU reference (the same assembly on cpuOps): GQA, tied embeddings, biases', () => {
  const config: LlamaConfig = {
    hidden_size: 64,
    intermediate_size: 96,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    rms_norm_eps: 1e-6,
    rope_theta: 500000,
    rope_scaling: null,
    vocab_size: 300,
    max_position_embeddings: 32,
    tie_word_embeddings: true,
    hidden_act: 'silu',
    attention_bias: true,
  };

  for (const dtype of ['f32', 'f16', 'q8', 'q4'] as const) {
    it(`prefill of 9 tokens then 3 decode steps agree at every position (${dtype} weights)`, async () => {
      const gpu = await testGpu();
      const source = new SyntheticWeights(decoderTensors(config), 11); // seeded weights for any config, both decoders
      // q8 / q4: every 2-D weight quantized on load; the reference holds the dequantized values
      const options = dtype === 'q8' || dtype === 'q4' ? { dtype: 'f16' as const, quantize: dtype } : { dtype };
      const decoder = await LlamaDecoder.load(gpu, source, config, options);
      const reference = await LlamaDecoder.load(cpuOps, source, config, options); // f16: matrices rounded through f16
      try {
        const prompt = [1, 17, 250, 3, 99, 42, 42, 7, 299];
        const x = decoder.embed(prompt);
        const hidden = decoder.forward(x);
        x.dispose();
        const refHidden = reference.forward(reference.embed(prompt));
        const tol = 1e-5;
        expect(relL2(await hidden.read(), refHidden.data), 'prefill hidden').to.be.at.most(tol);
        const logits = decoder.logits(hidden);
        hidden.dispose();
        expect(relL2(await logits.read(), reference.logits(refHidden).data), 'prefill logits').to.be.at.most(tol);
        logits.dispose();
        for (const id of [5, 123, 5]) {
          const step = decoder.embed([id]);
          const h = decoder.forward(step);
          step.dispose();
          const l = decoder.logits(h);
          h.dispose();
          const refLogits = reference.logits(reference.forward(reference.embed([id])));
          expect(relL2(await l.read(), refLogits.data), `decode logits at position ${decoder.length - 1}`).to.be.at.most(tol);
          l.dispose();
        }
        expect(decoder.length).to.equal(12);
        expect(reference.length).to.equal(12);
        // Both refuse to run past the cache (max_position_embeddings 32), with the same message.
        const tooLong = Array.from({ length: 21 }, () => 5);
        expect(() => reference.forward(reference.embed(tooLong))).to.throw(/LLM context full: 12 cached \+ 21 new positions > 32/);
        expect(reference.length).to.equal(12);
      } finally {
        decoder.dispose();
      }
    });
  }
});
