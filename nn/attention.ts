/**
 * LLaMA self-attention with its KV cache (grouped-query heads allowed), with the layer's input norm
 * and residual add (they fuse into the first and last kernels):
 *
 *   h = rmsNorm(x)                                                   input_layernorm
 *   q = rope(q_proj(h))   [T, nH·D]        k = rope(k_proj(h))   [T, nKv·D]        v = v_proj(h)
 *   cache rows pos … pos+T−1 ← k, v                                  caches [maxContext, nKv·D], f32
 *   x + o_proj(softmax(q·kᵀ/√D + causal mask)·v)                      → [T, H]
 *
 * Query row t sits at position pos + t and sees keys 0 … pos + t. The cache is allocated once, when
 * the module is made; the caller (the decoder) keeps the count of cached positions.
 */
import { llmNames } from '../weights/names.js';
import { Linear, type RMSNorm } from './layers.js';
import type { WeightLoader } from './loader.js';
import type { TensorOps } from './ops.js';

export interface AttentionShape {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** RoPE frequency base. */
  theta: number;
  /** Cache rows (positions). */
  maxContext: number;
}

export class Attention<T> {
  /** Keys and values of every cached position, [maxContext, nKv·D]. */
  readonly kCache: T;
  readonly vCache: T;

  constructor(
    readonly ops: TensorOps<T>,
    readonly shape: AttentionShape,
    readonly q: Linear<T>, //  (nH·D, H)   self_attn.q_proj (+ bias with attention_bias)
    readonly k: Linear<T>, //  (nKv·D, H)  self_attn.k_proj
    readonly v: Linear<T>, //  (nKv·D, H)  self_attn.v_proj
    readonly o: Linear<T>, //  (H, nH·D)   self_attn.o_proj
    label = 'attention',
  ) {
    const row = shape.kvHeads * shape.headDim;
    this.kCache = ops.empty([shape.maxContext, row], `${label}.k-cache`);
    this.vCache = ops.empty([shape.maxContext, row], `${label}.v-cache`);
  }

  static async load<T>(w: WeightLoader<T>, n: ReturnType<typeof llmNames.layer>, shape: AttentionShape, label?: string): Promise<Attention<T>> {
    const linear = (weight: string, bias: string) => Linear.load(w, weight, bias);
    const attention = new Attention(w.ops, shape, await linear(n.q, n.qBias), await linear(n.k, n.kBias), await linear(n.v, n.vBias), await linear(n.o, n.oBias), label);
    w.adopt(...attention.caches);
    return attention;
  }

  /**
   * x + o_proj(attention(norm(x))) for x [T, H] at positions pos … pos+T−1 → [T, H]; appends their
   * keys and values to the cache. The norm, projections, RoPE and cache writes are one op
   * (ops/qkvRope.ts: one dispatch when decoding); the residual add is o_proj's epilogue.
   */
  forward(x: T, pos: number, norm: RMSNorm<T>): T {
    const { ops, shape: s } = this;
    return ops.tidy(() => {
      const q = ops.qkvRope( //                                                     [T, nH·D], rotated by position
        x,
        { gamma: norm.gamma, wq: this.q.weight, wk: this.k.weight, wv: this.v.weight, bq: this.q.bias, bk: this.k.bias, bv: this.v.bias, kCache: this.kCache, vCache: this.vCache },
        { heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim, theta: s.theta, eps: norm.eps, position: pos },
      ); //                                                                         cache rows pos … pos+T−1 written
      const T = ops.shape(x)[0];
      const heads = { nHeads: s.heads, nKvHeads: s.kvHeads, headDim: s.headDim };
      const attended = ops.attention(q, this.kCache, this.vCache, { ...heads, queryOffset: pos, kvLength: pos + T }); // [T, nH·D], causal
      return this.o.forward(attended, { residual: x }); //                          [T, H]   x + o_proj(…)
    });
  }

  /** The cache tensors (owned by this module). */
  get caches(): T[] {
    return [this.kCache, this.vCache];
  }
}
