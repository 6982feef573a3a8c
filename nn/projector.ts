/**
 * The multimodal projector: vision features [T, mm_hidden_size] → LLM embeddings [T, hidden_size].
 *
 *   mlp2x_gelu   Linear(mm_hidden → hidden) → GELU → Linear(hidden → hidden)   (LLaVA-1.5, ConvLLaVA)
 *   mlpNx_gelu   N Linears with a GELU between each pair
 *   linear       one Linear
 *   identity     a copy (mm_hidden_size == hidden_size)
 *
 * The GELU is fused into the preceding Linear (exact erf form, as nn.GELU()). Names and shapes come
 * from weights/names.ts `projectorLinears`.
 */
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import type { LlavaConfig } from '../weights/config.js';
import { projectorLinears } from '../weights/names.js';
import { Linear } from './layers.js';
import { WeightLoader, type WeightLoadOptions, type WeightReader } from './loader.js';
import { opsFor, type TensorOps } from './ops.js';

export type ProjectorConfig = Pick<LlavaConfig, 'mm_projector_type' | 'mm_hidden_size' | 'hidden_size'>;

export class Projector<T = Tensor> {
  private constructor(
    readonly ops: TensorOps<T>,
    private readonly layers: Linear<T>[],
    /** Input width (mm_hidden_size). */
    readonly inWidth: number,
    /** Output width (hidden_size). */
    readonly outWidth: number,
    private readonly weights: T[],
  ) {}

  /** The projector of a checkpoint: `model.mm_projector.*` in the root weight files. */
  static load(gpu: Gpu, ckpt: { config: LlavaConfig; llm: WeightReader }, opts?: WeightLoadOptions): Promise<Projector>;
  static load<T>(ops: TensorOps<T>, ckpt: { config: LlavaConfig; llm: WeightReader }, opts?: WeightLoadOptions): Promise<Projector<T>>;
  static load<T>(device: Gpu | TensorOps<T>, ckpt: { config: LlavaConfig; llm: WeightReader }, opts: WeightLoadOptions = {}): Promise<Projector<T>> {
    return Projector.fromSource(opsFor<T>(device), ckpt.config, ckpt.llm, opts);
  }

  static fromSource(gpu: Gpu, config: ProjectorConfig, source: WeightReader, opts?: WeightLoadOptions): Promise<Projector>;
  static fromSource<T>(ops: TensorOps<T>, config: ProjectorConfig, source: WeightReader, opts?: WeightLoadOptions): Promise<Projector<T>>;
  static async fromSource<T>(device: Gpu | TensorOps<T>, config: ProjectorConfig, source: WeightReader, opts: WeightLoadOptions = {}): Promise<Projector<T>> {
    const linears = projectorLinears(config);
    const expected = linears.flatMap((l) => [
      { name: l.weight, shape: l.shape },
      { name: l.bias, shape: [l.shape[0]] },
    ]);
    const w = new WeightLoader(opsFor(device), source, expected, { part: 'projector weights', config: 'config.json' }, opts);
    return w.build(async () => {
      const layers: Linear<T>[] = [];
      for (const l of linears) layers.push(await Linear.load(w, l.weight, l.bias));
      return new Projector(w.ops, layers, config.mm_hidden_size, config.hidden_size, w.tensors);
    });
  }

  /** features [T, mm_hidden_size] → [T, hidden_size]. */
  forward(features: T): T {
    const { ops } = this;
    const [T, C] = ops.shape(features);
    if (ops.shape(features).length !== 2 || C !== this.inWidth) {
      throw new Error(`Projector.forward: features must be [T, ${this.inWidth}] (mm_hidden_size), got [${ops.shape(features)}]`);
    }
    if (this.layers.length === 0) return ops.sliceRows(features, 0, T); // identity: a copy
    const last = this.layers.length - 1;
    return ops.tidy(() => this.layers.reduce((x, layer, i) => layer.forward(x, i < last ? { activation: 'gelu' } : {}), features));
  }

  /** Bytes held by the weights (their dtypes' storage, not the pool's rounded buffer sizes). */
  get bytes(): number {
    return this.weights.reduce((sum, t) => sum + this.ops.byteLength(t), 0);
  }

  dispose(): void {
    this.ops.flush(); // recorded work that reads (or, for synthetic weights, writes) a weight runs first
    for (const t of this.weights) this.ops.dispose(t);
  }
}
