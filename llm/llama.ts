/**
 * The LLaMA decoder (transformers' LlamaForCausalLM), run on the GPU with a KV cache.
 *
 *   inputs_embeds [T, H]
 *     └ per layer l:   h = x + o_proj( attention( rope(q_proj(rmsNorm(x))), cache_k, cache_v ) )
 *                      x = h + down_proj( silu(gate_proj(rmsNorm(h))) * up_proj(rmsNorm(h)) )
 *   final rmsNorm → hidden [T, H] → lm_head → logits [T, vocab]
 *
 * Shapes (H = hidden_size, D = head_dim, nH / nKv = query / key-value heads, I = intermediate_size):
 *   q [T, nH·D]   k, v [T, nKv·D]   KV cache per layer [maxContext, nKv·D] (f32, allocated once)
 *
 * `forward(x)` appends x's T positions to the cache and returns their hidden states: the whole
 * prompt at once (prefill) or one token (decode). Every activation is released back to the buffer
 * pool as soon as it has been recorded, so a decode step reuses the same pooled buffers each time
 * and allocates no GPU memory (the spec checks `pool.heldBytes`). Nothing is submitted here: the
 * caller reads the chosen token id, which submits the whole step as one command buffer.
 */
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import type { LlavaConfig } from '../weights/config.js';
import { add } from '../ops/add.js';
import { attention } from '../ops/attention.js';
import { embedding } from '../ops/embedding.js';
import { linear } from '../ops/linear.js';
import { rmsNorm } from '../ops/rmsNorm.js';
import { rope } from '../ops/rope.js';
import { sliceRows, writeRows } from '../ops/rows.js';
import { swiglu } from '../ops/swiglu.js';
import { decoderTensorShapes, lmHeadName, llmNames, type DecoderShapeConfig } from '../weights/names.js';
import { IMAGE_TOKEN_INDEX } from './prompt.js';

/** The config fields the decoder reads (all from config.json): those that fix its tensors, and the rest. */
export type LlamaConfig = DecoderShapeConfig &
  Pick<LlavaConfig, 'rms_norm_eps' | 'rope_theta' | 'rope_scaling' | 'max_position_embeddings' | 'hidden_act'>;

/** Where the decoder's weights come from: a checkpoint (weights/checkpoint.ts) or synthetic ones (bench). */
export interface LlamaWeightSource {
  has(name: string): boolean;
  shape(name: string): number[];
  toGpu(gpu: Gpu, name: string, dtype: 'f32' | 'f16'): Promise<Tensor>;
}

export interface DecoderLoadOptions {
  /** Storage of the large matrices (norm weights stay f32). Default 'f16'. */
  dtype?: 'f32' | 'f16';
  /** KV cache rows (positions). Default max_position_embeddings. */
  maxContext?: number;
  /** Called after each tensor is on the GPU. */
  onProgress?: (done: number, total: number, name: string) => void;
}

/** One decoder layer's weights (checkpoint names: weights/names.ts `llmNames.layer(l)`). */
interface LayerWeights {
  inputNorm: Tensor; //     [H]            input_layernorm.weight
  q: Tensor; //             [nH·D, H]      self_attn.q_proj.weight
  k: Tensor; //             [nKv·D, H]     self_attn.k_proj.weight
  v: Tensor; //             [nKv·D, H]     self_attn.v_proj.weight
  o: Tensor; //             [H, nH·D]      self_attn.o_proj.weight
  qBias?: Tensor; //        attention_bias only
  kBias?: Tensor;
  vBias?: Tensor;
  oBias?: Tensor;
  postNorm: Tensor; //      [H]            post_attention_layernorm.weight
  gate: Tensor; //          [I, H]         mlp.gate_proj.weight
  up: Tensor; //            [I, H]         mlp.up_proj.weight
  down: Tensor; //          [H, I]         mlp.down_proj.weight
}

interface DecoderWeights {
  embed: Tensor; //         [vocab, H]     model.embed_tokens.weight
  layers: LayerWeights[];
  norm: Tensor; //          [H]            model.norm.weight
  lmHead: Tensor; //        [vocab, H]     lm_head.weight (= embed when tie_word_embeddings)
}

