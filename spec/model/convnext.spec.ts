/**
 * The vision tower and projector against the PyTorch oracle (spec/fixtures/convllava-tiny/golden.safetensors):
 * every stage map, image_features and projected for both cases, within 1e-4 relative L2 with f32
 * weights; the f16-weight path; the row-chunked block path; and `convllava encode-image` end to end.
 */
import { expect } from 'chai';
import ndarray from 'ndarray';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpu } from '../../runtime/gpu.js';
import type { Tensor } from '../../runtime/tensor.js';
import { Checkpoint } from '../../weights/checkpoint.js';
import { VisionTower } from '../../convnext/model.js';
import { Projector } from '../../nn/projector.js';
import { cpuOps } from '../../nn/ops.js';
import { nhwcToNchw } from '../../ops/transpose.js';
import { run as encodeImage } from '../../cli/encode-image.js';
import type { LlavaConfig } from '../../weights/config.js';
import { SyntheticWeights } from '../../synthetic/checkpoint.js';
import { linearRef } from '../../ops/linear.js';
import { expectClose, randomArray, relL2, testGpu } from '../helpers.js';
import { FIXTURES, TINY_MODEL, readFixture } from '../vision-fixtures.js';

const GOLDEN = `${FIXTURES}convllava-tiny/golden.safetensors`;
const STAGES = ['stem', 'stage1', 'stage2', 'stage3', 'stage4', 'stage5'] as const;

/** An [H, W, C] map as the reference's NCHW values. */
async function asNchw(gpu: Gpu, map: Tensor): Promise<Float32Array> {
  const t = nhwcToNchw(gpu, map);
  const values = (await t.read()) as Float32Array;
  t.dispose();
  return values;
}

async function expectGolden(actual: Float32Array, name: string, shape: number[], tol: number): Promise<number> {
  const golden = await readFixture(GOLDEN, name);
  expect(shape, `${name} shape`).to.deep.equal(golden.shape);
  const err = relL2(actual, golden.data);
  expect(err, `${name}: relative L2 error ${err.toExponential(2)} > ${tol}`).to.be.lessThan(tol);
  return err;
}

