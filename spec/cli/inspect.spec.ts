/**
 * `convllava inspect` as a user runs it (a child process through bin/convllava.mjs): the fixture
 * folder and a single file are listed and summarised with exit 0; broken inputs exit non-zero with
 * one clear message and no stack trace; --json is parseable either way.
 */
import { quantBytes } from '../../runtime/quant.js';
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../weights/safetensors.js';

const FIXTURE = 'spec/fixtures/convllava-tiny/model';

function inspect(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      ['bin/convllava.mjs', 'inspect', ...args],
      { env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp', CONVLLAVA_DEBUG: '' }, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** stderr without Dawn's adapter-limit notices, which are not ours. */
function ourStderr(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.trim() && !l.startsWith('Warning: max'));
}

describe('convllava inspect', () => {
  let tmp: string;
  let broken: string;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'convllava-inspect-'));
    broken = join(tmp, 'broken');
    await cp(FIXTURE, broken, { recursive: true });
    const path = join(broken, 'vision_tower/model.safetensors');
    const f = await SafetensorsFile.open(path);
    const list: TensorToWrite[] = [];
    for (const t of f.tensors.values()) {
      if (t.name !== 'encoder.stages.2.layers.1.dwconv.weight') list.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await f.readBytes(t.name) });
    }
    await f.close();
    await writeSafetensors(path, list);
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('summarises and lists the fixture folder (exit 0)', async () => {
    const { code, stdout, stderr } = await inspect(FIXTURE, '--no-gpu');
    expect(code, stderr).to.equal(0);
    expect(stdout).to.contain('valid ConvLLaVA model folder');
    expect(stdout).to.match(/widths\s+16 32 48 64 96/);
    expect(stdout).to.match(/depths\s+1 1 2 1 2/);
    expect(stdout).to.contain('256×256 px, stride 64 → 4×4 = 16 visual tokens');
    expect(stdout).to.contain('2 layers, hidden 64, 4 heads');
    expect(stdout).to.match(/projector\s+10\.4 K\s+\(10,368\)/);
    expect(stdout).to.match(/f16 8\.59 MiB, f32 17\.2 MiB/);
    // activations by precision: the KV cache (2 layers × 2 (k, v) × 4 kv heads × 16 × 2048 positions) and stage 1's MLP hidden (64×64×64)
    expect(stdout).to.match(/KV cache \(2048 positions\): f16 1\.00 MiB, f32 2\.00 MiB/);
    expect(stdout).to.match(/largest vision activation \(stage 1 MLP hidden, 64×64×64\): f16 512\.0 KiB, f32 1\.00 MiB/);
    expect(stdout).to.contain('Tensors (110)');
    expect(stdout).to.match(/llm\s+lm_head\.weight\s+F16\s+\[32000, 64\]\s+4096000/);
    expect(stdout).to.match(/vision\s+encoder\.stages\.4\.layers\.1\.pwconv1\.weight\s+F16\s+\[384, 96\]\s+73728/);
  });

  it('--json: a parseable report, with the adapter check', async () => {
    const { code, stdout, stderr } = await inspect(FIXTURE, '--json');
    expect(code, stderr).to.equal(0);
    const report = JSON.parse(stdout);
    expect(report.valid).to.equal(true);
    expect(report.kind).to.equal('folder');
    expect(report.summary.vision.visualTokens).to.equal(16);
    expect(report.summary.llm.vocab).to.equal(32000);
    expect(report.tensors).to.have.length(110);
    const sum = (part: string) => report.tensors.filter((t: { part: string }) => t.part === part).reduce((s: number, t: { params: number }) => s + t.params, 0);
    expect(report.summary.params.vision).to.equal(sum('vision'));
    expect(report.summary.params.llm).to.equal(sum('llm'));
    expect(report.summary.params.total).to.equal(sum('vision') + sum('projector') + sum('llm'));
    expect(report.summary.gpuMemory.f16).to.be.lessThan(report.summary.gpuMemory.f32);
    // q8 / q4: the decoder's and projector's 2-D tensors in runtime/quant.ts's layout, the rest f16
    const llm2d = report.tensors.filter((t: { part: string; shape: number[] }) => t.part === 'llm' && t.shape.length === 2);
    const llmRest = report.tensors.filter((t: { part: string; shape: number[] }) => t.part === 'llm' && t.shape.length !== 2);
    const llmQ4 = llm2d.reduce((s: number, t: { shape: number[] }) => s + quantBytes('q4', t.shape), 0) +
      llmRest.reduce((s: number, t: { params: number }) => s + Math.ceil(t.params / 2) * 4, 0);
    expect(report.summary.gpuMemory.q4.llm).to.equal(llmQ4);
    expect(report.summary.gpuMemory.q4.total).to.be.lessThan(report.summary.gpuMemory.q8.total);
    expect(report.summary.gpuMemory.q8.total).to.be.lessThan(report.summary.gpuMemory.f16);
    expect(report.summary.adapter.available).to.equal(true);
    expect(report.summary.adapter.fits.f16.verdict).to.equal('yes');
  });

  it('lists a single .safetensors file with totals', async () => {
    const { code, stdout } = await inspect(join(FIXTURE, 'vision_tower/model.safetensors'), '--json');
    expect(code).to.equal(0);
    const report = JSON.parse(stdout);
    expect(report.kind).to.equal('file');
    expect(report.totals.count).to.equal(85);
    expect(report.totals.byDtype.F16.count).to.equal(85);
    expect(report.metadata).to.deep.equal({ format: 'pt' });
    const text = await inspect(join(FIXTURE, 'vision_tower/model.safetensors'));
    expect(text.stdout).to.contain('valid safetensors file');
    expect(text.stdout).to.contain('85 tensors');
  });

  it('a broken folder: non-zero exit, one clear message naming the tensor, no stack trace', async () => {
    const { code, stdout, stderr } = await inspect(broken);
    expect(code).to.equal(1);
    expect(stdout).to.equal('');
    const lines = ourStderr(stderr);
    expect(lines, stderr).to.have.length(1);
    expect(lines[0]).to.match(/^convllava inspect: INVALID — .*missing tensor 'encoder\.stages\.2\.layers\.1\.dwconv\.weight'/);
    expect(stderr).to.not.match(/^\s+at /m);
  });

  it('a broken folder with --json: valid=false and the error, still exit 1', async () => {
    const { code, stdout } = await inspect(broken, '--json');
    expect(code).to.equal(1);
    const report = JSON.parse(stdout);
    expect(report.valid).to.equal(false);
    expect(report.tensor).to.equal('encoder.stages.2.layers.1.dwconv.weight');
    expect(report.error).to.contain('missing tensor');
  });

  it('a corrupt file and a missing path are one-line errors; no PATH is a usage error', async () => {
    const bad = join(tmp, 'bad.safetensors');
    const bytes = await readFile(join(FIXTURE, 'vision_tower/model.safetensors'));
    await writeFile(bad, bytes.subarray(0, 20000));
    const corrupt = await inspect(bad);
    expect(corrupt.code).to.equal(1);
    expect(ourStderr(corrupt.stderr)).to.have.length(1);
    expect(corrupt.stderr).to.match(/truncated by \d+ bytes/);
    const missing = await inspect(join(tmp, 'nope.safetensors'));
    expect(missing.code).to.equal(1);
    expect(ourStderr(missing.stderr)).to.have.length(1);
    expect(missing.stderr).to.match(/cannot open/);
    expect((await inspect()).code).to.equal(2);
  });
});