/** Sizes derived from the config once. */
export interface DecoderDims {
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  layers: number;
  vocab: number;
  eps: number;
  theta: number;
  maxContext: number;
}

/** Checks the config describes a model this decoder implements, and derives its sizes. */
export function decoderDims(config: LlamaConfig, maxContext = config.max_position_embeddings): DecoderDims {
  const unsupported = (what: string) => {
    throw new Error(`config.json: ${what} is not supported by this LLaMA decoder`);
  };
  if (config.hidden_act !== 'silu') unsupported(`hidden_act '${config.hidden_act}' (only 'silu')`);
  if (config.rope_scaling) unsupported(`rope_scaling ${JSON.stringify(config.rope_scaling)}`);
  const heads = config.num_attention_heads;
  const kvHeads = config.num_key_value_heads ?? heads;
  const headDim = config.head_dim ?? config.hidden_size / heads;
  if (heads % kvHeads !== 0) unsupported(`num_attention_heads ${heads} not a multiple of num_key_value_heads ${kvHeads}`);
  if (!Number.isInteger(maxContext) || maxContext < 1) throw new Error(`maxContext must be an integer ≥ 1, got ${maxContext}`);
  if (maxContext > config.max_position_embeddings) {
    throw new Error(`maxContext ${maxContext} exceeds the model's max_position_embeddings ${config.max_position_embeddings}`);
  }
  return {
    hidden: config.hidden_size,
    heads,
    kvHeads,
    headDim,
    layers: config.num_hidden_layers,
    vocab: config.vocab_size,
    eps: config.rms_norm_eps,
    theta: config.rope_theta,
    maxContext,
  };
}

/**
 * Every decoder tensor by checkpoint name, in load order, with the shape config.json implies
 * (weights/names.ts builds the list). `hasBias(name)` says whether an optional attention bias is
 * present (attention_bias checkpoints).
 */
export function decoderTensors(config: LlamaConfig, hasBias: (name: string) => boolean = () => true): { name: string; shape: number[] }[] {
  const { headDim } = decoderDims(config);
  return decoderTensorShapes({ ...config, head_dim: headDim })
    .filter((t) => !t.attentionBias || hasBias(t.name))
    .map(({ name, shape }) => ({ name, shape }));
}

export class LlamaDecoder {
  /** Positions currently held in the KV cache. */
  length = 0;

  private constructor(
    readonly gpu: Gpu,
    readonly dims: DecoderDims,
    private readonly weights: DecoderWeights,
    /** Per layer: keys and values of every cached position, [maxContext, nKv·D]. */
    private readonly kCache: Tensor[],
    private readonly vCache: Tensor[],
  ) {}

  /** Uploads the decoder weights (checking every shape against the config) and allocates the KV cache. */
  static async load(gpu: Gpu, source: LlamaWeightSource, config: LlamaConfig, options: DecoderLoadOptions = {}): Promise<LlamaDecoder> {
    const dtype = options.dtype ?? 'f16';
    const dims = decoderDims(config, options.maxContext);
    const tensors = decoderTensors(config, (name) => source.has(name));
    const loaded = new Map<string, Tensor>();
    try {
      for (const { name, shape: want } of tensors) {
        if (!source.has(name)) throw new Error(`LLM weights: tensor '${name}' is missing from the checkpoint`);
        const shape = source.shape(name);
        if (shape.length !== want.length || shape.some((d, i) => d !== want[i])) {
          throw new Error(`LLM weights: '${name}' has shape [${shape}] but config.json implies [${want}]`);
        }
        // Vectors (norm scales, biases) are tiny and read by f32-only ops: keep them f32.
        loaded.set(name, await source.toGpu(gpu, name, shape.length === 1 ? 'f32' : dtype));
        options.onProgress?.(loaded.size, tensors.length, name);
      }
    } catch (e) {
      for (const t of loaded.values()) t.dispose();
      throw e;
    }
    const get = (name: string) => loaded.get(name)!;
    const layers: LayerWeights[] = [];
    for (let l = 0; l < dims.layers; l++) {
      const n = llmNames.layer(l);
      layers.push({
        inputNorm: get(n.inputNorm),
        q: get(n.q),
        k: get(n.k),
        v: get(n.v),
        o: get(n.o),
        qBias: loaded.get(n.qBias),
        kBias: loaded.get(n.kBias),
        vBias: loaded.get(n.vBias),
        oBias: loaded.get(n.oBias),
        postNorm: get(n.postAttentionNorm),
        gate: get(n.gate),
        up: get(n.up),
        down: get(n.down),
      });
    }
    const embed = get(llmNames.embedTokens);
    const weights: DecoderWeights = {
      embed,
      layers,
      norm: get(llmNames.finalNorm),
      lmHead: get(lmHeadName(config)), //   the embedding table itself when tie_word_embeddings
    };
    const cacheRow = dims.kvHeads * dims.headDim;
    const kCache = Array.from({ length: dims.layers }, (_, l) => gpu.empty([dims.maxContext, cacheRow], 'f32', `k-cache.${l}`));
    const vCache = Array.from({ length: dims.layers }, (_, l) => gpu.empty([dims.maxContext, cacheRow], 'f32', `v-cache.${l}`));
    return new LlamaDecoder(gpu, dims, weights, kCache, vCache);
  }

