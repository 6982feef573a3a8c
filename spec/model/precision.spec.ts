/**
 * f16 activations (ops/precision.ts) end to end, on both fixtures (the random convllava-tiny and the
 * trained convllava-shapes): every ConvNeXt stage, image_features, projected rows, the prefill hidden
 * states and the last logits within 1e-2 relative L2 of the f32 PyTorch goldens; the KV cache at half
 * the bytes; greedy tokens from the f16 model against the goldens. The f32 path is checked to 1e-4
 * by the other model specs, unchanged.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { VisionTower } from '../../convnext/model.js';
import { loadImage, preprocess, preprocessorFor } from '../../convnext/preprocess.js';
import { collect, generateTokens } from '../../llm/generate.js';
import { LlamaDecoder } from '../../llm/llama.js';
import { inputsEmbeds } from '../../llm/llava.js';
import { ConvLlava } from '../../llm/pipeline.js';
import { LlamaTokenizer } from '../../llm/tokenizer.js';
import { gpuOps, type GpuOps } from '../../nn/ops.js';
import { Projector } from '../../nn/projector.js';
import { nhwcToNchw } from '../../ops/transpose.js';
import { Gpu } from '../../runtime/gpu.js';
import { add } from '../../ops/add.js';
import { defaultPrecision } from '../../ops/precision.js';
import type { Tensor } from '../../runtime/tensor.js';
import { Checkpoint, TensorSet } from '../../weights/checkpoint.js';
import { relL2, testGpu } from '../helpers.js';
import { FIXTURES, TINY_MODEL } from '../vision-fixtures.js';

const STAGES = ['stem', 'stage1', 'stage2', 'stage3', 'stage4', 'stage5'] as const;
/** The bound for f16 activations against the f32 goldens. */
const F16_MODEL_TOL = 1e-2;

interface Fixture {
  name: string;
  model: string;
  golden: string;
  /** The image file of each case where the golden holds no pixel_values (shapes: preprocessed here, as encode-image does). */
  cases: { inputIds: number[]; generated: number[]; image?: string }[];
}

const tinyJson = JSON.parse(readFileSync(`${FIXTURES}convllava-tiny/golden.json`, 'utf8')) as { input_ids: number[]; cases: { generated: number[] }[] };
const shapesJson = JSON.parse(readFileSync(`${FIXTURES}convllava-shapes/golden.json`, 'utf8')) as { cases: { image: string; input_ids: number[]; generated: number[] }[] };
const FIXTURE_SETS: Fixture[] = [
  {
    name: 'convllava-tiny',
    model: TINY_MODEL,
    golden: `${FIXTURES}convllava-tiny/golden.safetensors`,
    cases: tinyJson.cases.map((c) => ({ inputIds: tinyJson.input_ids, generated: c.generated })),
  },
  {
    name: 'convllava-shapes',
    model: fileURLToPath(new URL('../../models/convllava-shapes', import.meta.url)),
    golden: `${FIXTURES}convllava-shapes/golden.safetensors`,
    cases: shapesJson.cases.map((c) => ({ inputIds: c.input_ids, generated: c.generated, image: `${FIXTURES}convllava-shapes/${c.image}` })),
  },
];

async function readNchw(gpu: Gpu, map: Tensor): Promise<Float32Array> {
  const t = nhwcToNchw(gpu, map);
  const values = (await t.read()) as Float32Array;
  t.dispose();
  return values;
}

