/**
 * The vision modules against the PyTorch oracle (spec/fixtures/convllava-tiny): the ConvNeXt stem
 * (PatchConv + LayerNorm) and stage 1's single block (ConvNextBlock), loaded by their checkpoint
 * names (weights/names.ts) with the checkpoint's f16 weights, must reproduce the golden `stem` and
 * `stage1` activations (measured: relative L2 error ~1.5e-7 for both). This pins down what the CPU
 * references alone cannot: PyTorch's weight layouts ([Cout, Cin, k, k], [C, 1, 7, 7]), the
 * NCHW ↔ NHWC conversions, and LayerNorm eps / GELU semantics as transformers' ConvNextModel
 * computes them.
 */
import { expect } from 'chai';
import { nchwToNhwc, nhwcToNchw } from '../../ops/transpose.js';
import { CONVNEXT_NORM_EPS } from '../../convnext/config.js';
import { ConvNextBlock } from '../../nn/convnext-block.js';
import { LayerNorm, PatchConv } from '../../nn/layers.js';
import { WeightLoader } from '../../nn/loader.js';
import { gpuOps } from '../../nn/ops.js';
import { tidy } from '../../nn/tidy.js';
import { TensorSet } from '../../weights/checkpoint.js';
import { parseConvNextConfig, parseLlavaConfig } from '../../weights/config.js';
import { expectedVisionTensors, visionNames } from '../../weights/names.js';
import { readFileSync } from 'node:fs';
import { relL2, testGpu } from '../helpers.js';

const TINY = new URL('../fixtures/convllava-tiny/', import.meta.url);
const EPS = 1e-6; // transformers' ConvNeXt LayerNorms (stem, blocks, downsampling) hardcode 1e-6

describe('vision modules vs the PyTorch fixtures (convllava-tiny stem and stage 1)', () => {
  for (const c of [0, 1]) {
    it(`case ${c}: PatchConv + LayerNorm = stem; ConvNextBlock (dwconv7 → LayerNorm → MLP(gelu) → layer scale + x) = stage1`, async () => {
      expect(CONVNEXT_NORM_EPS).to.equal(EPS);
      const gpu = await testGpu();
      const golden = await TensorSet.openFile(new URL('golden.safetensors', TINY).pathname);
      const weights = await TensorSet.openFile(new URL('model/vision_tower/model.safetensors', TINY).pathname);
      const json = (path: string) => JSON.parse(readFileSync(new URL(path, TINY), 'utf8'));
      const llava = parseLlavaConfig(json('model/config.json'), 'config.json');
      const expected = expectedVisionTensors(parseConvNextConfig(json('model/vision_tower/config.json'), 'vision_tower/config.json', llava));
      const w = new WeightLoader(gpuOps(gpu), weights, expected, { part: 'vision weights', config: 'vision_tower/config.json' }, { dtype: 'f16' });
      const s = visionNames.stem;
      const stemConv = await PatchConv.load(w, s.weight, s.bias, 4);
      const stemNorm = await LayerNorm.load(w, s.normWeight, s.normBias, EPS);
      const block = await ConvNextBlock.load(w, 0, 0, { eps: EPS, layerScale: true });

      const pixels = gpu.upload([3, 256, 256], await golden.readF32(`case${c}.pixel_values`));
      const stem = tidy(gpu, () => stemNorm.forward(stemConv.forward(nchwToNhwc(gpu, pixels)))); // (64, 64, 16)
      const stage1 = block.forward(stem); //                                                        (64, 64, 16)
      const nchw = (t: typeof stem) => tidy(gpu, () => nhwcToNchw(gpu, t)).read();
      const stemErr = relL2(await nchw(stem), await golden.readF32(`case${c}.stem`));
      expect(stemErr, 'stem rel. L2 error').to.be.below(1e-6);
      const stage1Err = relL2(await nchw(stage1), await golden.readF32(`case${c}.stage1`));
      expect(stage1Err, 'stage1 rel. L2 error').to.be.below(1e-6);
      for (const t of [pixels, stem, stage1, ...w.tensors]) t.dispose();
      await Promise.all([golden.close(), weights.close()]);
    });
  }
});
