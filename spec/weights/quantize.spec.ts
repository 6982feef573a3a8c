/**
 * Quantized checkpoints on disk (weights/quantized.ts, weights/quantize-folder.ts, `convllava quantize`):
 * the tiny fixture quantized to q8 and q4 (tiny shards, to force sharding) holds exactly the codes and
 * scales runtime/quant.ts computes, loads into the same GPU words as quantizing the original at load,
 * generates the same greedy ids (GPU and CPU), passes `inspect`; corrupt folders are refused by name.
 */
import { expect } from 'chai';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConvLlava } from '../../index.js';
import { gpuOps } from '../../nn/ops.js';
import { quantize, quantLayout, type QuantDType } from '../../runtime/quant.js';
import { Checkpoint } from '../../weights/checkpoint.js';
import { expectedLlmTensors, expectedVisionTensors } from '../../weights/names.js';
import { codesToDisk, matrixFromDisk } from '../../weights/quantized.js';
import { quantizeFolder } from '../../weights/quantize-folder.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../weights/safetensors.js';
import { runCli, scratchFolder, testGpu, TINY_FIXTURE_MODEL } from '../helpers.js';

const scratch = scratchFolder('convllava-quantize-');
const TINY = new URL('../fixtures/convllava-tiny/', import.meta.url);
const golden = JSON.parse(readFileSync(new URL('golden.json', TINY), 'utf8'));
const image = fileURLToPath(new URL('case0.png', TINY));

/** Rewrites a safetensors file after editing its tensor list (tiny files: data in memory). */
async function rewrite(path: string, edit: (list: TensorToWrite[]) => TensorToWrite[]): Promise<void> {
  const f = await SafetensorsFile.open(path);
  const list: TensorToWrite[] = [];
  for (const t of f.tensors.values()) list.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await f.readBytes(t.name) });
  await f.close();
  await writeSafetensors(path, edit(list));
}

async function refusal(dir: string): Promise<Error> {
  try {
    await (await Checkpoint.open(dir)).close();
  } catch (e) {
    return e as Error;
  }
  throw new Error(`${dir} was accepted`);
}

