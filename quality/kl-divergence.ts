/**
 * `npx tsx quality/kl-divergence.ts [--model DIR] [--image FILE]… [--question TEXT]… [--dtypes f16,q8,q4] [--quantize-vision] [--json]`
 *
 * How much quantized weights change the model, as llama.cpp's `perplexity --kl-divergence` reports
 * it: every (image, question) prompt runs once with f32 weights and once per compared dtype; at
 * every prompt position (text and image rows alike) the next-token distributions P (f32) and Q are
 * compared by KL(P ‖ Q) = Σ p·ln(p / q) (in nats) and by whether their top-1 tokens agree.
 *
 * Default: the test fixture (spec/fixtures/convllava-tiny: its two images and the golden prompt);
 * the trained shapes model is `--model models/convllava-shapes --image models/convllava-shapes/samples/…`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadImage, preprocess, preprocessorFor } from '../convnext/preprocess.js';
import { inputsEmbeds, Llava } from '../llm/llava.js';
import { imageQuestionIds } from '../llm/prompt.js';
import { LlamaTokenizer } from '../llm/tokenizer.js';
import { gpuOps } from '../nn/ops.js';
import { Gpu } from '../runtime/gpu.js';
import { Checkpoint } from '../weights/checkpoint.js';

const TINY = fileURLToPath(new URL('../spec/fixtures/convllava-tiny/', import.meta.url));
type DType = 'f32' | 'f16' | 'q8' | 'q4';

/** log-softmax of one row, in f64. */
function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (v) => v - lse);
}

function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** KL(P ‖ Q) from log-probabilities. */
function kl(logP: Float64Array, logQ: Float64Array): number {
  let s = 0;
  for (let i = 0; i < logP.length; i++) s += Math.exp(logP[i]) * (logP[i] - logQ[i]);
  return s;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: join(TINY, 'model') },
      image: { type: 'string', multiple: true },
      question: { type: 'string', multiple: true },
      dtypes: { type: 'string', default: 'f16,q8,q4' },
      'quantize-vision': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const images = values.image ?? readdirSync(TINY).filter((f) => /^case\d\.png$/.test(f)).map((f) => join(TINY, f));
  const questions = values.question ?? [JSON.parse(readFileSync(join(TINY, 'golden.json'), 'utf8')).question as string];
  const dtypes = values.dtypes.split(',') as DType[];
  for (const d of dtypes) if (!['f16', 'q8', 'q4'].includes(d)) throw new Error(`--dtypes: '${d}' is not one of f16, q8, q4`);

  const gpu = await Gpu.create();
  const ckpt = await Checkpoint.open(values.model);
  const tokenizer = new LlamaTokenizer();
  const prep = preprocessorFor(ckpt.preprocessorConfig, ckpt.config.mm_vision_resolution);
  const prompts: { image: string; question: string; pixels: Float32Array; size: number; ids: number[] }[] = [];
  for (const image of images) {
    const { pixelValues, size } = preprocess(await loadImage(image), prep);
    for (const question of questions) prompts.push({ image, question, pixels: pixelValues, size, ids: imageQuestionIds(tokenizer, question) });
  }

  /** Logits at every position of every prompt, [T, vocab] each, for one dtype. */
  async function allLogits(dtype: DType): Promise<Float32Array[][]> {
    const ops = gpuOps(gpu);
    const model = await Llava.load(ops, ckpt, { dtype, quantizeVision: values['quantize-vision'] });
    try {
      const out: Float32Array[][] = [];
      for (const p of prompts) {
        const pixels = gpu.upload([3, p.size, p.size], p.pixels);
        const image = model.encodeImage(pixels); //                  [Tv, H]
        model.decoder.truncate(0);
        const x = inputsEmbeds(model.decoder, p.ids, image); //     [T, H]
        const hidden = model.decoder.forward(x);
        const logits = model.decoder.logits(hidden); //              [T, vocab]
        const data = (await logits.read()) as Float32Array;
        [pixels, image, x, hidden, logits].forEach((t) => t.dispose());
        const [T, V] = logits.shape;
        out.push(Array.from({ length: T }, (_, t) => data.slice(t * V, (t + 1) * V)));
      }
      return out;
    } finally {
      model.dispose();
    }
  }

  const reference = await allLogits('f32');
  const refLog = reference.map((rows) => rows.map(logSoftmax));
  const results = [];
  for (const dtype of dtypes) {
    const got = await allLogits(dtype);
    let positions = 0;
    let klSum = 0;
    let klMax = 0;
    let agree = 0;
    got.forEach((rows, i) =>
      rows.forEach((row, t) => {
        const d = kl(refLog[i][t], logSoftmax(row));
        klSum += d;
        klMax = Math.max(klMax, d);
        if (argmax(row) === argmax(reference[i][t])) agree++;
        positions++;
      }),
    );
    results.push({ dtype, positions, meanKl: klSum / positions, maxKl: klMax, top1: agree / positions });
  }
  await ckpt.close();
  gpu.destroy();

  if (values.json) {
    console.log(JSON.stringify({ model: values.model, prompts: prompts.map((p) => ({ image: p.image, question: p.question })), results }));
    return;
  }
  console.log(`${values.model}: ${prompts.length} prompts, ${results[0]?.positions ?? 0} positions; vs f32 weights${values['quantize-vision'] ? ' (vision quantized too)' : ''}`);
  console.log(`${'dtype'.padEnd(6)} ${'mean KL (nats)'.padStart(15)} ${'max KL'.padStart(10)} ${'top-1 agree'.padStart(12)}`);
  for (const r of results) {
    console.log(`${r.dtype.padEnd(6)} ${r.meanKl.toExponential(3).padStart(15)} ${r.maxKl.toExponential(2).padStart(10)} ${(100 * r.top1).toFixed(2).padStart(10)} %`);
  }
}

main().catch((e) => {
  console.error(process.env.CONVLLAVA_DEBUG ? e : `kl-divergence: ${(e as Error).message}`);
  process.exit(1);
});
