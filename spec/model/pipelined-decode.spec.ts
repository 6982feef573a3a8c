/**
 * The pipelined decode loop (llm/generate.ts: step N+1 recorded and submitted before token N is
 * read back) against the plain loop (`pipelined: false`), on the tiny fixture model and the trained
 * shapes model: for greedy and seeded sampling with a repetition penalty, and for each way an answer
 * ends (EOS, a stop string, max_new_tokens, an abort), the same token events, ids, text, finish
 * reason, KV cache length and history after the turn, and the same follow-up chat turn.
 */
import { expect } from 'chai';
import { fileURLToPath } from 'node:url';
import { ConvLlava, type EncodedImage, type GenerateOptions } from '../../llm/pipeline.js';
import { TINY_FIXTURE_MODEL, testGpu } from '../helpers.js';

const SHAPES_MODEL = fileURLToPath(new URL('../../models/convllava-shapes', import.meta.url));
const TINY_IMAGE = fileURLToPath(new URL('../fixtures/convllava-tiny/case0.png', import.meta.url));
const SHAPES_IMAGE = fileURLToPath(new URL('../fixtures/convllava-shapes/sample1.png', import.meta.url));

// The penalty changes the shapes model's answer at its 9th token (a repeated "a"), so a step that
// sampled without the previous id in its recent-ids buffer would show; the tiny model's sampled
// answer differs from its greedy one, so the order of the seeded draws would show.
const MODES: Record<string, GenerateOptions> = {
  greedy: { temperature: 0 },
  'sampled, repetition penalty 5': { temperature: 0.9, topK: 40, topP: 0.95, seed: 11, repetitionPenalty: 5 },
};

/** What a two-turn conversation leaves behind: everything the pipelined loop must reproduce. */
interface Outcome {
  events: number[];
  text: string;
  finishReason: string;
  error: string | null;
  cacheAfterTurn: number;
  followUp: { ids: number[]; text: string; finishReason: string };
  cacheAfterFollowUp: number;
  history: number[];
  /** Dispatches recorded by the first turn (not compared: the pipelined loop records a discarded step). */
  dispatches: number;
}

