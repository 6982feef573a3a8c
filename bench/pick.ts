/**
 * GPU time of one token pick on [1, N] logits (default N = 32000, Vicuna's vocabulary): argmax
 * (greedy) and sample (plain softmax, top-k 40, top-p 0.9, both, each at T = 0.7), as timestamp
 * queries around the pick's dispatches (Gpu.timeGpu), median of --runs after one warm-up.
 *
 *   npx tsx bench/pick.ts [--vocab 32000] [--runs 21] [--chunk-size 256]
 *
 * --chunk-size sets the logits per workgroup (ops/sample.ts sampleChunks; default by adapter).
 * The script uses only argmax(gpu, x, options) and sample(gpu, logits, options), so the same file
 * also times an older checkout (which ignores --chunk-size): copy it into that tree's bench/.
 */
import { parseArgs } from 'node:util';
import { Gpu } from '../runtime/gpu.js';
import { argmax } from '../ops/argmax.js';
import { sample } from '../ops/sample.js';
import type { Tensor } from '../runtime/tensor.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Logits shaped like a language model's: a bell of values (sum of three uniforms, ±9) and a few high ones. */
function syntheticLogits(n: number): Float32Array {
  let state = 12345;
  const r = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const l = new Float32Array(n).map(() => (r() + r() + r() - 1.5) * 6);
  for (let k = 0; k < 20; k++) l[Math.floor(r() * n)] = 8 + 6 * r();
  return l;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { vocab: { type: 'string', default: '32000' }, runs: { type: 'string', default: '21' }, 'chunk-size': { type: 'string' } },
  });
  const n = Number(values.vocab);
  const runs = Number(values.runs);
  const chunkSize = values['chunk-size'] === undefined ? undefined : Number(values['chunk-size']);
  const gpu = await Gpu.create();
  console.log(`adapter: ${gpu.summary.description}; logits [1, ${n}]; chunk size ${chunkSize ?? 'default'}; median of ${runs}`);
  const logits = gpu.upload([1, n], syntheticLogits(n));
  const base = { temperature: 0.7, topK: 0, topP: 1, repetitionPenalty: 1, u: 0.37, chunkSize };
  const modes: [string, () => Tensor][] = [
    ['greedy (argmax)', () => argmax(gpu, logits, { chunkSize })],
    ['plain softmax', () => sample(gpu, logits, base)],
    ['top-k 40', () => sample(gpu, logits, { ...base, topK: 40 })],
    ['top-p 0.9', () => sample(gpu, logits, { ...base, topP: 0.9 })],
    ['top-k 40 + top-p 0.9', () => sample(gpu, logits, { ...base, topK: 40, topP: 0.9 })],
  ];
  for (const [name, pick] of modes) {
    const times: number[] = [];
    let id = -1;
    for (let k = 0; k <= runs; k++) {
      let token: Tensor | undefined;
      const dispatchesBefore = gpu.dispatchCount;
      const ms = await gpu.timeGpu(() => (token = pick()));
      const dispatches = gpu.dispatchCount - dispatchesBefore;
      id = (await token!.read())[0];
      token!.dispose();
      if (ms === null) throw new Error('this adapter has no timestamp queries');
      if (k > 0) times.push(ms);
      if (k === runs) console.log(`${name.padEnd(22)} ${median(times).toFixed(3).padStart(8)} ms GPU (min ${Math.min(...times).toFixed(3)})  ${dispatches} dispatches  id ${id}`);
    }
  }
  logits.dispose();
  gpu.destroy();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
