/**
 * The vision ops against the PyTorch oracle (spec/fixtures/convllava-tiny): the ConvNeXt stem and
 * stage 1's single block, composed by hand from the ops with the checkpoint's f16 weights, must
 * reproduce the golden `stem` and `stage1` activations (measured: relative L2 error ~1.5e-7 for
 * both). This pins down what the CPU references alone cannot: PyTorch's weight layouts
 * ([Cout, Cin, k, k], [C, 1, 7, 7]), the NCHW ↔ NHWC conversions, and LayerNorm eps / GELU
 * semantics as transformers' ConvNextModel computes them.
 */
import { expect } from 'chai';
import { dwconv7 } from '../../ops/dwconv7.js';
import { gelu } from '../../ops/gelu.js';
import { layerNorm } from '../../ops/layerNorm.js';
import { layerScaleResidual } from '../../ops/layerScaleResidual.js';
import { linear } from '../../ops/linear.js';
import { patchConv } from '../../ops/patchConv.js';
import { nchwToNhwc, nhwcToNchw } from '../../ops/transpose.js';
import type { Tensor } from '../../runtime/tensor.js';
import { TensorSet } from '../../weights/checkpoint.js';
import { relL2, testGpu } from '../helpers.js';

const TINY = new URL('../fixtures/convllava-tiny/', import.meta.url);
const EPS = 1e-6; // transformers' ConvNeXt LayerNorms (stem, blocks, downsampling) hardcode 1e-6

describe('vision ops vs the PyTorch fixtures (convllava-tiny stem and stage 1)', () => {
  for (const c of [0, 1]) {
    it(`case ${c}: patchConv + layerNorm = stem; dwconv7 → layerNorm → MLP(gelu) → layerScaleResidual = stage1`, async () => {
      const gpu = await testGpu();
      const golden = await TensorSet.openFile(new URL('golden.safetensors', TINY).pathname);
      const weights = await TensorSet.openFile(new URL('model/vision_tower/model.safetensors', TINY).pathname);
      const live: Tensor[] = [];
      const keep = <T extends Tensor>(t: T): T => (live.push(t), t);
      const f16 = async (name: string) => keep(await weights.toGpu(gpu, name, 'f16'));
      const f32 = async (name: string) => keep(await weights.toGpu(gpu, name, 'f32'));

      const pixels = keep(gpu.upload([3, 256, 256], await golden.readF32(`case${c}.pixel_values`)));
      const image = keep(nchwToNhwc(gpu, pixels)); //                                 (256, 256, 3)
      const patches = keep(patchConv(gpu, image, await f16('embeddings.patch_embeddings.weight'),
        await f32('embeddings.patch_embeddings.bias'), 4)); //                          (64, 64, 16)
      const stem = keep(layerNorm(gpu, patches, await f32('embeddings.layernorm.weight'), await f32('embeddings.layernorm.bias'), EPS));
      const stemNchw = await keep(nhwcToNchw(gpu, stem)).read();
      const stemErr = relL2(stemNchw, await golden.readF32(`case${c}.stem`));
      expect(stemErr, 'stem rel. L2 error').to.be.below(1e-6);

      const p = 'encoder.stages.0.layers.0.';
      const mixed = keep(dwconv7(gpu, stem, await f16(`${p}dwconv.weight`), await f32(`${p}dwconv.bias`)));
      const normed = keep(layerNorm(gpu, mixed.reshape([64 * 64, 16]), await f32(`${p}layernorm.weight`), await f32(`${p}layernorm.bias`), EPS));
      const hidden = keep(gelu(gpu, keep(linear(gpu, normed, await f16(`${p}pwconv1.weight`), await f32(`${p}pwconv1.bias`)))));
      const projected = keep(linear(gpu, hidden, await f16(`${p}pwconv2.weight`), await f32(`${p}pwconv2.bias`)));
      const out = keep(layerScaleResidual(gpu, projected.reshape([64, 64, 16]), await f32(`${p}layer_scale_parameter`), stem));
      const stage1 = await keep(nhwcToNchw(gpu, out)).read();
      const stage1Err = relL2(stage1, await golden.readF32(`case${c}.stage1`));
      expect(stage1Err, 'stage1 rel. L2 error').to.be.below(1e-6);
      live.forEach((t) => t.dispose());
      await Promise.all([golden.close(), weights.close()]);
    });
  }
});
