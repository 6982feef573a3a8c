/**
 * The library's state machine under faults (issue #16), on the tiny fixture model: a throwing
 * callback, a broken-off or abandoned consumer, abort during image encode and prefill, a disposed
 * model, bad seeds and a typed "<image>". After each, the model must answer correctly again and
 * hold no extra GPU memory.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConvLlava } from '../../index.js';
import type { GpuBackend } from '../../llm/backend.js';
import type { CpuBackend } from '../../llm/cpu-backend.js';
import { testGpu } from '../helpers.js';
import { rejection } from './helpers.js';

const TINY = new URL('../fixtures/convllava-tiny/', import.meta.url);
const MODEL = fileURLToPath(new URL('model', TINY));
const golden = JSON.parse(readFileSync(new URL('golden.json', TINY), 'utf8'));
const image = fileURLToPath(new URL('case0.png', TINY));
const expected = golden.cases[0].generated as number[];


describe('reliability: the library under faults', function () {
  let model: ConvLlava;
  let baseline = 0;

  before(async () => {
    model = await ConvLlava.load(MODEL, { dtype: 'f32', precision: 'f32', maxContext: 160, gpu: await testGpu() });
    await model.generate({ image, prompt: golden.question, maxNewTokens: 2 }); // pipelines compiled, pool warm
    await model.gpu!.sync();
    baseline = model.gpu!.pool.liveBytes;
  });
  after(async () => {
    await model?.dispose();
  });

  /** The model answers the fixture question exactly and holds no more GPU memory than before. */
  async function stillWorks(): Promise<void> {
    const r = await rejectionFree(model.generate({ image, prompt: golden.question, maxNewTokens: 3 }));
    expect(r.ids).to.deep.equal(expected.slice(0, 3));
    await model.gpu!.sync();
    expect(model.gpu!.pool.liveBytes, 'GPU bytes held after the fault').to.equal(baseline);
  }
  async function rejectionFree<T>(p: Promise<T>): Promise<T> {
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the model stayed locked (a hang)')), 60_000).unref());
    return Promise.race([p, timeout]);
  }

  it('an onToken callback that throws: its error reaches the caller and the model is released', async () => {
    const err = await rejection(
      model.generate({
        image,
        prompt: golden.question,
        maxNewTokens: 8,
        onToken: () => {
          throw new Error('callback exploded');
        },
      }),
    );
    expect(err.message).to.equal('callback exploded');
    await stillWorks(); // it used to fail with "a generation is already running" forever
  });

  it('a consumer that breaks off, or throws inside for-await, releases the model', async () => {
    for await (const _ of model.stream({ image, prompt: golden.question, maxNewTokens: 8 })) break;
    await stillWorks();
    const err = await rejection(
      (async () => {
        for await (const _ of model.stream({ image, prompt: golden.question, maxNewTokens: 8 })) throw new Error('consumer failed');
      })(),
    );
    expect(err.message).to.equal('consumer failed');
    await stillWorks();
  });

  it('an abandoned iterator is cancelled by the next request; its consumer is told if it comes back', async () => {
    const abandoned = model.stream({ image, prompt: golden.question, maxNewTokens: 8 });
    const first = await abandoned.next();
    expect(first.done).to.equal(false);
    // Never resumed: the next request takes the model instead of failing "already running" forever.
    await stillWorks();
    const late = await rejection(abandoned.next());
    expect(late.message).to.match(/this generation was cancelled: its consumer stopped asking for tokens and a newer request took the model/);
    await stillWorks();
  });

  it('a generation that is computing is not cancelled: a concurrent request fails clearly', async () => {
    const running = model.generate({ image, prompt: golden.question, maxNewTokens: 4 });
    const err = await rejection(model.generate({ image, prompt: golden.question, maxNewTokens: 4 }));
    expect(err.message).to.match(/a generation is already running on this model; await it first/);
    expect((await running).ids).to.deep.equal(expected.slice(0, 4));
  });

  it('abort during the image encode stops it between vision stages (not only once decoding starts)', async () => {
    const gpu = model.gpu!;
    const controller = new AbortController();
    const sync = gpu.sync.bind(gpu);
    let syncs = 0;
    gpu.sync = async () => {
      await sync();
      if (++syncs === 1) controller.abort(); // right after the stem has run
    };
    const dispatchesBefore = gpu.dispatchCount;
    let err: Error;
    try {
      err = await rejection(model.generate({ image, prompt: golden.question, maxNewTokens: 4, signal: controller.signal }));
    } finally {
      gpu.sync = sync;
    }
    expect(err.name).to.equal('AbortError');
    expect(syncs).to.equal(1);
    // The full encode records far more dispatches than the stem (4 more stages, projector, prefill).
    const full = gpu.dispatchCount;
    await model.generate({ image, prompt: golden.question, maxNewTokens: 1 });
    expect(full - dispatchesBefore).to.be.lessThan((gpu.dispatchCount - full) / 4);
    await stillWorks();
  });

  it('abort during prefill stops it between decoder layers, and the next turn re-prefills correctly', async () => {
    const chat = model.chat({ image });
    const turn1 = await chat.send(golden.question, { maxNewTokens: 3 });
    expect(turn1.ids).to.deep.equal(expected.slice(0, 3));
    const decoder = (model.backend as GpuBackend).decoder;
    const layersRun: number[] = [];
    const controller = new AbortController();
    const forwardSteps = decoder.forwardSteps.bind(decoder);
    decoder.forwardSteps = function* (x) {
      const steps = forwardSteps(x);
      try {
        for (;;) {
          const s = steps.next();
          if (s.done) return s.value;
          layersRun.push(s.value);
          controller.abort(); // after the first layer
          yield s.value;
        }
      } finally {
        steps.return(undefined as never);
      }
    };
    let err: Error;
    try {
      err = await rejection(chat.send('And the colour?', { maxNewTokens: 3, signal: controller.signal }));
    } finally {
      decoder.forwardSteps = forwardSteps;
    }
    expect(err.name).to.equal('AbortError');
    expect(layersRun).to.deep.equal([0]); // the fixture has 2 layers: the second never ran
    const again = await chat.send('And the colour?', { maxNewTokens: 3 });
    const fresh = model.chat({ image });
    await fresh.send(golden.question, { maxNewTokens: 3 });
    const reference = await fresh.send('And the colour?', { maxNewTokens: 3 });
    expect(again.ids).to.deep.equal(reference.ids);
    chat.dispose();
    fresh.dispose();
    await stillWorks();
  });

  it('seeds outside 0 … 2^32 − 1 or not integers are refused (they used to wrap modulo 2^32)', async () => {
    for (const seed of [2 ** 32, -1, 1.5, Number.NaN]) {
      const err = await rejection(model.generate({ image, prompt: golden.question, maxNewTokens: 2, temperature: 1, seed }));
      expect(err.message, String(seed)).to.match(/seed must be an integer in 0 … 4294967295/);
    }
    await stillWorks();
  });

  it('a chat whose image cannot be read fails its turn with an ImageInputError and leaves the model usable', async () => {
    const chat = model.chat({ image: '/dev/zero' });
    const err = await rejection(chat.send(golden.question, { maxNewTokens: 2 }));
    expect(err.name).to.equal('ImageInputError'); // what `convllava chat` clears the image on
    expect(err.message).to.match(/'\/dev\/zero' is a character device, not a regular file/);
    chat.dispose();
    await stillWorks();
  });

  it('"<image>" typed in the question is refused before any GPU work', async () => {
    const before = model.gpu!.dispatchCount;
    const err = await rejection(model.generate({ image, prompt: 'What is <image> here?', maxNewTokens: 2 }));
    expect(err.message).to.match(/the question contains '<image>', the placeholder where the image goes/);
    expect(model.gpu!.dispatchCount).to.equal(before);
  });
});

