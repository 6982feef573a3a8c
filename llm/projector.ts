/**
 * The multimodal projector: vision features [T, mm_hidden_size] → LLM embeddings [T, hidden_size].
 *
 *   mlp2x_gelu   Linear(mm_hidden → hidden) → GELU → Linear(hidden → hidden)   (LLaVA-1.5, ConvLLaVA)
 *   mlpNx_gelu   N Linears with a GELU between each pair
 *   linear       one Linear
 *   identity     a copy (mm_hidden_size == hidden_size)
 *
 * The GELU is fused into the preceding Linear (ops/linear.ts `activation: 'gelu'`, exact erf form as
 * nn.GELU()). Weight names and shapes come from weights/names.ts `projectorLinears`.
 */
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import type { LlavaConfig } from '../weights/config.js';
import type { WeightSource } from '../weights/checkpoint.js';
import { projectorLinears } from '../weights/names.js';
import { linear } from '../ops/linear.js';

export interface ProjectorLoadOptions {
  /** Storage of the Linear weights (biases stay f32). Default f32. */
  dtype?: 'f32' | 'f16';
}

interface Layer {
  weight: Tensor; // (out, in)
  bias: Tensor; // (out)
}

export class Projector {
  private constructor(
    private readonly gpu: Gpu,
    private readonly layers: Layer[],
    /** Input width (mm_hidden_size). */
    readonly inWidth: number,
    /** Output width (hidden_size). */
    readonly outWidth: number,
  ) {}

  /** The projector of a checkpoint: `model.mm_projector.*` in the root weight files. */
  static load(gpu: Gpu, ckpt: { config: LlavaConfig; llm: WeightSource }, opts: ProjectorLoadOptions = {}): Promise<Projector> {
    return Projector.fromSource(gpu, ckpt.config, ckpt.llm, opts);
  }

  static async fromSource(gpu: Gpu, config: LlavaConfig, source: WeightSource, opts: ProjectorLoadOptions = {}): Promise<Projector> {
    const uploaded: Tensor[] = [];
    const get = async (name: string, dtype: 'f32' | 'f16') => {
      const t = await source.toGpu(gpu, name, dtype);
      uploaded.push(t);
      return t;
    };
    const layers: Layer[] = [];
    try {
      for (const l of projectorLinears(config)) {
        layers.push({ weight: await get(l.weight, opts.dtype ?? 'f32'), bias: await get(l.bias, 'f32') });
      }
    } catch (e) {
      for (const t of uploaded) t.dispose();
      throw e;
    }
    return new Projector(gpu, layers, config.mm_hidden_size, config.hidden_size);
  }

  /** features [T, mm_hidden_size] → [T, hidden_size]. */
  forward(features: Tensor): Tensor {
    const [T, C] = features.shape;
    if (features.shape.length !== 2 || C !== this.inWidth) {
      throw new Error(`Projector.forward: features must be [T, ${this.inWidth}] (mm_hidden_size), got [${features.shape}]`);
    }
    if (this.layers.length === 0) {
      const copy = this.gpu.empty([T, C]);
      this.gpu.copy(features, 0, copy, 0, features.byteLength);
      return copy;
    }
    let x = features;
    this.layers.forEach((layer, i) => {
      const last = i === this.layers.length - 1;
      const y = linear(this.gpu, x, layer.weight, layer.bias, last ? {} : { activation: 'gelu' });
      if (x !== features) x.dispose();
      x = y;
    });
    return x;
  }

  dispose(): void {
    for (const l of this.layers) {
      l.weight.dispose();
      l.bias.dispose();
    }
  }
}