for (const fx of FIXTURE_SETS) {
  describe(`f16 activations vs the f32 goldens: ${fx.name}`, function () {
    let gpu: Gpu;
    let ops: GpuOps;
    let ckpt: Checkpoint;
    let oracle: TensorSet;
    before(async function () {
      gpu = await testGpu();
      if (!gpu.hasF16) this.skip();
      ops = gpuOps(gpu, 'f16');
      ckpt = await Checkpoint.open(fx.model);
      oracle = await TensorSet.openFile(fx.golden);
    });
    after(async () => {
      await ckpt?.close();
      await oracle?.close();
    });

    it('every ConvNeXt stage, image_features and projected within 1e-2 relative L2 (f16 weights)', async () => {
      const tower = await VisionTower.load(ops, ckpt, { dtype: 'f16' });
      const projector = await Projector.load(ops, ckpt, { dtype: 'f16' });
      let worst = { err: 0, what: '' };
      const check = (err: number, what: string) => {
        if (err > worst.err) worst = { err, what };
        expect(err, `${what}: relative L2 ${err.toExponential(2)}`).to.be.at.most(F16_MODEL_TOL);
      };
      try {
        for (const [c, k] of fx.cases.entries()) {
          const R = ckpt.config.mm_vision_resolution;
          const values = k.image
            ? preprocess(await loadImage(k.image), preprocessorFor(ckpt.preprocessorConfig, R)).pixelValues
            : await oracle.readF32(`case${c}.pixel_values`);
          const pixels = gpu.upload([3, R, R], values); // f32 in; the tower casts
          const { features, stages } = tower.encode(pixels, { keepStages: true });
          const projected = projector.forward(features);
          expect(features.dtype).to.equal('f16');
          expect(projected.dtype).to.equal('f16');
          for (const name of STAGES) {
            expect(stages![name].dtype, name).to.equal('f16');
            check(relL2(await readNchw(gpu, stages![name]), await oracle.readF32(`case${c}.${name}`)), `case ${c} ${name}`);
          }
          for (const [name, t] of [['image_features', features], ['projected', projected]] as const) {
            check(relL2((await t.read()) as Float32Array, await oracle.readF32(`case${c}.${name}`)), `case ${c} ${name}`);
          }
          for (const t of [pixels, features, projected, ...Object.values(stages!)]) t.dispose();
        }
        console.log(`      ${fx.name} vision at f16: worst relative L2 ${worst.err.toExponential(2)} (${worst.what})`);
      } finally {
        tower.dispose();
        projector.dispose();
      }
    });

    /** Case c's prompt with the golden projected rows (as f16), prefilled from an empty cache: the final-norm hidden states. */
    async function prefillGolden(decoder: LlamaDecoder, c: number, inputIds: number[]): Promise<Tensor> {
      const H = ckpt.config.hidden_size;
      decoder.truncate(0);
      const rows = await oracle.readF32(`case${c}.projected`);
      const image = gpu.upload([rows.length / H, H], rows, 'f16');
      const x = inputsEmbeds(decoder, inputIds, image);
      image.dispose();
      expect(x.dtype).to.equal('f16');
      const hidden = decoder.forward(x);
      x.dispose();
      return hidden;
    }

    it('prefill hidden states and last logits within 1e-2; the KV cache is f16, half the f32 bytes; f32 logits', async () => {
      const decoder = await LlamaDecoder.load(ops, ckpt.llm, ckpt.config, { dtype: 'f16', maxContext: 128 });
      const decoder32 = await LlamaDecoder.load(gpuOps(gpu, 'f32'), ckpt.llm, ckpt.config, { dtype: 'f16', maxContext: 128 });
      try {
        expect(decoder.bytes.kvCache * 2).to.equal(decoder32.bytes.kvCache);
        expect(decoder.bytes.weights).to.equal(decoder32.bytes.weights);
        for (const [c, k] of fx.cases.entries()) {
          const hidden = await prefillGolden(decoder, c, k.inputIds);
          const err = relL2((await hidden.read()) as Float32Array, await oracle.readF32(`case${c}.prefill_hidden`));
          console.log(`      ${fx.name} case ${c} at f16: prefill_hidden relative L2 ${err.toExponential(2)}`);
          expect(err, `case ${c} prefill_hidden: relative L2 ${err.toExponential(2)}`).to.be.at.most(F16_MODEL_TOL);
          const logits = decoder.lastLogits(hidden);
          hidden.dispose();
          expect(logits.dtype, 'logits stay f32').to.equal('f32');
          const errLogits = relL2((await logits.read()) as Float32Array, await oracle.readF32(`case${c}.logits_last`));
          expect(errLogits, `case ${c} logits_last: relative L2 ${errLogits.toExponential(2)}`).to.be.at.most(F16_MODEL_TOL);
          logits.dispose();
        }
      } finally {
        decoder.dispose();
        decoder32.dispose();
      }
    });

    it('greedy tokens from the golden image rows: f16 activations against the f32 goldens (agreement counted)', async () => {
      const decoder = await LlamaDecoder.load(ops, ckpt.llm, ckpt.config, { dtype: 'f16', maxContext: 128 });
      const tokenizer = new LlamaTokenizer();
      try {
        const agreement: string[] = [];
        for (const [c, k] of fx.cases.entries()) {
          const hidden = await prefillGolden(decoder, c, k.inputIds);
          const logits = decoder.lastLogits(hidden);
          hidden.dispose();
          const result = await collect(generateTokens(decoder, tokenizer, logits, { maxNewTokens: k.generated.length }));
          let same = 0;
          while (same < k.generated.length && result.ids[same] === k.generated[same]) same++;
          agreement.push(`case ${c}: ${same}/${k.generated.length}`);
          if (fx.name === 'convllava-shapes') expect(result.ids, `case ${c}: the trained model's answer`).to.deep.equal(k.generated);
          else expect(same, `case ${c}: the first greedy token (margin ≥ 0.026)`).to.be.at.least(1);
        }
        console.log(`      ${fx.name}: greedy tokens identical to the f32 goldens up to — ${agreement.join(', ')}`);
      } finally {
        decoder.dispose();
      }
    });
  });
}