  /** Token embeddings: ids [T] (numbers, checked against the vocabulary, or a u32 tensor) → [T, H]. */
  embed(ids: readonly number[] | Tensor): Tensor {
    return embedding(this.gpu, ids as Tensor | number[], this.weights.embed);
  }

  /**
   * LLaVA's inputs_embeds: text embeddings with the projected image rows [Tv, H] spliced in where
   * the ids hold IMAGE_TOKEN_INDEX (−200). Returns [len(ids) − 1 + Tv, H] (one image).
   */
  inputsEmbeds(ids: readonly number[], image?: Tensor): Tensor {
    const imageAt = ids.indexOf(IMAGE_TOKEN_INDEX);
    if (imageAt !== ids.lastIndexOf(IMAGE_TOKEN_INDEX)) throw new Error('inputsEmbeds: the prompt holds more than one <image>');
    if (imageAt < 0 || !image) {
      if (imageAt >= 0) throw new Error('inputsEmbeds: the prompt has an <image> but no image features were given');
      return this.embed(ids);
    }
    const H = this.dims.hidden;
    if (image.shape.length !== 2 || image.shape[1] !== H) {
      throw new Error(`inputsEmbeds: image features are [${image.shape}] but the LLM needs [T, ${H}] (hidden_size)`);
    }
    const before = imageAt;
    const after = ids.length - imageAt - 1;
    const Tv = image.shape[0];
    // One embedding call for all text ids: its id upload happens before any buffer here is recycled.
    const text = this.embed([...ids.slice(0, imageAt), ...ids.slice(imageAt + 1)]); // [before + after, H]
    const x = this.gpu.empty([before + Tv + after, H]); //                            [T, H]
    if (before > 0) {
      const head = sliceRows(this.gpu, text, 0, before);
      writeRows(this.gpu, head, x, 0);
      head.dispose();
    }
    writeRows(this.gpu, image, x, before);
    if (after > 0) {
      const tail = sliceRows(this.gpu, text, before, after);
      writeRows(this.gpu, tail, x, before + Tv);
      tail.dispose();
    }
    text.dispose();
    return x;
  }

  /**
   * Runs x [T, H] at positions length … length+T−1, appending their keys/values to the cache.
   * Returns the final-norm hidden states [T, H] (x is not disposed).
   */
  forward(x: Tensor): Tensor {
    const steps = this.forwardSteps(x);
    for (;;) {
      const step = steps.next();
      if (step.done) return step.value;
    }
  }

  /**
   * The same, pausing after each layer (where a caller may submit the work so far, wait and check
   * an abort signal). Abandoned with `return()`, it frees its hidden state and leaves `length` as
   * it was (the positions written are beyond it, so they count as empty).
   */
  *forwardSteps(x: Tensor): Generator<number, Tensor> {
    const T = x.shape[0];
    if (this.length + T > this.dims.maxContext) {
      throw new Error(`LLM context full: ${this.length} cached + ${T} new positions > ${this.dims.maxContext}`);
    }
    let h = x;
    try {
      for (let l = 0; l < this.dims.layers; l++) {
        const next = this.layer(l, h);
        if (h !== x) h.dispose();
        h = next;
        if (l + 1 < this.dims.layers) yield l;
      }
      const out = rmsNorm(this.gpu, h, this.weights.norm, this.dims.eps);
      this.length += T;
      return out;
    } finally {
      if (h !== x) h.dispose();
    }
  }