for (const [name, path, image, question] of [
  ['tiny fixture model', TINY_FIXTURE_MODEL, TINY_IMAGE, 'What is in the image?'],
  ['trained shapes model', SHAPES_MODEL, SHAPES_IMAGE, 'Describe the image.'],
] as const) {
  describe(`pipelined decode = plain decode (${name})`, function () {
    let model: ConvLlava;
    let encoded: EncodedImage;
    const answers: Record<string, number[]> = {};

    before(async () => {
      model = await ConvLlava.load(path, { dtype: 'f32', precision: 'f32', maxContext: 160, gpu: await testGpu() });
      encoded = await model.encodeImage(image);
    });
    after(async () => {
      encoded?.dispose();
      await model?.dispose();
    });

    /** Turn 1 with `options` (abortAfter: abort once that many tokens were streamed), then a follow-up turn. */
    async function converse(options: GenerateOptions, pipelined: boolean, abortAfter = 0): Promise<Outcome> {
      const gpu = model.gpu!;
      const liveBefore = gpu.pool.liveBytes;
      const chat = model.chat({ image: encoded });
      const events: number[] = [];
      const controller = new AbortController();
      const dispatchesBefore = gpu.dispatchCount;
      let turn: { text: string; finishReason: string } = { text: '', finishReason: '' };
      let error: string | null = null;
      try {
        turn = await chat.send(question, {
          ...options,
          pipelined,
          signal: abortAfter ? controller.signal : undefined, // (a signal also makes the prefill run layer by layer)
          onToken: (e) => {
            events.push(e.id);
            if (events.length === abortAfter) controller.abort();
          },
        });
      } catch (e) {
        error = (e as Error).name;
      }
      const dispatches = gpu.dispatchCount - dispatchesBefore;
      const cacheAfterTurn = model.backend.cacheLength;
      const followUp = await chat.send('Describe the circle.', { ...MODES.greedy, maxNewTokens: 4, pipelined });
      const outcome: Outcome = {
        events,
        text: turn.text,
        finishReason: turn.finishReason,
        error,
        cacheAfterTurn,
        followUp: { ids: followUp.ids, text: followUp.text, finishReason: followUp.finishReason },
        cacheAfterFollowUp: model.backend.cacheLength,
        history: [...chat.history],
        dispatches,
      };
      chat.dispose();
      expect(gpu.pool.liveBytes, 'GPU memory held after the conversation').to.equal(liveBefore);
      return outcome;
    }

    /** Runs both loops and expects the same outcome; returns the plain one and the dispatch counts. */
    async function expectSame(options: GenerateOptions, abortAfter = 0) {
      const plain = await converse(options, false, abortAfter);
      const pipelined = await converse(options, true, abortAfter);
      const { dispatches: d1, ...a } = plain;
      const { dispatches: d2, ...b } = pipelined;
      expect(b).to.deep.equal(a);
      return { plain, dispatchesPlain: d1, dispatchesPipelined: d2 };
    }

    for (const [mode, sampling] of Object.entries(MODES)) {
      describe(mode, () => {
        let answer: number[] = [];
        let answerText = '';
        let endsAtEos = false;

        before(async () => {
          const chat = model.chat({ image: encoded });
          const r = await chat.send(question, { ...sampling, maxNewTokens: 24, pipelined: false });
          chat.dispose();
          answer = r.ids;
          answerText = model.tokenizer.decode(r.ids);
          endsAtEos = r.finishReason === 'eos';
          answers[mode] = answer;
          if (mode !== 'greedy') {
            const differs = name.startsWith('tiny') ? 'the seeded draws' : 'the penalty';
            expect(answer, `${differs} change the answer`).to.not.deep.equal(answers.greedy);
          }
          expect(answer.length, 'the plain answer is long enough to cut').to.be.at.least(4);
        });

        it('EOS: the step fed ahead with EOS is discarded', async () => {
          // The shapes model ends its answers itself; where an answer does not (the tiny model's random
          // weights), one of its ids is made an EOS id.
          const added = endsAtEos ? null : answer.find((id, i) => i >= 2 && answer.indexOf(id) === i)!;
          if (added !== null) model.eosIds.push(added);
          try {
            const { plain, dispatchesPlain, dispatchesPipelined } = await expectSame({ ...sampling, maxNewTokens: 24 });
            expect(plain.finishReason).to.equal('eos');
            expect(plain.cacheAfterTurn).to.be.above(0);
            expect(dispatchesPipelined, 'the pipelined loop ran a step ahead (then discarded it)').to.be.above(dispatchesPlain);
          } finally {
            if (added !== null) model.eosIds.pop();
          }
        });

        it('a stop string: the step fed ahead with the token that completes it is discarded', async () => {
          const at = model.tokenizer.decode(answer.slice(0, 2)).length + 1;
          const stop = answerText.slice(at, at + 4);
          const { plain, dispatchesPlain, dispatchesPipelined } = await expectSame({ ...sampling, maxNewTokens: 24, stop: [stop] });
          expect(plain.finishReason).to.equal('stop');
          expect(plain.text).to.equal(answerText.slice(0, answerText.indexOf(stop)).trim());
          expect(dispatchesPipelined).to.be.above(dispatchesPlain);
        });

        it('max_new_tokens: no step is run ahead of the last allowed token', async () => {
          const { plain } = await expectSame({ ...sampling, maxNewTokens: 3 });
          expect(plain.finishReason).to.equal('length');
          expect(plain.events).to.deep.equal(answer.slice(0, 3));
        });

        it('an abort after two tokens: the step fed ahead is discarded, the chat goes on', async () => {
          const { plain, dispatchesPlain, dispatchesPipelined } = await expectSame({ ...sampling, maxNewTokens: 24 }, 2);
          expect(plain.error).to.equal('AbortError');
          expect(plain.events).to.deep.equal(answer.slice(0, 2));
          expect(dispatchesPipelined).to.be.above(dispatchesPlain);
        });
      });
    }
  });
}