describe('ConvNeXt vision tower + projector vs the reference (convllava-tiny)', function () {
  this.timeout(60000);
  let gpu: Gpu;
  let ckpt: Checkpoint;
  let tower: VisionTower;
  let projector: Projector;

  before(async () => {
    gpu = await testGpu();
    ckpt = await Checkpoint.open(TINY_MODEL);
    tower = await VisionTower.load(gpu, ckpt);
    projector = await Projector.load(gpu, ckpt);
  });
  after(async () => {
    tower?.dispose();
    projector?.dispose();
    await ckpt?.close();
  });

  it('takes its shape from the configs: 5 stages, 16 tokens of width 96', () => {
    expect(tower.config.widths).to.deep.equal([16, 32, 48, 64, 96]);
    expect(tower.config.depths).to.deep.equal([1, 1, 2, 1, 2]);
    expect(tower.config.normEps).to.equal(1e-6);
    expect(tower.tokens).to.equal(16);
    expect(tower.width).to.equal(96);
  });

  for (const c of [0, 1]) {
    it(`case${c}: stem, stage1…5, image_features, projected within 1e-4 relative L2 (f32 weights)`, async () => {
      const pixelValues = (await readFixture(GOLDEN, `case${c}.pixel_values`)).data;
      const pixels = gpu.upload([3, 256, 256], pixelValues);
      const { features, stages } = tower.encode(pixels, { keepStages: true });
      const projected = projector.forward(features);
      const errors: Record<string, number> = {};
      for (const name of STAGES) {
        const [h, w, ch] = stages![name].shape;
        errors[name] = await expectGolden(await asNchw(gpu, stages![name]), `case${c}.${name}`, [1, ch, h, w], 1e-4);
      }
      const [T, C] = features.shape;
      errors.image_features = await expectGolden((await features.read()) as Float32Array, `case${c}.image_features`, [1, T, C], 1e-4);
      errors.projected = await expectGolden((await projected.read()) as Float32Array, `case${c}.projected`, [1, T, 64], 1e-4);
      // LayerNorm eps: transformers hardcodes 1e-6 inside ConvNeXt (config's layer_norm_eps 1e-12 is the
      // pooler's). The oracle tells them apart: with 1e-12 case1's stem is off by 2.5e-5, with 1e-6 by 1e-7.
      expect(errors.stem, 'stem error: wrong LayerNorm eps?').to.be.lessThan(2e-6);
      for (const t of [pixels, features, projected, ...Object.values(stages!)]) t.dispose();
    });
  }

  it('chunking the block rows (as at 1536²) gives the same features', async () => {
    const pixelValues = (await readFixture(GOLDEN, 'case1.pixel_values')).data;
    const pixels = gpu.upload([3, 256, 256], pixelValues);
    const whole = tower.encode(pixels).features;
    const chunked = tower.encode(pixels, { maxChunkRows: 1000 }).features; // stage 1: 4096 pixels → 5 chunks
    const a = (await whole.read()) as Float32Array;
    const b = (await chunked.read()) as Float32Array;
    expect(relL2(b, a)).to.be.lessThan(1e-6);
    await expectGolden(b, 'case1.image_features', [1, 16, 96], 1e-4);
    for (const t of [pixels, whole, chunked]) t.dispose();
  });

  it('f16 weights: image_features and projected within 1e-3 relative L2', async () => {
    // The fixture's weights are stored as float16, so f16 storage loses nothing; only accumulation differs.
    const progress: [number, number][] = [];
    const tower16 = await VisionTower.load(gpu, ckpt, { dtype: 'f16', onProgress: (done, total) => progress.push([done, total]) });
    // every vision tensor but the unused pooler norm, counted one by one
    const used = ckpt.vision.names().filter((n) => !n.startsWith('layernorm.')).length;
    expect(progress.length).to.equal(used);
    expect(progress[progress.length - 1]).to.deep.equal([used, used]);
    const projector16 = await Projector.load(gpu, ckpt, { dtype: 'f16' });
    for (const c of [0, 1]) {
      const pixels = gpu.upload([3, 256, 256], (await readFixture(GOLDEN, `case${c}.pixel_values`)).data);
      const { features } = tower16.encode(pixels);
      const projected = projector16.forward(features);
      await expectGolden((await features.read()) as Float32Array, `case${c}.image_features`, [1, 16, 96], 1e-3);
      await expectGolden((await projected.read()) as Float32Array, `case${c}.projected`, [1, 16, 64], 1e-3);
      for (const t of [pixels, features, projected]) t.dispose();
    }
    tower16.dispose();
    projector16.dispose();
  });

  it('the CPU twin (the same tower and projector on cpuOps) matches image_features and projected within 1e-4', async () => {
    const towerRef = await VisionTower.load(cpuOps, ckpt);
    const projectorRef = await Projector.load(cpuOps, ckpt);
    const pixelValues = (await readFixture(GOLDEN, 'case0.pixel_values')).data;
    const features = towerRef.encode(ndarray(pixelValues, [3, 256, 256])).features;
    await expectGolden(features.data, 'case0.image_features', [1, ...features.shape], 1e-4);
    const projected = projectorRef.forward(features);
    await expectGolden(projected.data, 'case0.projected', [1, ...projected.shape], 1e-4);
  });

  it('rejects pixel_values of the wrong shape', () => {
    const bad = gpu.empty([3, 100, 100]);
    expect(() => tower.encode(bad)).to.throw(/multiple of 64/);
    bad.dispose();
  });

  it('`convllava encode-image` writes every tensor of the golden file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'encode-image-'));
    const out = join(dir, 'case1.safetensors');
    const log = console.log;
    const printed: string[] = [];
    console.log = (...a: unknown[]) => printed.push(a.join(' '));
    try {
      const code = await encodeImage(['--model', TINY_MODEL, '--image', `${FIXTURES}convllava-tiny/case1.png`, '--out', out]);
      expect(code).to.equal(0);
    } finally {
      console.log = log;
    }
    expect(printed.join('\n')).to.match(/visual tokens: 16/);
    for (const name of ['pixel_values', ...STAGES, 'image_features', 'projected']) {
      const mine = await readFixture(out, name);
      await expectGolden(mine.data, `case1.${name}`, mine.shape, 1e-4);
    }
    await rm(dir, { recursive: true });
  });
});

describe('Projector types (linear, mlp3x_gelu) vs the CPU reference', () => {
  for (const [type, depth] of [['linear', 1], ['mlp3x_gelu', 3]] as const) {
    it(`${type}: ${depth} Linear layer(s), GELU between them`, async () => {
      const gpu = await testGpu();
      const [T, inW, outW] = [7, 33, 20];
      const cfg = { mm_projector_type: type, mm_hidden_size: inW, hidden_size: outW } as LlavaConfig;
      const names = type === 'linear' ? [''] : ['.0', '.2', '.4'];
      const shapes: Record<string, number[]> = {};
      names.forEach((suffix, i) => {
        shapes[`model.mm_projector${suffix}.weight`] = [outW, i === 0 ? inW : outW];
        shapes[`model.mm_projector${suffix}.bias`] = [outW];
      });
      const src = new SyntheticWeights(Object.entries(shapes).map(([name, shape]) => ({ name, shape })), 7);
      const projector = await Projector.fromSource(gpu, cfg, src);
      const x = randomArray(T * inW, 99);
      const input = gpu.upload([T, inW], x);
      const y = projector.forward(input);
      const values: Record<string, Float32Array> = {};
      for (const name of Object.keys(shapes)) values[name] = await src.readF32(name);
      let ref = ndarray(x, [T, inW]);
      names.forEach((suffix, i) => {
        const w = ndarray(values[`model.mm_projector${suffix}.weight`], shapes[`model.mm_projector${suffix}.weight`]);
        const b = ndarray(values[`model.mm_projector${suffix}.bias`], [outW]);
        ref = linearRef(ref, w, b, i < names.length - 1 ? { activation: 'gelu' } : {});
      });
      expectClose((await y.read()) as Float32Array, ref.data, { atol: 1e-5, rtol: 1e-4 }, type);
      for (const t of [input, y]) t.dispose();
      projector.dispose();
    });
  }
});
