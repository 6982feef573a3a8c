/**
 * Generation (llm/generate.ts) on the tiny fixture decoder: sampling reproducibility, stop strings,
 * EOS, max_new_tokens, streaming, cancellation. The golden projected rows stand in for the image.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Gpu } from '../../runtime/gpu.js';
import { Checkpoint, TensorSet } from '../../weights/checkpoint.js';
import { LlamaDecoder } from '../../llm/llama.js';
import { inputsEmbeds } from '../../llm/llava.js';
import { collect, generateTokens, uniformStream, type SamplingOptions, type TokenEvent } from '../../llm/generate.js';
import { LlamaTokenizer } from '../../llm/tokenizer.js';
import { testGpu } from '../helpers.js';

const TINY = new URL('../fixtures/convllava-tiny/', import.meta.url);
const golden = JSON.parse(readFileSync(new URL('golden.json', TINY), 'utf8'));
const GREEDY: number[] = golden.cases[0].generated;

describe('generation (llm/generate.ts)', function () {
  let gpu: Gpu;
  let ckpt: Checkpoint;
  let decoder: LlamaDecoder;
  let imageRows: Float32Array;
  const tokenizer = new LlamaTokenizer();

  before(async () => {
    gpu = await testGpu();
    ckpt = await Checkpoint.open(fileURLToPath(new URL('model', TINY)));
    const oracle = await TensorSet.openFile(fileURLToPath(new URL('golden.safetensors', TINY)));
    imageRows = await oracle.readF32('case0.projected');
    await oracle.close();
    decoder = await LlamaDecoder.load(gpu, ckpt.llm, ckpt.config, { dtype: 'f32', maxContext: 128 });
  });
  after(async () => {
    decoder?.dispose();
    await ckpt?.close();
  });

  /** Prefills the case-0 prompt from an empty cache and returns the stream. */
  function start(options: SamplingOptions, eosIds?: number[]) {
    decoder.truncate(0);
    const image = gpu.upload([16, 64], imageRows);
    const x = inputsEmbeds(decoder, golden.input_ids, image);
    image.dispose();
    const h = decoder.forward(x);
    x.dispose();
    const logits = decoder.lastLogits(h);
    h.dispose();
    return generateTokens(decoder, tokenizer, logits, options, eosIds);
  }

  it('sampling is reproducible from the seed, and differs across seeds', async () => {
    const opts = { maxNewTokens: 6, temperature: 1.5, topK: 50, topP: 0.95 };
    const a = await collect(start({ ...opts, seed: 7 }));
    const b = await collect(start({ ...opts, seed: 7 }));
    const c = await collect(start({ ...opts, seed: 8 }));
    expect(a.ids).to.deep.equal(b.ids);
    expect(a.ids).to.have.length(6);
    expect(c.ids).to.not.deep.equal(a.ids);
  });

  it('top-k 1 sampling is greedy whatever the seed', async () => {
    const r = await collect(start({ maxNewTokens: 5, temperature: 0.8, topK: 1, seed: 3 }));
    expect(r.ids).to.deep.equal(GREEDY.slice(0, 5));
  });

  it('the seeded uniform stream is deterministic and in [0, 1)', () => {
    const a = uniformStream(42);
    const b = uniformStream(42);
    for (let i = 0; i < 100; i++) {
      const u = a();
      expect(u).to.equal(b());
      expect(u >= 0 && u < 1).to.equal(true);
    }
  });

  it('a strong repetition penalty changes greedy decoding only where a token would repeat', async () => {
    const plain = await collect(start({ maxNewTokens: 12 }));
    const penalised = await collect(start({ maxNewTokens: 12, repetitionPenalty: 1e6 }));
    expect(new Set(penalised.ids).size).to.equal(penalised.ids.length); // no token repeats
    const firstRepeat = plain.ids.findIndex((id, i) => plain.ids.indexOf(id) < i);
    const same = firstRepeat < 0 ? 12 : firstRepeat;
    expect(penalised.ids.slice(0, same)).to.deep.equal(plain.ids.slice(0, same));
  });

  it('streams events whose text concatenates to the answer; stops at max_new_tokens', async () => {
    const events: TokenEvent[] = [];
    const r = await collect(start({ maxNewTokens: 12 }), (e) => events.push(e));
    expect(events.map((e) => e.id)).to.deep.equal(GREEDY);
    expect(events.map((e) => e.text).join('')).to.equal(r.text);
    expect(r.text).to.equal(tokenizer.decode(GREEDY));
    expect(r.finishReason).to.equal('length');
  });

  it('stops before a stop string, never streaming any part of it', async () => {
    const full = tokenizer.decode(GREEDY);
    // A stop string that starts inside the 4th token's text and ends inside a later one.
    const at = tokenizer.decode(GREEDY.slice(0, 3)).length + 1;
    const stop = full.slice(at, at + 6);
    const events: TokenEvent[] = [];
    const r = await collect(start({ maxNewTokens: 12, stop: ['zzzz-never', stop] }), (e) => events.push(e));
    expect(r.finishReason).to.equal('stop');
    expect(r.text).to.equal(full.slice(0, full.indexOf(stop)));
    expect(events.map((e) => e.text).join('')).to.equal(r.text);
    expect(r.ids.length).to.be.lessThan(12);
  });

  it('stops at EOS without emitting it, leaving every generated id in the KV cache', async () => {
    const eos = GREEDY[4];
    const r = await collect(start({ maxNewTokens: 12 }, [tokenizer.eosId, eos]));
    expect(r.ids).to.deep.equal(GREEDY.slice(0, 4));
    expect(r.finishReason).to.equal('eos');
    expect(decoder.length).to.equal(65 + 4);
  });

  it('an aborted signal rejects with its reason and leaves the decoder usable', async () => {
    const controller = new AbortController();
    const seen: number[] = [];
    const pending = collect(start({ maxNewTokens: 12, signal: controller.signal }), (e) => {
      seen.push(e.id);
      if (seen.length === 3) controller.abort();
    });
    let error: unknown;
    await pending.catch((e) => (error = e));
    expect((error as DOMException)?.name).to.equal('AbortError');
    expect(seen).to.deep.equal(GREEDY.slice(0, 3));
    const again = await collect(start({ maxNewTokens: 3 }));
    expect(again.ids).to.deep.equal(GREEDY.slice(0, 3));
  });

  it('a generation that runs past the KV cache rejects with the counts and releases every buffer', async () => {
    const r = await collect(start({ maxNewTokens: 2 })); // warm: the pool holds each activation size once
    expect(r.ids).to.deep.equal(GREEDY.slice(0, 2));
    await gpu.sync();
    const live = gpu.pool.liveBytes;
    let error: Error | undefined;
    await collect(start({ maxNewTokens: 100 })).catch((e) => (error = e)); // 65 prompt rows + 100 > 128
    expect(error?.message).to.match(/LLM context full: 128 cached \+ 1 new positions > 128/);
    await gpu.sync();
    expect(gpu.pool.liveBytes).to.equal(live);
  });

  it('rejects invalid options before any GPU work', async () => {
    decoder.truncate(0);
    const logits = gpu.empty([1, 32000]);
    const before = gpu.dispatchCount;
    for (const [opts, re] of [
      [{ temperature: -1 }, /temperature/],
      [{ topP: 0 }, /topP/],
      [{ maxNewTokens: 0 }, /maxNewTokens/],
      [{ stop: [''] }, /stop strings/],
    ] as const) {
      let error: Error | undefined;
      await collect(generateTokens(decoder, tokenizer, logits, opts as SamplingOptions)).catch((e) => (error = e));
      expect(error?.message).to.match(re);
    }
    expect(gpu.dispatchCount).to.equal(before);
    logits.dispose();
  });
});
