/**
 * Writes spec/fixtures/convllava-shapes/: golden activations and greedy answers of the PyTorch reference
 * (training/reference.py, float64 from the stored f16 weights) for the shapes model on three images —
 * the demo's two samples and a 512×160 strip (scene 0 of seed 2026, the widest padding the family has).
 * usage: npx tsx shapes/make-golden.ts   (needs python3-torch; the spec reads only the files it writes)
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { imageQuestionIds } from '../llm/prompt.js';
import { LlamaTokenizer } from '../llm/tokenizer.js';
import { encodeScene, SceneSource } from './scene.js';

const out = fileURLToPath(new URL('../spec/fixtures/convllava-shapes/', import.meta.url));
const samples = fileURLToPath(new URL('../models/convllava-shapes/samples/', import.meta.url));
mkdirSync(out, { recursive: true });
copyFileSync(`${samples}sample1.png`, `${out}sample1.png`);
copyFileSync(`${samples}sample2.jpg`, `${out}sample2.jpg`);
const strip = new SceneSource(2026).scene();
Object.assign(strip, { width: 512, height: 160, format: 'png' });
strip.objects = strip.objects.filter((o) => o.x + o.size <= 512 && o.y + o.size <= 160).slice(0, 1);
if (!strip.objects.length) strip.objects = [{ shape: 'triangle', color: 'blue', x: 400, y: 60, size: 40, rgb: [40, 80, 220] }];
writeFileSync(`${out}strip.png`, await encodeScene(strip));

const tok = new LlamaTokenizer();
const cases = [
  { image: 'sample1.png', question: 'Describe the image.' },
  { image: 'sample2.jpg', question: 'What shape is the yellow one?' },
  { image: 'strip.png', question: 'How many shapes are there?' },
];
const scratch = mkdtempSync(join(tmpdir(), 'shapes-golden-'));
const manifest = join(scratch, 'manifest.json');
writeFileSync(
  manifest,
  JSON.stringify({ items: cases.map((c) => ({ image: out + c.image, question: c.question, input_ids: imageQuestionIds(tok, c.question) })) }),
);
const model = fileURLToPath(new URL('../models/convllava-shapes', import.meta.url));
const script = fileURLToPath(new URL('../training/reference.py', import.meta.url));
execFileSync(process.env.PYTHON ?? '/usr/bin/python3', [script, 'golden', model, manifest, `${out}golden`, '--new-tokens', '24'], { stdio: 'inherit' });
rmSync(scratch, { recursive: true });
console.log(`wrote ${out}golden.safetensors and golden.json`);
