/**
 * `--backend cpu`: the whole ConvLLaVA forward on the ops' CPU references (plain loops over
 * ndarrays, double-precision sums) — the same steps as the WebGPU path, for checking and teaching.
 * Slow: fine for the tiny fixture model, minutes per token for a 7B one.
 *
 *   pixel_values [3, R, R] → (R, R, 3) → stem → stages → features [Tv, C] → projector [Tv, H]
 *   ids with −200 → inputs_embeds [T, H] → LlamaDecoderRef (KV cache) → logits → sampleRef
 */
import ndarray, { type NdArray } from 'ndarray';
import { addRef } from '../ops/add.js';
import { dwconv7Ref } from '../ops/dwconv7.js';
import { layerNormRef } from '../ops/layerNorm.js';
import { layerScaleResidualRef } from '../ops/layerScaleResidual.js';
import { linearRef } from '../ops/linear.js';
import { patchConvRef } from '../ops/patchConv.js';
import { sampleRef } from '../ops/sample.js';
import { nchwToNhwcRef } from '../ops/transpose.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import { expectedVisionTensors, projectorLinears, visionNames } from '../weights/names.js';
import { visionTowerConfig, type VisionTowerConfig } from '../convnext/config.js';
import type { PickOptions, TokenSteps } from './generate.js';
import { LlamaDecoderRef } from './llama-ref.js';
import { IMAGE_TOKEN_INDEX } from './prompt.js';
import type { ModelBackend } from './backend.js';

type Nd = NdArray<Float32Array>;

/** Reads named tensors as f32 ndarrays of their checkpoint shapes. */
async function reader(source: Checkpoint['vision']) {
  return async (name: string): Promise<Nd> => ndarray(await source.readF32(name), source.shape(name));
}

/** The ConvNeXt tower of ConvLLaVA on the CPU (mirrors convnext/model.ts). */
class VisionTowerRef {
  private constructor(
    private readonly config: VisionTowerConfig,
    private readonly w: Map<string, Nd>,
  ) {}

  static async load(ckpt: Checkpoint): Promise<VisionTowerRef> {
    const config = visionTowerConfig(ckpt.config, ckpt.visionConfig);
    const read = await reader(ckpt.vision);
    const w = new Map<string, Nd>();
    // Every tensor the tower uses (the optional pooler norm is not used).
    for (const { name } of expectedVisionTensors(ckpt.visionConfig).filter((t) => !t.optional)) w.set(name, await read(name));
    return new VisionTowerRef(config, w);
  }

  /** pixel_values [3, R, R] → features [Tv, C]. */
  encode(pixelValues: Nd): Nd {
    const { config } = this;
    const get = (name: string) => this.w.get(name)!;
    const s = visionNames.stem;
    // stem: p×p stride-p conv + LayerNorm               (3, R, R) -> (R, R, 3) -> (R/p, R/p, C1)
    let x = patchConvRef(nchwToNhwcRef(pixelValues), get(s.weight), get(s.bias), config.patchSize);
    x = layerNormRef(x, get(s.normWeight), get(s.normBias), config.normEps);
    config.depths.forEach((depth, stage) => {
      if (stage > 0) {
        // downsampling: LayerNorm + 2×2 stride-2 conv    (H, W, C_{s−1}) -> (H/2, W/2, C_s)
        const d = visionNames.downsample(stage);
        x = patchConvRef(layerNormRef(x, get(d.normWeight), get(d.normBias), config.normEps), get(d.convWeight), get(d.convBias), config.downsampleSize);
      }
      for (let l = 0; l < depth; l++) {
        // block: x + γ · pwconv2(GELU(pwconv1(LayerNorm(dwconv7(x)))))
        const b = visionNames.block(stage, l);
        const [H, W, C] = x.shape;
        const rows = (t: Nd) => ndarray(t.data, [H * W, t.shape[t.shape.length - 1]]);
        const mixed = rows(dwconv7Ref(x, get(b.dwconvWeight), get(b.dwconvBias)));
        const normed = layerNormRef(mixed, get(b.normWeight), get(b.normBias), config.normEps);
        const expanded = linearRef(normed, get(b.pwconv1Weight), get(b.pwconv1Bias), 'gelu'); // (H·W, 4C)
        const projected = linearRef(expanded, get(b.pwconv2Weight), get(b.pwconv2Bias)); //      (H·W, C)
        const out = config.layerScale ? layerScaleResidualRef(projected, get(b.layerScale), rows(x)) : addRef(projected, rows(x));
        x = ndarray(out.data, [H, W, C]);
      }
    });
    // (H, W, C) row-major is the token matrix (H·W, C)
    const [H, W, C] = x.shape;
    return ndarray(x.data, [H * W, C]);
  }
}