describe('quantized checkpoints on disk (convllava quantize)', function () {
  it('q4 nibbles: even k in the low nibble, odd k in the high one; round trip through the disk bytes', () => {
    const q = quantize(Float32Array.from({ length: 2 * 40 }, (_, i) => Math.sin(i) * 3), 2, 40, 'q4'); // ragged K = 40
    const bytes = codesToDisk(q);
    expect(bytes.length).to.equal(2 * 32); // 2 groups → 64 codes → 32 bytes per row
    expect(bytes[0] & 15).to.equal(q.codes[0]);
    expect(bytes[0] >> 4).to.equal(q.codes[1]);
    expect(bytes[32 + 3] >> 4).to.equal(q.codes[64 + 7]);
    const back = matrixFromDisk('q4', 2, 40, bytes, q.scales);
    expect([...back.codes]).to.deep.equal([...q.codes]);
  });

  for (const [dtype, quantizeVision] of [['q8', false], ['q4', true]] as [QuantDType, boolean][]) {
    describe(`${dtype}${quantizeVision ? ' with --quantize-vision' : ''}, 20 KB shards`, () => {
      let dst = '';
      before(async () => {
        dst = scratch.fresh(dtype);
        await quantizeFolder(TINY_FIXTURE_MODEL, dst, { dtype, quantizeVision, shardBytes: 20_000 });
      });

      it('is sharded with an index, configs copied, quantization_config listing every quantized tensor', async () => {
        const files = await readdir(dst);
        expect(files).to.include('model.safetensors.index.json');
        expect(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).to.be.greaterThan(1);
        expect(files).to.include.members(['config.json', 'generation_config.json']);
        expect(await readdir(join(dst, 'vision_tower'))).to.include.members(['config.json', 'preprocessor_config.json']);
        const config = JSON.parse(await readFile(join(dst, 'config.json'), 'utf8'));
        const src = JSON.parse(await readFile(join(TINY_FIXTURE_MODEL, 'config.json'), 'utf8'));
        expect({ ...config, quantization_config: undefined }).to.deep.equal({ ...src, quantization_config: undefined });
        const ckpt = await Checkpoint.open(TINY_FIXTURE_MODEL);
        const llm2d = expectedLlmTensors(ckpt.config).filter((t) => t.shape.length === 2 && ckpt.llm.has(t.name)).map((t) => t.name);
        const vision2d = expectedVisionTensors(ckpt.visionConfig).filter((t) => t.shape.length === 2).map((t) => `vision_tower/${t.name}`);
        await ckpt.close();
        expect(config.quantization_config).to.deep.equal({
          quant_method: 'convllava',
          bits: dtype === 'q8' ? 8 : 4,
          group_size: 32,
          scales_suffix: '.scales',
          modules: quantizeVision ? [...llm2d, ...vision2d] : llm2d,
        });
      });

      it('stores exactly the codes and scales of quantizing the original (ragged K included)', async () => {
        const [src, q] = [await Checkpoint.open(TINY_FIXTURE_MODEL), await Checkpoint.open(dst)];
        try {
          expect(q.quantizedAs).to.equal(dtype);
          expect(q.visionQuantized).to.equal(quantizeVision);
          let checked = 0;
          for (const [a, b] of [[src.llm, q.llm], [src.vision, q.vision]] as const) {
            for (const name of a.names()) {
              if (!b.quantizedAs(name)) {
                expect(await b.readBytes(name), name).to.deep.equal(await a.readBytes(name)); // copied as stored
                continue;
              }
              const [N, K] = a.shape(name);
              expect(b.shape(name)).to.deep.equal([N, K]);
              const want = quantize(await a.readF32(name), N, K, dtype);
              const got = await b.readQuantized(name);
              expect(Buffer.from(got.codes.buffer).equals(Buffer.from(want.codes.buffer)), `${name} codes`).to.equal(true);
              expect([...got.scales], `${name} scales`).to.deep.equal([...want.scales]);
              checked++;
            }
          }
          expect(checked).to.equal(q.quantization!.modules.length);
          expect(q.llm.shape('model.layers.0.mlp.down_proj.weight')[1] % 32).to.not.equal(0); // a ragged K was among them
        } finally {
          await Promise.all([src.close(), q.close()]);
        }
      });

      it('loads into the same GPU words as quantizing the original at load (no requantization)', async () => {
        const gpu = await testGpu();
        const ops = gpuOps(gpu);
        const [src, q] = [await Checkpoint.open(TINY_FIXTURE_MODEL), await Checkpoint.open(dst)];
        try {
          for (const [a, b] of [[src.llm, q.llm], [src.vision, q.vision]] as const) {
            for (const name of b.names().filter((n) => b.quantizedAs(n))) {
              const [x, y] = [await ops.load(a, name, dtype), await ops.load(b, name, dtype)];
              const [wa, wb] = [(await gpu.read(x)) as Uint32Array, (await gpu.read(y)) as Uint32Array];
              x.dispose();
              y.dispose();
              expect(wb.length, name).to.equal(a.shape(name)[0] * quantLayout(dtype, a.shape(name)[1]).rowWords);
              expect(Buffer.from(wb.buffer).equals(Buffer.from(wa.buffer)), name).to.equal(true);
            }
          }
        } finally {
          await Promise.all([src.close(), q.close()]);
        }
      });

      it('generates the same greedy ids as quantize-on-load, on the GPU and on the CPU', async function () {
        this.timeout(600_000);
        const request = { image, prompt: golden.question, maxNewTokens: 6 };
        const gpu = await testGpu();
        const ids: Record<string, number[]> = {};
        for (const backend of ['webgpu', 'cpu'] as const) {
          for (const [label, path] of [['on load', TINY_FIXTURE_MODEL], ['stored', dst]] as const) {
            const model = await ConvLlava.load(path, { dtype, quantizeVision, backend, gpu, maxContext: 128 });
            try {
              ids[`${backend} ${label}`] = (await model.generate(request)).ids;
            } finally {
              await model.dispose();
            }
          }
        }
        expect(ids['webgpu stored']).to.have.length(6);
        expect(ids['webgpu stored']).to.deep.equal(ids['webgpu on load']);
        expect(ids['cpu stored']).to.deep.equal(ids['cpu on load']);
      });

      it('refuses to load as f16 (or as the other format), naming the dtype to use', async () => {
        const other = dtype === 'q8' ? 'q4' : 'q8';
        for (const wrong of ['f16', other] as const) {
          let error: Error | null = null;
          await ConvLlava.load(dst, { dtype: wrong, backend: 'cpu' }).then((m) => m.dispose(), (e) => (error = e));
          expect(error, wrong).to.not.equal(null);
          expect(error!.message, String(error)).to.match(new RegExp(`is a quantized checkpoint \\(${dtype}.*load it with dtype '${dtype}'.*not '${wrong}'`));
        }
      });
    });
  }

  it('`convllava quantize` then `inspect` on the CLI: sharded, valid, GPU memory as stored; peak RSS printed', async function () {
    this.timeout(120_000);
    const dst = scratch.fresh('cli');
    const q = await runCli(['quantize', TINY_FIXTURE_MODEL, dst, '--dtype', 'q4', '--shard-size', '20KB']);
    expect(q.code, q.stderr).to.equal(0);
    expect(q.stdout).to.match(/110 tensors \(18 quantized q4\)/);
    expect(q.stdout).to.match(/peak RSS \d+ MiB/);
    expect(q.stderr).to.match(/\[1\/110\] /);
    const again = await runCli(['quantize', TINY_FIXTURE_MODEL, dst, '--dtype', 'q4']);
    expect(again.code).to.equal(1);
    expect(again.stderr).to.match(/already holds a model/);
    const i = await runCli(['inspect', dst, '--no-gpu', '--json']);
    expect(i.code, i.stderr).to.equal(0);
    const report = JSON.parse(i.stdout);
    expect(report.summary.quantization).to.include({ quant_method: 'convllava', bits: 4, modules: 18 });
    const stored = report.summary.gpuMemory.asStored;
    expect(stored.dtype).to.equal('q4');
    expect(stored.llm).to.equal(report.summary.gpuMemory.q4.llm); // the same figure as quantize-on-load predicts
    expect(report.tensors.filter((t: { dtype: string }) => t.dtype === 'q4')).to.have.length(18);
    expect(report.tensors.some((t: { name: string }) => t.name.endsWith('.scales'))).to.equal(false); // folded into their weights
    const usage = await runCli(['quantize', TINY_FIXTURE_MODEL, scratch.fresh('x'), '--dtype', 'q5']);
    expect(usage.code).to.equal(2);
    expect(usage.stderr).to.match(/--dtype must be q4 or q8, got 'q5'/);
  });

  describe('corrupt quantized folders are refused, naming the tensor', () => {
    const target = 'model.layers.1.mlp.down_proj.weight';
    let clean = '';
    before(async () => {
      clean = scratch.fresh('q8-single');
      await quantizeFolder(TINY_FIXTURE_MODEL, clean, { dtype: 'q8' }); // one model.safetensors
    });
    const copy = async () => {
      const { cp } = await import('node:fs/promises');
      const dir = scratch.fresh('corrupt');
      await cp(clean, dir, { recursive: true });
      return dir;
    };

    it('a missing scales tensor', async () => {
      const dir = await copy();
      await rewrite(join(dir, 'model.safetensors'), (list) => list.filter((t) => t.name !== `${target}.scales`));
      const e = await refusal(dir);
      expect(e.message).to.match(new RegExp(`tensor '${target}\\.scales' is missing \\(quantized q8 weight '${target}' \\[64,172\\] needs its scales\\)`));
    });

    it('a scales tensor of the wrong shape', async () => {
      const dir = await copy();
      await rewrite(join(dir, 'model.safetensors'), (list) =>
        list.map((t) => (t.name === `${target}.scales` ? { ...t, shape: [32, 12], data: new Uint8Array(32 * 12 * 2) } : t)),
      );
      const e = await refusal(dir);
      expect(e.message).to.match(new RegExp(`tensor '${target}\\.scales' is F16 \\[32,12\\] but a q8 weight \\[64,172\\] stores its scales as F16 \\[64,6\\]`));
    });

    it('codes of the wrong dtype', async () => {
      const dir = await copy();
      await rewrite(join(dir, 'model.safetensors'), (list) => list.map((t) => (t.name === target ? { ...t, dtype: 'U8' } : t)));
      const e = await refusal(dir);
      expect(e.message).to.match(new RegExp(`tensor '${target}' is U8 \\[64,192\\] but a q8 weight \\[64,172\\] stores its codes as I8 \\[64,192\\]`));
    });

    it('a quantization_config naming a tensor that is not a 2-D weight, or an unknown method', async () => {
      const dir = await copy();
      const path = join(dir, 'config.json');
      const config = JSON.parse(await readFile(path, 'utf8'));
      await writeFile(path, JSON.stringify({ ...config, quantization_config: { ...config.quantization_config, modules: ['model.norm.weight'] } }));
      expect((await refusal(dir)).message).to.match(/quantization_config\.modules lists 'model\.norm\.weight', which is not a 2-D weight/);
      await writeFile(path, JSON.stringify({ ...config, quantization_config: { ...config.quantization_config, quant_method: 'gptq' } }));
      expect((await refusal(dir)).message).to.match(/quant_method is "gptq"; convllava reads only "convllava"/);
    });
  });
});
