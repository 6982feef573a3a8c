import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/convllava.mjs', import.meta.url));

describe('convllava demo and bench (the CLI, as a user runs it)', () => {
  it('demo: the trained shapes model answers questions about its two sample images, correctly', async () => {
    const { stdout } = await run(process.execPath, [BIN, 'demo']);
    expect(stdout).to.match(/trained only on a toy world/);
    expect(stdout).to.match(/374×450, padded to 450×450/);
    expect(stdout).to.match(/486×277, padded to 486×486/);
    expect(stdout).to.match(/visual tokens:\s+16/);
    const answers = [...stdout.matchAll(/^answer:\s+(.*)$/gm)].map((m) => m[1]);
    expect(answers).to.deep.equal(['Three.', 'A blue circle, a green square and a green triangle.', 'Triangle.', 'No.']);
    expect(stdout).to.match(/timings:.*image encode.*decode/);
  });

  it('demo --image FILE --prompt: your own picture and question', async () => {
    const image = fileURLToPath(new URL('../server/shapes.jpg', import.meta.url));
    const { stdout } = await run(process.execPath, [BIN, 'demo', '--image', image, '--prompt', 'What color is the circle?']);
    expect(stdout).to.match(/256×256, square, no padding/);
    expect(stdout).to.match(/^answer:\s+Red\.$/m);
  });

  it('bench --precision f32,f16: both activation precisions in one run, the KV cache halved at f16', async function () {
    const { stdout } = await run(process.execPath, [BIN, 'bench', '--preset', 'tiny', '--precision', 'f32,f16', '--only', 'encode,tg', '-p', '0', '-n', '4', '-r', '1', '--json']);
    const result = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(result.models.map((m: { precision: string }) => m.precision)).to.deep.equal(['f32', 'f16']);
    const [f32, f16] = result.models;
    expect(result.model.precision).to.equal('f32');
    expect(f16.memory.kv_cache * 2).to.equal(f32.memory.kv_cache);
    expect(f16.memory.kv_cache_positions).to.equal(f32.memory.kv_cache_positions);
    expect(f16.memory.weights).to.equal(f32.memory.weights); // same --dtype: the weights do not change
    for (const m of [f32, f16]) {
      expect(m.tg).to.include({ n_gen: 4 });
      expect(m.tg.pipelines_created).to.equal(0);
      expect(m.image_encode[0].ms.mean).to.be.above(0);
    }
  });

  it('bench --preset tiny --json prints llama-bench fields, and --report writes an HTML page', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'convllava-bench-'));
    try {
      const report = join(dir, 'report.html');
      const { stdout } = await run(process.execPath, [BIN, 'bench', '--preset', 'tiny', '-p', '16', '-n', '4', '-r', '1', '--profile', '--json', '--report', report]);
      const result = JSON.parse(stdout.trim().split('\n').pop()!);
      expect(result.model.image_encode[0]).to.include({ resolution: 256, visual_tokens: 16 });
      // the work recorded: per image, and per decode token (the tiny preset has 2 layers)
      const encode = result.model.image_encode[0];
      expect(encode.dispatches).to.be.a('number').and.above(0);
      expect(encode.passes).to.be.within(1, encode.dispatches + encode.copies + 1);
      expect(encode.cpu_record_ms).to.be.above(0);
      const tg = result.model.tg;
      expect(tg.n_layers).to.equal(2);
      expect(tg.dispatches_per_token).to.be.above(2 * tg.n_layers);
      expect(tg.passes_per_token).to.be.at.least(1);
      expect(tg.copies_per_token).to.be.at.least(0);
      expect(tg.cpu_record_ms_per_token).to.be.above(0);
      expect(tg.pipelines_created).to.equal(0); // nothing compiles during generation
      // weights read per token: the f16 lm_head (32000 × 64) and the layers, not the untied embedding table
      expect(tg.weight_bytes_per_token).to.be.within(32000 * 64 * 2 + 1, 2 * 32000 * 64 * 2 - 1);
      // --profile: every dispatch of one decode step / one image encode, per kernel, shares summing to 1
      const profile = result.model.profile;
      expect(profile.method).to.be.oneOf(['timestamp-query', 'wall-clock']);
      const steps = profile.decode_step.reduce((a: number, k: { count: number }) => a + k.count, 0);
      // tg counts 3 tokens after the first; a pipelined loop may record one more step that it discards
      expect(tg.dispatches_per_token).to.be.within(steps, (4 / 3) * steps);
      expect(profile.decode_step.some((k: { kernel: string }) => k.kernel.startsWith('argmax'))).to.equal(true); // the pick is in the step
      expect(profile.image_encode.kernels.reduce((a: number, k: { count: number }) => a + k.count, 0)).to.equal(encode.dispatches);
      for (const rows of [profile.decode_step, profile.image_encode.kernels]) {
        expect(rows.reduce((a: number, k: { share: number }) => a + k.share, 0)).to.be.closeTo(1, 1e-6);
      }
      expect(result.model.pp).to.include({ n_prompt: 16, n_gen: 0 });
      expect(result.model.tg).to.include({ n_prompt: 0, n_gen: 4 });
      for (const t of [result.model.pp, result.model.tg]) {
        expect(t.avg_ts).to.be.above(0);
        expect(t.samples_ts).to.have.length(1);
        expect(t).to.have.property('stddev_ts');
      }
      expect(result.model.ttft_ms.mean).to.be.above(0);
      expect(result.model.peak_gpu_bytes).to.be.above(0);
      expect(result.adapter).to.have.property('vendor');
      const html = await readFile(report, 'utf8');
      expect(html).to.match(/<svg/);
      expect(html).to.match(/tg4/);
      expect(html).to.match(/GPU time per kernel: one decode step/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('bench refuses an unknown preset with one clear message', async () => {
    const error = await run(process.execPath, [BIN, 'bench', '--preset', 'nope']).catch((e) => e);
    expect(error.code).to.equal(1);
    expect(error.stderr).to.match(/unknown preset 'nope'/);
    expect(error.stderr).to.not.match(/\n\s+at /); // no stack trace
  });
});