describe('reliability: a disposed model says so', () => {
  it('generate, stream and chat after dispose() fail naming dispose, not an internal tensor error', async () => {
    const model = await ConvLlava.load(MODEL, { dtype: 'f32', precision: 'f32', maxContext: 160, gpu: await testGpu() });
    await model.dispose();
    for (const attempt of [
      () => model.generate({ image, prompt: golden.question, maxNewTokens: 2 }),
      () => model.stream({ image, prompt: golden.question }).next(),
      () => model.chat().send('hi'),
    ]) {
      const err = await rejection(attempt());
      expect(err.message).to.match(/this model was disposed \(its GPU buffers are freed\); load it again/);
    }
    await model.dispose(); // twice is harmless
  });
});

describe('reliability: abort on the CPU backend is checked between vision stages and decoder layers too', function () {
  this.timeout(300_000);

  /** Wraps a stepwise forward so that the signal fires after its first pause; returns the pauses seen. */
  function abortAfterFirstStep(target: { [k: string]: unknown }, method: string, controller: AbortController): { paused: unknown[]; restore: () => void } {
    const original = target[method] as (...args: unknown[]) => Generator<unknown, unknown>;
    const paused: unknown[] = [];
    target[method] = function* (...args: unknown[]) {
      const steps = original.apply(target, args);
      try {
        for (;;) {
          const s = steps.next();
          if (s.done) return s.value;
          paused.push(s.value);
          controller.abort();
          yield s.value;
        }
      } finally {
        steps.return(undefined as never);
      }
    };
    return { paused, restore: () => void (target[method] = original) };
  }

  it('an abort during the image encode stops after the stem, one during prefill after the first layer; the model still answers', async () => {
    const model = await ConvLlava.load(MODEL, { backend: 'cpu', maxContext: 160 });
    try {
      const { tower, decoder } = (model.backend as CpuBackend).model;
      const encode = new AbortController();
      const towerSpy = abortAfterFirstStep(tower as never, 'encodeSteps', encode);
      const prefillSpy = abortAfterFirstStep(decoder as never, 'forwardSteps', new AbortController());
      let err: Error;
      try {
        err = await rejection(model.generate({ image, prompt: golden.question, maxNewTokens: 2, signal: encode.signal }));
      } finally {
        towerSpy.restore();
        prefillSpy.restore();
      }
      expect(err.name).to.equal('AbortError');
      expect(towerSpy.paused).to.deep.equal([0]); // the stem ran, stage 1 … never did
      expect(prefillSpy.paused).to.deep.equal([]); // nor the prefill

      const prefill = new AbortController();
      const layerSpy = abortAfterFirstStep(decoder as never, 'forwardSteps', prefill);
      try {
        err = await rejection(model.generate({ image, prompt: golden.question, maxNewTokens: 2, signal: prefill.signal }));
      } finally {
        layerSpy.restore();
      }
      expect(err.name).to.equal('AbortError');
      expect(layerSpy.paused).to.deep.equal([0]); // the fixture has 2 layers: the second never ran

      const r = await model.generate({ image, prompt: golden.question, maxNewTokens: 3 });
      expect(r.ids).to.deep.equal(expected.slice(0, 3));
    } finally {
      await model.dispose();
    }
  });
});