  /** One decoder layer at positions length … length+T−1 (the cache length advances in forward). */
  private layer(l: number, x: Tensor): Tensor {
    const { gpu, dims } = this;
    const w = this.weights.layers[l];
    const T = x.shape[0];
    const pos = this.length;
    const ropeOptions = { headDim: dims.headDim, positionOffset: pos, theta: dims.theta };

    // --- self-attention block
    const normed = rmsNorm(gpu, x, w.inputNorm, dims.eps); //                 [T, H]
    const q0 = linear(gpu, normed, w.q, w.qBias); //                           [T, nH·D]
    const k0 = linear(gpu, normed, w.k, w.kBias); //                           [T, nKv·D]
    const v = linear(gpu, normed, w.v, w.vBias); //                            [T, nKv·D]
    normed.dispose();
    const q = rope(gpu, q0, { ...ropeOptions, nHeads: dims.heads }); //      rotate by position (RoPE)
    const k = rope(gpu, k0, { ...ropeOptions, nHeads: dims.kvHeads });
    q0.dispose();
    k0.dispose();
    writeRows(gpu, k, this.kCache[l], pos); //                                 cache rows pos … pos+T−1
    writeRows(gpu, v, this.vCache[l], pos);
    k.dispose();
    v.dispose();
    const attn = attention(gpu, q, this.kCache[l], this.vCache[l], {
      nHeads: dims.heads,
      nKvHeads: dims.kvHeads,
      headDim: dims.headDim,
      queryOffset: pos,
      kvLength: pos + T,
    }); //                                                                     [T, nH·D], causal
    q.dispose();
    const o = linear(gpu, attn, w.o, w.oBias); //                              [T, H]
    attn.dispose();
    const h = add(gpu, x, o); //                                               residual
    o.dispose();

    // --- SwiGLU MLP block
    const normed2 = rmsNorm(gpu, h, w.postNorm, dims.eps); //                  [T, H]
    const gate = linear(gpu, normed2, w.gate); //                              [T, I]
    const up = linear(gpu, normed2, w.up); //                                  [T, I]
    normed2.dispose();
    const act = swiglu(gpu, gate, up); //                                      silu(gate)·up
    gate.dispose();
    up.dispose();
    const down = linear(gpu, act, w.down); //                                  [T, H]
    act.dispose();
    const out = add(gpu, h, down); //                                          residual
    h.dispose();
    down.dispose();
    return out;
  }

  /** lm_head over every row: [T, H] → [T, vocab]. */
  logits(hidden: Tensor): Tensor {
    return linear(this.gpu, hidden, this.weights.lmHead);
  }

  /** lm_head over the last row only: [T, H] → [1, vocab] (what generation needs after a prefill). */
  lastLogits(hidden: Tensor): Tensor {
    const T = hidden.shape[0];
    if (T === 1) return this.logits(hidden);
    const last = sliceRows(this.gpu, hidden, T - 1, 1);
    const logits = this.logits(last);
    last.dispose();
    return logits;
  }

  /** Forgets cached positions from `length` on (a new conversation: truncate(0)). */
  truncate(length: number): void {
    if (length < 0 || length > this.length) throw new Error(`truncate: ${length} is outside [0, ${this.length}]`);
    this.length = length;
  }

  /** GPU bytes held by the weights and the KV cache. */
  get bytes(): { weights: number; kvCache: number } {
    const sum = (ts: Iterable<Tensor>) => [...ts].reduce((s, t) => s + t.byteLength, 0);
    return { weights: sum(this.weightTensors()), kvCache: sum([...this.kCache, ...this.vCache]) };
  }

  dispose(): void {
    for (const t of [...this.weightTensors(), ...this.kCache, ...this.vCache]) t.dispose();
  }

  /** Every weight tensor once (lm_head is the embedding table when tied; absent biases skipped). */
  private weightTensors(): Set<Tensor> {
    const { embed, norm, lmHead, layers } = this.weights;
    const all = new Set<Tensor>([embed, norm, lmHead]);
    for (const l of layers) for (const t of Object.values(l)) if (t) all.add(t);
    return all;
  }
}
