/**
 * NaN / Inf never become a silent answer (issue #16): argmax and the sampler flag logits holding a
 * NaN or +Inf in the same dispatch that picks the token (the flag is the id read back), the decode
 * loop stops with an error naming the step, on both backends, and `inspect --check-values` finds
 * non-finite weights. The broken checkpoints are tmp copies of the tiny fixture.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import ndarray from 'ndarray';
import { ConvLlava } from '../../index.js';
import { argmax, argmaxRef, NON_FINITE_ID } from '../../ops/argmax.js';
import { sample, sampleRef } from '../../ops/sample.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../weights/safetensors.js';
import { testGpu } from '../helpers.js';
import { rejection } from './helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TINY = new URL('../fixtures/convllava-tiny/', import.meta.url);
const MODEL = fileURLToPath(new URL('model', TINY));
const golden = JSON.parse(readFileSync(new URL('golden.json', TINY), 'utf8'));
const image = fileURLToPath(new URL('case0.png', TINY));

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'convllava-nonfinite-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A copy of the fixture with `edit` applied to the raw bytes of one tensor (found in whichever shard holds it). */
async function brokenCopy(tensor: string, edit: (bytes: Uint8Array, dtype: string, shape: number[]) => void): Promise<string> {
  const dir = join(tmp, `m${Math.random().toString(36).slice(2)}`);
  await cp(MODEL, dir, { recursive: true });
  for (const shard of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
    const path = join(dir, shard);
    const f = await SafetensorsFile.open(path);
    if (!f.tensors.has(tensor)) {
      await f.close();
      continue;
    }
    const list: TensorToWrite[] = [];
    for (const t of f.tensors.values()) {
      const bytes = new Uint8Array(await f.readBytes(t.name));
      if (t.name === tensor) edit(bytes, t.dtype, t.shape);
      list.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: bytes });
    }
    await f.close();
    await writeSafetensors(path, list);
    return dir;
  }
  throw new Error(`no tensor ${tensor}`);
}

/** Writes NaN (F16 0x7e00 / F32) at elements [from, to). */
function fillNaN(bytes: Uint8Array, dtype: string, from = 0, to = Infinity): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = dtype === 'F32' ? 4 : 2;
  for (let i = from; i < Math.min(to, bytes.byteLength / size); i++) {
    if (size === 4) view.setFloat32(i * 4, Number.NaN, true);
    else view.setUint16(i * 2, 0x7e00, true);
  }
}


describe('reliability: non-finite logits are flagged by the kernels that pick the token', () => {
  it('argmax: a row with a NaN or +Inf gives NON_FINITE_ID (−Inf is an ordinary value); other rows are untouched', async () => {
    const gpu = await testGpu();
    const n = 1000;
    const x = new Float32Array(4 * n).map((_, i) => Math.sin(i));
    x[0 * n + 777] = Number.NaN;
    x[1 * n + 3] = Infinity;
    x[2 * n + 5] = -Infinity;
    const t = gpu.upload([4, n], x);
    const y = argmax(gpu, t);
    const ids = Array.from(await y.read());
    const ref = Array.from(argmaxRef(ndarray(x, [4, n])).data);
    expect(ids).to.deep.equal(ref);
    expect(ids[0]).to.equal(NON_FINITE_ID);
    expect(ids[1]).to.equal(NON_FINITE_ID);
    expect(ids[2]).to.be.lessThan(n);
    expect(ids[3]).to.be.lessThan(n);
    [t, y].forEach((v) => v.dispose());
  });

  it('sample: NaN logits give NON_FINITE_ID with every option set, like sampleRef', async () => {
    const gpu = await testGpu();
    const logits = new Float32Array(5000).map((_, i) => Math.cos(i));
    logits[4321] = Number.NaN;
    const t = gpu.upload([1, logits.length], logits);
    for (const o of [
      { temperature: 0.7, topK: 0, topP: 1, repetitionPenalty: 1, u: 0.3 },
      { temperature: 1, topK: 40, topP: 0.9, repetitionPenalty: 1, u: 0.9 },
      { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, u: 0 },
    ]) {
      const id = sample(gpu, t, o);
      expect((await id.read())[0], JSON.stringify(o)).to.equal(NON_FINITE_ID);
      expect(sampleRef(logits, o)).to.equal(NON_FINITE_ID);
      id.dispose();
    }
    t.dispose();
  });
});

describe('reliability: NaN weights give an error naming the step, not [0, 0, 0, 0] and exit 0', function () {
  this.timeout(300_000);

  it('NaN in the final norm: the prefill step is named (webgpu and cpu backends)', async () => {
    const dir = await brokenCopy('model.norm.weight', (b, d) => fillNaN(b, d));
    for (const backend of ['webgpu', 'cpu'] as const) {
      const model = await ConvLlava.load(dir, { dtype: 'f32', precision: 'f32', maxContext: 160, backend, gpu: backend === 'webgpu' ? await testGpu() : undefined });
      try {
        const err = await rejection(model.generate({ image, prompt: golden.question, maxNewTokens: 4 }));
        expect(err.message, backend).to.match(/non-finite logits \(NaN or \+Inf\) at the prefill \(the prompt's last position\)/);
        expect(err.message).to.match(/inspect --check-values/);
        // The model is released: the same error again, not "already running".
        const again = await rejection(model.generate({ image, prompt: golden.question, maxNewTokens: 4, temperature: 0.8, seed: 3 }));
        expect(again.message).to.match(/non-finite logits/);
      } finally {
        await model.dispose();
      }
    }
  });

  it('NaN in the embedding row of the first answer token: decode step 1 is named', async () => {
    const first = golden.cases[0].generated[0] as number;
    const dir = await brokenCopy('model.embed_tokens.weight', (b, d, shape) => fillNaN(b, d, first * shape[1], (first + 1) * shape[1]));
    const model = await ConvLlava.load(dir, { dtype: 'f16', maxContext: 160, gpu: await testGpu() });
    try {
      const tokens: number[] = [];
      const err = await rejection(model.generate({ image, prompt: golden.question, maxNewTokens: 4, onToken: (e) => tokens.push(e.id) }));
      expect(err.message).to.match(/non-finite logits \(NaN or \+Inf\) at decode step 1 \(after 1 generated tokens\)/);
      expect(tokens).to.deep.equal([first]);
    } finally {
      await model.dispose();
    }
  });

  it('inspect --check-values names the tensor and the counts (exit 1); a clean folder passes', async () => {
    const dir = await brokenCopy('model.norm.weight', (b, d) => fillNaN(b, d, 2, 5));
    const bad = await cli(['inspect', dir, '--no-gpu', '--check-values']);
    expect(bad.code, bad.stderr).to.equal(1);
    expect(bad.stderr).to.match(/INVALID — 1 tensor holds non-finite values: 'model\.norm\.weight' \(3 NaN, 0 ±Inf; first at element 2\)/);
    const good = await cli(['inspect', MODEL, '--no-gpu', '--check-values']);
    expect(good.code, good.stderr).to.equal(0);
  });
});

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
