/**
 * One LLaMA decoder layer (transformers LlamaDecoderLayer):
 *
 *   h   = x + self_attn(input_layernorm(x))                        [T, H]
 *   out = h + mlp(post_attention_layernorm(h))                     [T, H]
 *
 * Each half takes its norm, which fuses into its first kernel (the residual add into its last): a
 * decode step is six dispatches per layer — qkv_rope, attention (2), o_proj + residual,
 * gate_up_swiglu, down_proj + residual — and no buffer copies.
 */
import { llmNames } from '../weights/names.js';
import { Attention, type AttentionShape } from './attention.js';
import { RMSNorm } from './layers.js';
import type { WeightLoader } from './loader.js';
import { SwiGluMlp } from './mlp.js';
import type { TensorOps } from './ops.js';

export class DecoderLayer<T> {
  constructor(
    readonly ops: TensorOps<T>,
    readonly inputNorm: RMSNorm<T>, //  (H)  input_layernorm
    readonly selfAttn: Attention<T>,
    readonly postNorm: RMSNorm<T>, //   (H)  post_attention_layernorm
    readonly mlp: SwiGluMlp<T>,
  ) {}

  static async load<T>(w: WeightLoader<T>, layer: number, shape: AttentionShape & { eps: number }): Promise<DecoderLayer<T>> {
    const n = llmNames.layer(layer);
    return new DecoderLayer(
      w.ops,
      await RMSNorm.load(w, n.inputNorm, shape.eps),
      await Attention.load(w, n, shape, `layer${layer}`),
      await RMSNorm.load(w, n.postAttentionNorm, shape.eps),
      await SwiGluMlp.load(w, n),
    );
  }

  /** x [T, H] at positions pos … pos+T−1 → [T, H] (their keys/values join the cache). */
  forward(x: T, pos: number): T {
    const { ops } = this;
    return ops.tidy(() => {
      const h = this.selfAttn.forward(x, pos, this.inputNorm); //  [T, H]  x + self_attn(input_layernorm(x))
      return this.mlp.forward(h, this.postNorm); //                 [T, H]  h + mlp(post_attention_layernorm(h))
    });
  }
}
