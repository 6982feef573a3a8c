/**
 * The trained shapes model (models/convllava-shapes) against its PyTorch reference
 * (spec/fixtures/convllava-shapes: training/reference.py in float64 from the stored f16 weights): every
 * ConvNeXt stage, image features, projected rows, inputs_embeds, prefill hidden states and the last
 * logits within 1e-4 relative L2 (f32), and the greedy answers token for token (f32 and f16 weights) —
 * which are also the right answers. Plus the scene generator's rules (shapes/scene.ts).
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run as encodeImage } from '../../cli/encode-image.js';
import { LlamaDecoder } from '../../llm/llama.js';
import { inputsEmbeds } from '../../llm/llava.js';
import { ConvLlava } from '../../llm/pipeline.js';
import type { Gpu } from '../../runtime/gpu.js';
import { COLORS, describe as describeScene, SceneSource, SHAPES } from '../../shapes/scene.js';
import { Checkpoint, TensorSet } from '../../weights/checkpoint.js';
import { expectRelL2, testGpu } from '../helpers.js';
import { readFixture } from '../vision-fixtures.js';

const MODEL = fileURLToPath(new URL('../../models/convllava-shapes', import.meta.url));
const FIX = fileURLToPath(new URL('../fixtures/convllava-shapes/', import.meta.url));
const golden = JSON.parse(readFileSync(`${FIX}golden.json`, 'utf8')) as {
  cases: { image: string; question: string; input_ids: number[]; generated: number[]; margins: number[] }[];
};
const EXPECTED = ['A blue circle, a green square and a green triangle.', 'Triangle.', 'One.'];
const STAGES = ['stem', 'stage1', 'stage2', 'stage3', 'stage4', 'stage5', 'image_features', 'projected'];

describe('convllava-shapes (the trained model) vs its PyTorch reference', function () {
  let gpu: Gpu;
  let oracle: TensorSet;
  before(async () => {
    gpu = await testGpu();
    oracle = await TensorSet.openFile(`${FIX}golden.safetensors`);
  });
  after(async () => {
    await oracle?.close();
  });

  it('the golden cases are the right answers, with clear greedy margins', () => {
    const tok = golden.cases.map((c) => c.generated);
    expect(tok).to.have.length(EXPECTED.length);
    for (const c of golden.cases) expect(Math.min(...c.margins), c.image).to.be.above(0.05);
  });

  golden.cases.forEach((c, k) => {
    it(`case ${k} (${c.image}): stem, stage1…5, image_features, projected within 1e-4 (encode-image, f32)`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'shapes-encode-'));
      const log = console.log;
      console.log = () => {};
      try {
        const out = join(dir, 'out.safetensors');
        const code = await encodeImage(['--model', MODEL, '--image', FIX + c.image, '--out', out, '--dtype', 'f32']);
        expect(code).to.equal(0);
        for (const name of STAGES) {
          const mine = await readFixture(out, name);
          expectRelL2(mine.data, await oracle.readF32(`case${k}.${name}`), name);
        }
      } finally {
        console.log = log;
        await rm(dir, { recursive: true, force: true });
      }
    });
  });

  it('inputs_embeds, prefill hidden states and last logits within 1e-4 (f32), from the golden projected rows', async () => {
    const ckpt = await Checkpoint.open(MODEL);
    const decoder = await LlamaDecoder.load(gpu, ckpt.llm, ckpt.config, { dtype: 'f32', maxContext: 128 });
    try {
      for (const [k, c] of golden.cases.entries()) {
        decoder.truncate(0);
        const rows = await oracle.readF32(`case${k}.projected`);
        const image = gpu.upload([rows.length / ckpt.config.hidden_size, ckpt.config.hidden_size], rows);
        const x = inputsEmbeds(decoder, c.input_ids, image);
        image.dispose();
        expectRelL2(await x.read(), await oracle.readF32(`case${k}.inputs_embeds`), `case ${k} inputs_embeds`, 1e-6);
        const hidden = decoder.forward(x);
        x.dispose();
        expectRelL2(await hidden.read(), await oracle.readF32(`case${k}.prefill_hidden`), `case ${k} prefill_hidden`);
        const logits = decoder.lastLogits(hidden);
        hidden.dispose();
        expectRelL2(await logits.read(), await oracle.readF32(`case${k}.logits_last`), `case ${k} logits_last`);
        logits.dispose();
      }
    } finally {
      decoder.dispose();
      await ckpt.close();
    }
  });

  for (const dtype of ['f32', 'f16'] as const) {
    it(`greedy answers from the image files equal PyTorch's, token for token (${dtype} weights)`, async () => {
      const model = await ConvLlava.load(MODEL, { dtype, precision: 'f32', gpu });
      try {
        for (const [k, c] of golden.cases.entries()) {
          const result = await model.generate({ image: FIX + c.image, prompt: c.question, temperature: 0, maxNewTokens: 24 });
          expect(result.inputIds, `case ${k} prompt ids`).to.deep.equal(c.input_ids);
          expect(result.ids, `case ${k} ids`).to.deep.equal(c.generated);
          expect(result.text, `case ${k}`).to.equal(EXPECTED[k]);
          expect(result.finishReason).to.equal('eos');
        }
      } finally {
        await model.dispose();
      }
    });
  }
});

describe('ConvLlava.encodeImage: one image, several independent questions', function () {
  it('answers as generate from the file does, without encoding again; refuses after dispose', async () => {
    const gpu = await testGpu();
    const model = await ConvLlava.load(MODEL, { dtype: 'f32', precision: 'f32', gpu });
    try {
      const encoded = await model.encodeImage(FIX + golden.cases[0].image);
      for (const question of ['Describe the image.', 'How many shapes are there?', 'What color is the circle?']) {
        const direct = await model.generate({ image: FIX + golden.cases[0].image, prompt: question, temperature: 0, maxNewTokens: 24 });
        const reused = await model.generate({ image: encoded, prompt: question, temperature: 0, maxNewTokens: 24 });
        expect(reused.ids, question).to.deep.equal(direct.ids);
        expect(reused.timings.image_encode_ms).to.equal(0);
        expect(reused.visualTokens).to.equal(16);
      }
      const live = gpu.pool.liveBytes;
      encoded.dispose();
      expect(gpu.pool.liveBytes).to.be.below(live);
      await model.generate({ image: encoded, prompt: 'Describe the image.' }).then(
        () => expect.fail('used a disposed EncodedImage'),
        (e: Error) => expect(e.message).to.match(/EncodedImage: used after dispose/),
      );
    } finally {
      await model.dispose();
    }
  });
});

describe('shapes/scene.ts: the scene family and its answer key', () => {
  const source = new SceneSource(99);
  const scenes = Array.from({ length: 300 }, () => source.scene());

  it('draws scenes inside the family rules', () => {
    for (const s of scenes) {
      expect(s.width).to.be.within(160, 512);
      expect(s.height).to.be.within(160, 512);
      for (const v of s.background) expect(v).to.be.within(190, 255);
      expect(s.objects.length).to.be.within(1, 3);
      const m = Math.min(s.width, s.height);
      const pairs = new Set(s.objects.map((o) => `${o.color} ${o.shape}`));
      expect(pairs.size, 'no two objects share shape and colour').to.equal(s.objects.length);
      s.objects.forEach((o, i) => {
        expect(o.size).to.be.within(Math.ceil(0.18 * m), Math.floor(0.35 * m));
        expect(o.x + o.size).to.be.at.most(s.width);
        expect(o.y + o.size).to.be.at.most(s.height);
        for (const p of s.objects.slice(i + 1)) {
          const apart = o.x + o.size < p.x || p.x + p.size < o.x || o.y + o.size < p.y || p.y + p.size < o.y;
          expect(apart, 'objects overlap').to.equal(true);
        }
      });
    }
    const counts = [1, 2, 3].map((n) => scenes.filter((s) => s.objects.length === n).length);
    for (const c of counts) expect(c).to.be.above(60);
    expect(scenes.filter((s) => s.format === 'jpeg').length).to.be.within(100, 200);
  });

  it('asks only answerable questions, with answers from the scene', () => {
    for (const s of scenes) {
      const qs = source.questions(s);
      expect(qs.filter((q) => q.kind === 'count')[0].answer).to.equal(['One.', 'Two.', 'Three.'][s.objects.length - 1]);
      for (const q of qs.filter((x) => x.kind === 'color')) {
        const shape = SHAPES.find((sh) => q.question === `What color is the ${sh}?`)!;
        const having = s.objects.filter((o) => o.shape === shape);
        expect(having).to.have.length(1);
        expect(q.answer.toLowerCase()).to.equal(`${having[0].color}.`);
      }
      for (const q of qs.filter((x) => x.kind === 'yesno')) {
        const [, color, shape] = /^Is there a (\w+) (\w+)\?$/.exec(q.question)!;
        const present = s.objects.some((o) => o.color === color && o.shape === shape);
        expect(q.answer).to.equal(present ? 'Yes.' : 'No.');
      }
      expect(qs.filter((q) => q.kind === 'yesno' && q.answer === 'No.')).to.have.length(s.objects.length);
    }
  });

  it('describes objects by shape, then colour', () => {
    const o = (shape: (typeof SHAPES)[number], color: (typeof COLORS)[number]) => ({ shape, color, x: 0, y: 0, size: 1, rgb: [0, 0, 0] as [number, number, number] });
    expect(describeScene([o('triangle', 'blue'), o('circle', 'yellow'), o('circle', 'red')])).to.equal(
      'A red circle, a yellow circle and a blue triangle.',
    );
    expect(describeScene([o('square', 'green')])).to.equal('A green square.');
  });
});
