/**
 * The library API (index.ts) end to end on the tiny fixture model: image file → answer, through
 * preprocessing, the vision tower, the projector and the decoder.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { ConvLlava, type LoadProgress, type TokenEvent } from '../../index.js';
import type { GpuBackend } from '../../llm/backend.js';
import { testGpu } from '../helpers.js';

const TINY = new URL('../fixtures/convllava-tiny/', import.meta.url);
const MODEL = fileURLToPath(new URL('model', TINY));
const golden = JSON.parse(readFileSync(new URL('golden.json', TINY), 'utf8'));
const imagePath = (c: number) => fileURLToPath(new URL(`case${c}.png`, TINY));

describe('library API (index.ts: ConvLlava)', function () {
  let model: ConvLlava;
  const progress: LoadProgress[] = [];

  before(async () => {
    model = await ConvLlava.load(MODEL, { dtype: 'f32', precision: 'f32', maxContext: 160, gpu: await testGpu(), onProgress: (p) => progress.push(p) });
  });
  after(async () => {
    await model?.dispose();
  });

  it('reports load progress for every stage, ending complete', () => {
    for (const stage of ['vision', 'projector', 'llm'] as const) {
      const last = progress.filter((p) => p.stage === stage).at(-1);
      expect(last, stage).to.not.equal(undefined);
      expect(last!.done).to.equal(last!.total);
    }
    const llm = progress.filter((p) => p.stage === 'llm');
    expect(llm.at(-1)!.total).to.equal(1 + 2 * 9 + 2); // embed, 2 layers × 9, norm, lm_head
  });

  for (const c of [0, 1]) {
    it(`case ${c}: generate() from the PNG path reproduces the 12 greedy tokens and the prompt ids`, async () => {
      const events: TokenEvent[] = [];
      const r = await model.generate({ image: imagePath(c), prompt: golden.question, maxNewTokens: 12, onToken: (e) => events.push(e) });
      expect(r.inputIds).to.deep.equal(golden.input_ids);
      expect(model.eosIds).to.deep.equal([2]);
      expect(r.ids).to.deep.equal(golden.cases[c].generated);
      expect(r.visualTokens).to.equal(golden.cases[c].visual_tokens);
      expect(events.map((e) => e.id)).to.deep.equal(r.ids);
      expect(r.text).to.equal(model.tokenizer.decode(r.ids).trim());
      expect(r.timings.prefill_tok_s).to.be.greaterThan(0);
      expect(r.timings.ttft_ms).to.be.at.least(r.timings.prefill_ms);
    });
  }

  it('stream() yields the same tokens from image bytes; RGBA pixels give the same answer', async () => {
    const bytes = readFileSync(imagePath(1));
    const ids: number[] = [];
    const stream = model.stream({ image: new Uint8Array(bytes), prompt: golden.question, maxNewTokens: 12 });
    let step = await stream.next();
    while (!step.done) {
      ids.push(step.value.id);
      step = await stream.next();
    }
    expect(ids).to.deep.equal(golden.cases[1].generated);
    expect(step.value.ids).to.deep.equal(ids);

    const png = PNG.sync.read(bytes); // RGBA
    const r = await model.generate({
      image: { width: png.width, height: png.height, channels: 4, data: new Uint8Array(png.data) },
      prompt: golden.question,
      maxNewTokens: 4,
    });
    expect(r.ids).to.deep.equal(golden.cases[1].generated.slice(0, 4));
  });

  it('chat: a follow-up turn prefills only its new tokens and matches re-prefilling the whole history', async () => {
    const prefillRows: number[] = [];
    const decoder = (model.backend as GpuBackend).decoder;
    const forwardSteps = decoder.forwardSteps.bind(decoder); // what forward and a (layer-by-layer) prefill run
    decoder.forwardSteps = (x) => {
      if (x.shape[0] > 1) prefillRows.push(x.shape[0]);
      return forwardSteps(x);
    };
    try {
      const chat = model.chat({ image: imagePath(0) });
      const first = await chat.send(golden.question, { maxNewTokens: 5 });
      expect(first.ids).to.deep.equal(golden.cases[0].generated.slice(0, 5));
      const followUp = await chat.send('Describe the circle.', { maxNewTokens: 6 });
      // Turn 2 fed: the 5th answer token (chosen, not yet cached) + "</s>USER: Describe the circle. ASSISTANT:".
      expect(prefillRows).to.deep.equal([65, 1 + followUp.inputIds.length]);

      // The same conversation, but another session takes the cache in between: the whole history is re-prefilled.
      const replay = model.chat({ image: imagePath(0) });
      await replay.send(golden.question, { maxNewTokens: 5 });
      const other = model.chat({ image: imagePath(1) });
      await other.send(golden.question, { maxNewTokens: 2 });
      const replayed = await replay.send('Describe the circle.', { maxNewTokens: 6 });
      expect(prefillRows.at(-1)).to.equal(65 + 5 + followUp.inputIds.length);
      expect(replayed.ids).to.deep.equal(followUp.ids);
      [chat, replay, other].forEach((s) => s.dispose());
    } finally {
      decoder.forwardSteps = forwardSteps;
    }
  });

  it('chat: a turn the consumer breaks off stays in the history; the next turn from the cache matches re-prefilling it', async () => {
    const brokenOff = async () => {
      const chat = model.chat({ image: imagePath(0) });
      const seen: number[] = [];
      for await (const { id } of chat.stream(golden.question, { maxNewTokens: 8 })) {
        seen.push(id);
        if (seen.length === 3) break;
      }
      return { chat, seen };
    };
    const cached = await brokenOff();
    expect(cached.seen).to.deep.equal(golden.cases[0].generated.slice(0, 3));
    expect(cached.chat.history.slice(-3)).to.deep.equal(cached.seen, 'the broken-off answer is part of the conversation');
    const fromCache = await cached.chat.send('Describe the circle.', { maxNewTokens: 4 });

    const replayed = await brokenOff();
    model.cacheOwner = null; // as if another session had used the cache: the whole history is re-prefilled
    const fromHistory = await replayed.chat.send('Describe the circle.', { maxNewTokens: 4 });
    expect(fromCache.ids).to.deep.equal(fromHistory.ids);
    expect(cached.chat.history).to.deep.equal(replayed.chat.history);
    [cached.chat, replayed.chat].forEach((s) => s.dispose());
  });

  it('the context guard rejects an over-long request with the counts, before any GPU work', async () => {
    const before = model.gpu!.dispatchCount;
    let error: Error | undefined;
    await model.generate({ image: imagePath(0), prompt: golden.question, maxNewTokens: 100 }).catch((e) => (error = e));
    expect(error?.message).to.match(/49 text tokens \+ 16 visual tokens \+ 100 new tokens = 165 > context 160/);
    expect(model.gpu!.dispatchCount).to.equal(before);
  });

  it('a prefill the decoder refuses (context full) releases its inputs_embeds', async () => {
    const backend = model.backend as GpuBackend;
    await backend.gpu.sync();
    const live = backend.gpu.pool.liveBytes;
    const ids = Array.from({ length: backend.maxContext + 1 }, () => 1);
    expect(() => backend.prefill(ids, null, 0, { maxNewTokens: 1, repetitionPenalty: 1 })).to.throw(/LLM context full: 0 cached \+ 161 new positions > 160/);
    expect(backend.gpu.pool.liveBytes).to.equal(live);
  });

  it('AbortSignal cancels a generation; the model keeps working', async () => {
    const controller = new AbortController();
    let error: unknown;
    await model
      .generate({ image: imagePath(0), prompt: golden.question, maxNewTokens: 12, signal: controller.signal, onToken: () => controller.abort() })
      .catch((e) => (error = e));
    expect((error as DOMException)?.name).to.equal('AbortError');
    const r = await model.generate({ image: imagePath(0), prompt: golden.question, maxNewTokens: 3 });
    expect(r.ids).to.deep.equal(golden.cases[0].generated.slice(0, 3));
  });
});

describe("library API with backend 'cpu' (the ops' CPU references)", () => {
  let cpu: ConvLlava;
  let gpu: ConvLlava;

  before(async () => {
    cpu = await ConvLlava.load(MODEL, { backend: 'cpu', maxContext: 128 });
    gpu = await ConvLlava.load(MODEL, { dtype: 'f32', precision: 'f32', maxContext: 128, gpu: await testGpu() });
  });
  after(async () => {
    await cpu?.dispose();
    await gpu?.dispose();
  });

  it('reproduces the 12 greedy fixture tokens for both images, with no GPU', async () => {
    expect(cpu.gpu).to.equal(null);
    for (const c of [0, 1]) {
      const r = await cpu.generate({ image: imagePath(c), prompt: golden.question, maxNewTokens: 12 });
      expect(r.ids, `case ${c}`).to.deep.equal(golden.cases[c].generated);
    }
  });

  it('samples the same tokens as the WebGPU backend for the same seed', async () => {
    const request = { image: imagePath(0), prompt: golden.question, maxNewTokens: 8, temperature: 1.2, topK: 40, topP: 0.9, seed: 5 };
    const [a, b] = [await cpu.generate(request), await gpu.generate(request)];
    expect(a.ids).to.deep.equal(b.ids);
    expect(a.ids).to.not.deep.equal(golden.cases[0].generated.slice(0, 8)); // really sampled, not greedy
  });

  it('chat on the CPU: a follow-up turn gives the same answer as on the GPU', async () => {
    const answers = [];
    for (const model of [cpu, gpu]) {
      const chat = model.chat({ image: imagePath(1) });
      await chat.send(golden.question, { maxNewTokens: 3 });
      answers.push((await chat.send('And the colours?', { maxNewTokens: 4 })).ids);
      chat.dispose();
    }
    expect(answers[0]).to.deep.equal(answers[1]);
  });
});
