/**
 * The LLaMA decoder on the CPU, step for step the same forward as llm/llama.ts but built from the
 * ops' CPU references (plain loops over ndarrays): the oracle the GPU decoder is checked against
 * where the PyTorch fixture does not reach (grouped-query heads, tied embeddings, attention biases),
 * and a readable statement of the model. Slow: for tiny configs and teaching.
 */
import ndarray, { type NdArray } from 'ndarray';
import { addRef } from '../ops/add.js';
import { attentionRef } from '../ops/attention.js';
import { embeddingRef } from '../ops/embedding.js';
import { linearRef } from '../ops/linear.js';
import { rmsNormRef } from '../ops/rmsNorm.js';
import { ropeRef } from '../ops/rope.js';
import { swigluRef } from '../ops/swiglu.js';
import { lmHeadName, llmNames } from '../weights/names.js';
import { decoderDims, decoderTensors, type DecoderDims, type LlamaConfig } from './llama.js';

type Nd = NdArray<Float32Array>;

/** What the reference needs from a weight source: values as f32. */
export interface F32WeightSource {
  has(name: string): boolean;
  readF32(name: string): Promise<Float32Array>;
}

export class LlamaDecoderRef {
  /** Positions currently held in the KV cache. */
  length = 0;
  private readonly kCache: Nd[];
  private readonly vCache: Nd[];

  private constructor(
    readonly dims: DecoderDims,
    private readonly w: Map<string, Nd>,
    /** lm_head.weight, or the embedding table when tie_word_embeddings. */
    private readonly lmHead: string,
  ) {
    const row = dims.kvHeads * dims.headDim;
    this.kCache = Array.from({ length: dims.layers }, () => ndarray(new Float32Array(dims.maxContext * row), [dims.maxContext, row]));
    this.vCache = Array.from({ length: dims.layers }, () => ndarray(new Float32Array(dims.maxContext * row), [dims.maxContext, row]));
  }

  /**
   * Reads every decoder tensor as f32. `roundToF16` rounds the matrices through f16 first, to
   * compare with a GPU decoder that stores them as f16.
   */
  static async load(source: F32WeightSource, config: LlamaConfig, maxContext?: number, roundToF16 = false): Promise<LlamaDecoderRef> {
    const dims = decoderDims(config, maxContext);
    const w = new Map<string, Nd>();
    const { f16BitsToF32, f32ToF16Bits } = await import('../runtime/half.js');
    for (const { name, shape } of decoderTensors(config, (n) => source.has(n))) {
      const values = await source.readF32(name);
      if (roundToF16 && shape.length === 2) for (let i = 0; i < values.length; i++) values[i] = f16BitsToF32(f32ToF16Bits(values[i]));
      w.set(name, ndarray(values, shape));
    }
    return new LlamaDecoderRef(dims, w, lmHeadName(config));
  }

  private get(name: string): Nd {
    return this.w.get(name)!;
  }

  private opt(name: string): Nd | undefined {
    return this.w.get(name);
  }

  /** Token embeddings: ids [T] → [T, H]. */
  embed(ids: readonly number[]): Nd {
    return embeddingRef(ids, this.get(llmNames.embedTokens));
  }

  /** x [T, H] at positions length … length+T−1 → final-norm hidden states [T, H]. */
  forward(x: Nd): Nd {
    const T = x.shape[0];
    if (this.length + T > this.dims.maxContext) {
      throw new Error(`LLM context full: ${this.length} cached + ${T} new positions > ${this.dims.maxContext}`);
    }
    let h = x;
    for (let l = 0; l < this.dims.layers; l++) h = this.layer(l, h);
    this.length += T;
    return rmsNormRef(h, this.get(llmNames.finalNorm), this.dims.eps);
  }

  private layer(l: number, x: Nd): Nd {
    const { dims } = this;
    const n = llmNames.layer(l);
    const T = x.shape[0];
    const pos = this.length;
    const rope = { headDim: dims.headDim, positionOffset: pos, theta: dims.theta };

    const normed = rmsNormRef(x, this.get(n.inputNorm), dims.eps);
    const q = ropeRef(linearRef(normed, this.get(n.q), this.opt(n.qBias)), { ...rope, nHeads: dims.heads });
    const k = ropeRef(linearRef(normed, this.get(n.k), this.opt(n.kBias)), { ...rope, nHeads: dims.kvHeads });
    const v = linearRef(normed, this.get(n.v), this.opt(n.vBias));
    this.kCache[l].data.set(k.data, pos * k.shape[1]); // cache rows pos … pos+T−1
    this.vCache[l].data.set(v.data, pos * v.shape[1]);
    const attn = attentionRef(q, this.kCache[l], this.vCache[l], {
      nHeads: dims.heads,
      nKvHeads: dims.kvHeads,
      headDim: dims.headDim,
      queryOffset: pos,
      kvLength: pos + T,
    });
    const h = addRef(x, linearRef(attn, this.get(n.o), this.opt(n.oBias)));

    const normed2 = rmsNormRef(h, this.get(n.postAttentionNorm), dims.eps);
    const act = swigluRef(linearRef(normed2, this.get(n.gate)), linearRef(normed2, this.get(n.up)));
    return addRef(h, linearRef(act, this.get(n.down)));
  }

  /** lm_head: [T, H] → [T, vocab]. */
  logits(hidden: Nd): Nd {
    return linearRef(hidden, this.get(this.lmHead));
  }

  truncate(length: number): void {
    if (length < 0 || length > this.length) throw new Error(`truncate: ${length} is outside [0, ${this.length}]`);
    this.length = length;
  }
}