describe('precision as a model option (ConvLlava.load)', function () {
  it('defaults to f16 where the adapter has shader-f16, else f32; f32 on request; f16 refused on the CPU backend', async () => {
    const gpu = await testGpu();
    const shapes = FIXTURE_SETS[1].model;
    const byDefault = await ConvLlava.load(shapes, { gpu, maxContext: 64 });
    try {
      expect(byDefault.precision).to.equal(gpu.hasF16 ? 'f16' : 'f32');
    } finally {
      await byDefault.dispose();
    }
    const f32 = await ConvLlava.load(shapes, { gpu, precision: 'f32', maxContext: 64 });
    try {
      expect(f32.precision).to.equal('f32');
    } finally {
      await f32.dispose();
    }
    let error: Error | null = null;
    await ConvLlava.load(shapes, { backend: 'cpu', precision: 'f16' }).then((m) => m.dispose(), (e) => (error = e));
    expect(String(error)).to.match(/CPU backend runs the f32 references; precision 'f16'/);
  });
});

describe('a device without shader-f16', function () {
  let gpu: Gpu | null = null;
  after(() => gpu?.destroy());

  it('defaults to f32, and refuses f16 clearly (ops, op set, model)', async () => {
    gpu = await Gpu.create({ disableF16: true });
    expect(gpu.hasF16).to.equal(false);
    expect(defaultPrecision(gpu)).to.equal('f32');
    expect(() => gpuOps(gpu!, 'f16')).to.throw(/f16 activations need the adapter feature 'shader-f16'.*use precision 'f32'/);
    const x = gpu.upload([4], [1, 2, 3, 4], 'f16'); // f16 storage itself needs no feature (packed halves)
    expect(() => add(gpu!, x, x)).to.throw(/add: f16 activations need the adapter feature 'shader-f16'/);
    x.dispose();
    const shapes = FIXTURE_SETS[1].model;
    const model = await ConvLlava.load(shapes, { gpu, maxContext: 64 });
    try {
      expect(model.precision).to.equal('f32');
    } finally {
      await model.dispose();
    }
    let error: Error | null = null;
    await ConvLlava.load(shapes, { gpu, precision: 'f16', maxContext: 64 }).then((m) => m.dispose(), (e) => (error = e));
    expect(String(error)).to.match(/shader-f16/);
  });
});

