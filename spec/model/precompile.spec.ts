/**
 * Nothing compiles during generation (llm/warmup.ts): after `precompileDecode`, a generation that
 * grows the KV cache across attention_decode's chunk boundaries, greedy and sampled, creates no
 * pipeline after its first token. The tiny fixture has 4 heads and 2048 positions, where the real
 * boundaries (1025 / 2049 keys for 32 heads) cannot be reached, so the spec lowers the decode
 * kernel's workgroup target to move them to 129 and 257 keys.
 */
import { expect } from 'chai';
import { fileURLToPath } from 'node:url';
import { Gpu } from '../../runtime/gpu.js';
import { Checkpoint } from '../../weights/checkpoint.js';
import { LlamaDecoder } from '../../llm/llama.js';
import { collect, generateTokens, type SamplingOptions } from '../../llm/generate.js';
import { LlamaTokenizer } from '../../llm/tokenizer.js';
import { pickAs, PICK_MODES, precompileDecode } from '../../llm/warmup.js';
import { attentionDecodeTuning, decodeChunk, decodeVariantKeyCounts } from '../../ops/attention.js';
import { ConvLlava } from '../../index.js';
import { rng, TINY_FIXTURE_MODEL } from '../helpers.js';

describe('precompiled decoding (llm/warmup.ts)', function () {
  this.timeout(300_000);

  it('lists one key count per attention_decode chunk variant, at the boundaries', () => {
    // Vicuna-7B decode: 32 rows (heads), a 4096-position cache.
    expect(decodeVariantKeyCounts(32, 4096)).to.deep.equal([1, 1025, 2049]);
    for (const keys of [1025, 2049]) expect(decodeChunk(keys, 32)).to.not.equal(decodeChunk(keys - 1, 32));
    expect(decodeVariantKeyCounts(32, 1500)).to.deep.equal([1, 1025]);
    expect(decodeVariantKeyCounts(4, 2048)).to.deep.equal([1]); // the tiny model never leaves chunk 64
  });

  describe('on the tiny fixture decoder, boundaries moved to 129 and 257 keys', () => {
    let gpu: Gpu;
    let ckpt: Checkpoint;
    let decoder: LlamaDecoder;
    const tokenizer = new LlamaTokenizer();
    const target = attentionDecodeTuning.targetWorkgroups;

    before(async () => {
      attentionDecodeTuning.targetWorkgroups = 8; // 4 rows: chunk 128 from 129 keys, 256 from 257
      gpu = await Gpu.create(); // a fresh pipeline cache: nothing compiled by other specs
      ckpt = await Checkpoint.open(TINY_FIXTURE_MODEL);
      decoder = await LlamaDecoder.load(gpu, ckpt.llm, ckpt.config, { dtype: 'f32', maxContext: 300 });
    });
    after(async () => {
      attentionDecodeTuning.targetWorkgroups = target;
      decoder?.dispose();
      await ckpt?.close();
      gpu?.destroy();
    });

    /** Prefills `n` seeded random ids from an empty cache; returns the greedy/sampled stream. */
    function start(n: number, options: SamplingOptions) {
      decoder.truncate(0);
      const next = rng(n);
      const x = decoder.embed(Array.from({ length: n }, () => 3 + Math.floor(next() * 31000)));
      const h = decoder.forward(x);
      x.dispose();
      const logits = decoder.lastLogits(h);
      h.dispose();
      return generateTokens(decoder, tokenizer, logits, options, []);
    }

    /** Runs a generation; returns the pipelines created after its first token. */
    async function pipelinesAfterFirstToken(n: number, options: SamplingOptions): Promise<number> {
      let atFirst = -1;
      const r = await collect(start(n, options), () => {
        if (atFirst < 0) atFirst = gpu.pipelineCount;
      });
      expect(r.ids).to.have.length(options.maxNewTokens!);
      return gpu.pipelineCount - atFirst;
    }

    it('compiles every chunk variant and pick mode at load, recording nothing', async () => {
      const dispatches = gpu.dispatchCount;
      const created = await precompileDecode(decoder);
      expect(created).to.be.above(0);
      expect(gpu.dispatchCount).to.equal(dispatches);
      expect(decoder.length).to.equal(0);
      const chunks = gpu.compiledPipelines().filter((p) => p.kernel.startsWith('attention_decode')).map((p) => p.constants.CHUNK);
      expect(chunks.sort((a, b) => a - b)).to.deep.equal([64, 128, 256]);
      expect(gpu.compiledPipelines().map((p) => p.kernel)).to.include.members(['argmax', 'embedding', 'sample_draw', 'append_id']);
      // every pick mode, run for real on logits of the model's vocabulary size, compiles nothing more
      const next = rng(3);
      const logits = gpu.upload([1, 32000], Float32Array.from({ length: 32000 }, () => 8 * next() - 4));
      const before = gpu.pipelineCount;
      for (const m of PICK_MODES) {
        const id = pickAs(gpu, logits, m);
        expect((await id.read())[0]).to.be.below(32000);
        id.dispose();
      }
      logits.dispose();
      expect(gpu.pipelineCount).to.equal(before);
      expect(await precompileDecode(decoder)).to.equal(0); // all there already
    });

    it('greedy: 250 prompt positions + 12 tokens cross 257 keys with no pipeline created after the first token', async () => {
      expect(decodeChunk(256, 4)).to.equal(128);
      expect(decodeChunk(257, 4)).to.equal(256);
      expect(await pipelinesAfterFirstToken(250, { maxNewTokens: 12 })).to.equal(0);
    });

    it('sampled with top-k, top-p and a repetition penalty: 120 + 12 cross 129 keys, nothing compiled either', async () => {
      const created = await pipelinesAfterFirstToken(120, { maxNewTokens: 12, temperature: 0.8, topK: 40, topP: 0.9, repetitionPenalty: 1.2, seed: 5 });
      expect(created).to.equal(0);
    });
  });

  it('ConvLlava.load compiles them: a sampled answer about an image creates no pipeline after its first token', async () => {
    const gpu = await Gpu.create(); // fresh: the decode pipelines are not there unless the load made them
    try {
      const model = await ConvLlava.load(TINY_FIXTURE_MODEL, { dtype: 'f16', maxContext: 128, gpu });
      let atFirst = -1;
      const r = await model.generate({
        image: fileURLToPath(new URL('../fixtures/convllava-tiny/case0.png', import.meta.url)),
        prompt: 'What is shown?',
        maxNewTokens: 6,
        temperature: 0.9,
        topP: 0.9,
        seed: 2,
        onToken: () => {
          if (atFirst < 0) atFirst = gpu.pipelineCount;
        },
      });
      expect(r.ids.length).to.be.above(1);
      expect(gpu.pipelineCount).to.equal(atFirst);
      await model.dispose();
    } finally {
      gpu.destroy();
    }
  });
});