/** Sampling on the CPU with the same semantics and the same seeded draws as the GPU sampler. */
class CpuSteps implements TokenSteps {
  private readonly answer: number[] = [];

  constructor(
    private readonly decoder: LlamaDecoderRef,
    private logits: Float32Array,
  ) {}

  async pick(c: PickOptions): Promise<number> {
    const id = sampleRef(this.logits, { ...c, recentIds: this.answer });
    this.answer.push(id);
    return id;
  }

  feed(): void {
    const id = this.answer[this.answer.length - 1];
    this.logits = this.decoder.logits(this.decoder.forward(this.decoder.embed([id]))).data;
  }

  close(): void {}
}

export class CpuBackend implements ModelBackend {
  readonly name = 'cpu';

  private constructor(
    private readonly tower: VisionTowerRef,
    private readonly projector: { weight: Nd; bias: Nd }[],
    readonly decoder: LlamaDecoderRef,
  ) {}

  static async load(ckpt: Checkpoint, options: { maxContext?: number; onProgress?: (stage: 'vision' | 'projector' | 'llm') => void } = {}): Promise<CpuBackend> {
    const tower = await VisionTowerRef.load(ckpt);
    options.onProgress?.('vision');
    const read = await reader(ckpt.llm);
    const projector = [];
    for (const l of projectorLinears(ckpt.config)) projector.push({ weight: await read(l.weight), bias: await read(l.bias) });
    options.onProgress?.('projector');
    const decoder = await LlamaDecoderRef.load(ckpt.llm, ckpt.config, options.maxContext);
    options.onProgress?.('llm');
    return new CpuBackend(tower, projector, decoder);
  }

  get maxContext(): number {
    return this.decoder.dims.maxContext;
  }

  get cacheLength(): number {
    return this.decoder.length;
  }

  async encodeImage(pixelValues: Float32Array, size: number): Promise<Nd> {
    let x = this.tower.encode(ndarray(pixelValues, [3, size, size])); // [Tv, C]
    this.projector.forEach((layer, i) => {
      x = linearRef(x, layer.weight, layer.bias, i < this.projector.length - 1 ? 'gelu' : undefined);
    }); //                                                                 [Tv, H]
    return x;
  }

  prefill(ids: readonly number[], image: Nd | null, keep: number): TokenSteps {
    const { decoder } = this;
    decoder.truncate(keep);
    const at = ids.indexOf(IMAGE_TOKEN_INDEX);
    let x: Nd;
    if (at < 0) x = decoder.embed(ids);
    else {
      if (!image) throw new Error('prefill: the prompt has an <image> but no image features were given');
      const H = decoder.dims.hidden;
      const before = decoder.embed(ids.slice(0, at));
      const after = decoder.embed(ids.slice(at + 1));
      const data = new Float32Array(before.size + image.size + after.size);
      data.set(before.data, 0);
      data.set(image.data, before.size);
      data.set(after.data, before.size + image.size);
      x = ndarray(data, [data.length / H, H]); //                             inputs_embeds [T, H]
    }
    const hidden = decoder.forward(x);
    const T = hidden.shape[0];
    const H = hidden.shape[1];
    const last = ndarray(hidden.data.slice((T - 1) * H, T * H), [1, H]);
    return new CpuSteps(decoder, decoder.logits(last).data);
  }

  releaseImage(): void {}

  async dispose(): Promise<void> {}
}
