/**
 * `npm run eval:shapes [-- --images N --seed S --dtype f32|f16|q8|q4 --precision f32|f16|f32,f16 --quantize-vision --torch --json --keep DIR]`
 *
 * Draws N fresh scenes (shapes/scene.ts, its own generator: no evaluation seed reproduces a training
 * image), asks every applicable question through the WGSL model (greedy) and prints accuracy per
 * question kind; an answer counts only when it is exactly the expected text. With --torch, the same
 * image files and prompt ids also go through the PyTorch reference (training/reference.py; needs
 * python3-torch) and the table adds its accuracy and how often the two agree token for token. With
 * --precision f32,f16 the model runs at both activation precisions on the same images (one process,
 * one adapter) and the table adds the second's accuracy and how often the two agree token for token.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConvLlava } from '../llm/pipeline.js';
import { imageQuestionIds } from '../llm/prompt.js';
import { encodeScene, SceneSource, type QuestionKind } from './scene.js';

export const SHAPES_MODEL = fileURLToPath(new URL('../models/convllava-shapes', import.meta.url));
const KINDS: QuestionKind[] = ['count', 'color', 'shape', 'yesno', 'describe'];

interface Row {
  image: number;
  file: string;
  kind: QuestionKind;
  question: string;
  expected: string;
  inputIds: number[];
  ids: number[];
  text: string;
  /** --precision a,b: the answer at the second precision. */
  otherIds?: number[];
  otherText?: string;
  torchIds?: number[];
  torchText?: string;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      images: { type: 'string', default: '200' },
      seed: { type: 'string', default: '424242' },
      model: { type: 'string', default: SHAPES_MODEL },
      dtype: { type: 'string', default: 'f32' },
      precision: { type: 'string', default: 'f32' },
      'quantize-vision': { type: 'boolean', default: false },
      torch: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      keep: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log('usage: npm run eval:shapes -- [--images N=200] [--seed S=424242] [--dtype f32|f16|q8|q4] [--precision f32|f16|f32,f16] [--quantize-vision] [--torch] [--json] [--keep DIR] [--model DIR]');
    return 0;
  }
  const images = Number(values.images);
  const seed = Number(values.seed);
  if (!Number.isInteger(images) || images < 1) throw new Error(`--images must be an integer ≥ 1, got ${values.images}`);
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new Error(`--seed must be an integer in [0, 2^32), got ${values.seed}`);
  const dtype = values.dtype;
  if (dtype !== 'f32' && dtype !== 'f16' && dtype !== 'q8' && dtype !== 'q4') throw new Error(`--dtype must be f32, f16, q8 or q4, got ${dtype}`);

  const dir = values.keep ?? mkdtempSync(join(tmpdir(), 'convllava-eval-'));
  mkdirSync(dir, { recursive: true });
  const precisions = values.precision.split(',').map((p) => p.trim());
  if (precisions.length > 2 || new Set(precisions).size !== precisions.length || precisions.some((p) => p !== 'f32' && p !== 'f16')) {
    throw new Error(`--precision must be f32, f16 or a pair of them (f32,f16), got ${values.precision}`);
  }
  const model = await ConvLlava.load(values.model, { dtype, precision: precisions[0] as 'f32' | 'f16', quantizeVision: values['quantize-vision'] });
  const other = precisions[1]
    ? await ConvLlava.load(values.model, { dtype, precision: precisions[1] as 'f32' | 'f16', quantizeVision: values['quantize-vision'], gpu: model.gpu ?? undefined })
    : null;
  const rows: Row[] = [];
  const start = performance.now();
  try {
    const source = new SceneSource(seed);
    for (let i = 0; i < images; i++) {
      const scene = source.scene();
      const bytes = await encodeScene(scene);
      const file = join(dir, `scene${String(i).padStart(4, '0')}.${scene.format === 'jpeg' ? 'jpg' : 'png'}`);
      writeFileSync(file, bytes);
      const encoded = await model.encodeImage(bytes); // once per image: every question below reuses its rows
      const encodedOther = other ? await other.encodeImage(bytes) : null;
      for (const q of source.questions(scene)) {
        const result = await model.generate({ image: encoded, prompt: q.question, temperature: 0, maxNewTokens: 24 });
        const second = other ? await other.generate({ image: encodedOther!, prompt: q.question, temperature: 0, maxNewTokens: 24 }) : null;
        rows.push({
          image: i,
          file,
          kind: q.kind,
          question: q.question,
          expected: q.answer,
          inputIds: imageQuestionIds(model.tokenizer, q.question),
          ids: result.ids,
          text: result.text,
          ...(second ? { otherIds: second.ids, otherText: second.text } : {}),
        });
      }
      encoded.dispose();
      encodedOther?.dispose();
      const done = i + 1;
      const s = (performance.now() - start) / 1000;
      process.stderr.write(`\r${done}/${images} images, ${rows.length} questions, ${s.toFixed(0)} s (${(s / done).toFixed(2)} s/image)   `);
    }
    process.stderr.write('\n');

    if (values.torch) {
      const manifest = join(dir, 'manifest.json');
      const out = join(dir, 'torch.json');
      writeFileSync(manifest, JSON.stringify({ items: rows.map((r) => ({ image: r.file, input_ids: r.inputIds })), max_new_tokens: 24 }));
      const script = fileURLToPath(new URL('../training/reference.py', import.meta.url));
      execFileSync(process.env.PYTHON ?? '/usr/bin/python3', [script, 'answer', values.model, manifest, out], { stdio: 'inherit' });
      const torchIds = (JSON.parse(readFileSync(out, 'utf8')) as { ids: number[][] }).ids;
      rows.forEach((r, k) => {
        r.torchIds = torchIds[k];
        r.torchText = model.tokenizer.decode(torchIds[k]).trim();
      });
    }
  } finally {
    await other?.dispose(); // shares model's GPU: dispose it first
    await model.dispose();
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
  }

  const seconds = (performance.now() - start) / 1000;
  const table = KINDS.map((kind) => {
    const of = rows.filter((r) => r.kind === kind);
    const acc = (ok: (r: Row) => boolean) => (of.length ? of.filter(ok).length / of.length : NaN);
    return {
      kind,
      questions: of.length,
      wgsl: acc((r) => r.text === r.expected),
      torch: values.torch ? acc((r) => r.torchText === r.expected) : undefined,
      identical: values.torch ? acc((r) => r.torchIds!.join() === r.ids.join()) : undefined,
      other: other ? acc((r) => r.otherText === r.expected) : undefined,
      identicalOther: other ? acc((r) => r.otherIds!.join() === r.ids.join()) : undefined,
    };
  });
  if (values.json) {
    const answers = rows.map(({ image, kind, question, expected, ids, text, otherIds, otherText, torchIds }) => ({ image, kind, question, expected, ids, text, otherIds, otherText, torchIds }));
    console.log(JSON.stringify({ images, seed, dtype: values.dtype, precision: precisions, seconds, table, answers }));
  } else {
    const pct = (x: number | undefined) => (x === undefined ? '' : `${(100 * x).toFixed(1)} %`);
    console.log(`${images} images (seed ${seed}), ${rows.length} questions, weights ${dtype}${values['quantize-vision'] ? ' (vision too)' : ''}, activations ${precisions.join(' and ')}, ${seconds.toFixed(0)} s`);
    const [p0, p1] = precisions;
    const otherHead = other ? [`WGSL ${p1}`.padStart(9), `same ids ${p1}/${p0}`.padStart(18)] : [];
    console.log(['kind'.padEnd(9), 'questions'.padStart(9), `WGSL ${p0}`.padStart(9), ...otherHead, ...(values.torch ? ['PyTorch'.padStart(8), 'same ids'.padStart(9)] : [])].join('  '));
    const line = (t: (typeof table)[number] | { kind: string; questions: number; wgsl: number; other?: number; identicalOther?: number; torch?: number; identical?: number }) =>
      [t.kind.padEnd(9), String(t.questions).padStart(9), pct(t.wgsl).padStart(9), ...(other ? [pct(t.other).padStart(9), pct(t.identicalOther).padStart(18)] : []), ...(values.torch ? [pct(t.torch).padStart(8), pct(t.identical).padStart(9)] : [])].join('  ');
    for (const t of table) console.log(line(t));
    const all = (ok: (r: Row) => boolean) => rows.filter(ok).length / rows.length;
    console.log(
      line({
        kind: 'all',
        questions: rows.length,
        wgsl: all((r) => r.text === r.expected),
        other: other ? all((r) => r.otherText === r.expected) : undefined,
        identicalOther: other ? all((r) => r.otherIds!.join() === r.ids.join()) : undefined,
        torch: values.torch ? all((r) => r.torchText === r.expected) : undefined,
        identical: values.torch ? all((r) => r.torchIds!.join() === r.ids.join()) : undefined,
      }),
    );
    const wrong = rows.filter((r) => r.text !== r.expected);
    for (const r of wrong.slice(0, 20)) console.log(`  wrong: image ${r.image} "${r.question}" → "${r.text}" (expected "${r.expected}")`);
    if (wrong.length > 20) console.log(`  … and ${wrong.length - 20} more`);
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(process.env.CONVLLAVA_DEBUG ? e : `eval:shapes: ${(e as Error).message}`);
    process.exit(1);
  },
);
