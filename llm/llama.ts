/**
 * The LLaMA decoder (transformers' LlamaForCausalLM) with a KV cache, assembled from nn/ modules.
 *
 *   inputs_embeds [T, H]
 *     └ per layer l:   h = x + o_proj( attention( rope(q_proj(rmsNorm(x))), cache_k, cache_v ) )   nn/decoder-layer.ts
 *                      x = h + down_proj( silu(gate_proj(rmsNorm(h))) * up_proj(rmsNorm(h)) )     nn/attention.ts, nn/mlp.ts
 *   final rmsNorm → hidden [T, H] → lm_head → logits [T, vocab]
 *
 * Shapes (H = hidden_size, D = head_dim, nH / nKv = query / key-value heads, I = intermediate_size):
 *   q [T, nH·D]   k, v [T, nKv·D]   KV cache per layer [maxContext, nKv·D] (at the activations' precision, f16 or f32; allocated once)
 *
 * `forward(x)` appends x's T positions to the cache and returns their hidden states: the whole
 * prompt at once (prefill) or one token (decode). Each layer's activations go back to the buffer
 * pool when the layer returns (nn/tidy.ts), so a decode step reuses the same pooled buffers each
 * time and allocates no GPU memory (the spec checks `pool.heldBytes`). Nothing is submitted here:
 * the caller reads the chosen token id, which submits the whole step as one command buffer.
 *
 * The decoder knows nothing of images: llm/llava.ts builds inputs_embeds. `LlamaDecoder.load(cpuOps, …)`
 * is the same assembly over the ops' CPU references — the decoder's reference.
 */
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import type { LlavaConfig } from '../weights/config.js';
import { decoderTensorShapes, lmHeadName, llmNames, type DecoderShapeConfig } from '../weights/names.js';
import { runToEnd, sequentialSteps } from '../nn/chunks.js';
import { DecoderLayer } from '../nn/decoder-layer.js';
import { Embedding, Linear, RMSNorm } from '../nn/layers.js';
import { WeightLoader, type WeightLoadOptions, type WeightReader } from '../nn/loader.js';
import { gpuOf, opsFor, type TensorOps } from '../nn/ops.js';

/** The config fields the decoder reads (all from config.json): those that fix its tensors, and the rest. */
export type LlamaConfig = DecoderShapeConfig &
  Pick<LlavaConfig, 'rms_norm_eps' | 'rope_theta' | 'rope_scaling' | 'max_position_embeddings' | 'hidden_act'>;

export interface DecoderLoadOptions extends WeightLoadOptions {
  /** KV cache rows (positions). Default max_position_embeddings. */
  maxContext?: number;
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

export class LlamaDecoder<T = Tensor> {
  /** Positions currently held in the KV cache. */
  length = 0;

  private constructor(
    readonly ops: TensorOps<T>,
    readonly dims: DecoderDims,
    private readonly embedTokens: Embedding<T>, //  (vocab, H)  model.embed_tokens
    private readonly layers: DecoderLayer<T>[],
    private readonly norm: RMSNorm<T>, //           (H)         model.norm
    private readonly lmHead: Linear<T>, //          (vocab, H)  lm_head (= embed_tokens when tie_word_embeddings)
    private readonly weights: T[],
  ) {}

  /**
   * Loads the decoder weights (checking every shape against the config) and allocates the KV cache:
   * on a Gpu (the WGSL kernels) or on `cpuOps` (the CPU references; dtype 'f16' rounds the
   * matrices through f16 as the GPU would store them).
   */
  static load(gpu: Gpu, source: WeightReader, config: LlamaConfig, options?: DecoderLoadOptions): Promise<LlamaDecoder>;
  static load<T>(ops: TensorOps<T>, source: WeightReader, config: LlamaConfig, options?: DecoderLoadOptions): Promise<LlamaDecoder<T>>;
  static async load<T>(device: Gpu | TensorOps<T>, source: WeightReader, config: LlamaConfig, options: DecoderLoadOptions = {}): Promise<LlamaDecoder<T>> {
    const dims = decoderDims(config, options.maxContext);
    const expected = decoderTensors(config, (name) => source.has(name));
    const w = new WeightLoader(opsFor(device), source, expected, { part: 'LLM weights', config: 'config.json' }, options);
    return w.build(async () => {
      const embed = await Embedding.load(w, llmNames.embedTokens);
      const layers: DecoderLayer<T>[] = [];
      for (let l = 0; l < dims.layers; l++) layers.push(await DecoderLayer.load(w, l, dims));
      const norm = await RMSNorm.load(w, llmNames.finalNorm, dims.eps);
      const lmHead = await Linear.load(w, lmHeadName(config)); // the embedding table itself when tied
      return new LlamaDecoder(w.ops, dims, embed, layers, norm, lmHead, w.tensors);
    });
  }

  /** The GPU context (the WebGPU twin only: generation on the GPU needs it). */
  get gpu(): Gpu {
    const gpu = gpuOf(this.ops);
    if (!gpu) throw new Error('LlamaDecoder.gpu: this decoder runs on the CPU references');
    return gpu;
  }

  /** Token embeddings: ids [T] (numbers, checked against the vocabulary, or a u32 tensor on the GPU) → [T, H]. */
  embed(ids: readonly number[] | T): T {
    return this.embedTokens.forward(ids);
  }

  /**
   * Runs x [T, H] at positions length … length+T−1, appending their keys/values to the cache.
   * Returns the final-norm hidden states [T, H] (x is not disposed).
   */
  forward(x: T): T {
    return runToEnd(this.forwardSteps(x));
  }

  /**
   * The same, pausing after each layer (where llm/backend.ts submits the work so far and checks an
   * abort signal). Broken off, it frees its hidden state and leaves `length` as it was (the
   * positions it wrote lie beyond it, so they count as empty).
   */
  *forwardSteps(x: T): Generator<number, T> {
    const T = this.ops.shape(x)[0];
    if (this.length + T > this.dims.maxContext) {
      throw new Error(`LLM context full: ${this.length} cached + ${T} new positions > ${this.dims.maxContext}`);
    }
    const pos = this.length;
    const steps = [...this.layers.map((layer) => (h: T) => layer.forward(h, pos)), (h: T) => this.norm.forward(h)];
    const out = yield* sequentialSteps(this.ops, x, steps); // every layer, then the final RMSNorm
    this.length += T;
    return out;
  }

  /** lm_head over every row: [T, H] → [T, vocab], f32 whatever the activations' precision. */
  logits(hidden: T): T {
    return this.lmHead.forward(hidden, { outDtype: 'f32' });
  }

  /** lm_head over the last row only: [T, H] → [1, vocab] (what generation needs after a prefill). */
  lastLogits(hidden: T): T {
    const T = this.ops.shape(hidden)[0];
    if (T === 1) return this.logits(hidden);
    return this.ops.tidy(() => this.logits(this.ops.sliceRows(hidden, T - 1, 1)));
  }

  /** Forgets cached positions from `length` on (a new conversation: truncate(0)). */
  truncate(length: number): void {
    if (length < 0 || length > this.length) throw new Error(`truncate: ${length} is outside [0, ${this.length}]`);
    this.length = length;
  }

  /**
   * Weight bytes one decode step reads: every layer's matrices and norms, the final norm and lm_head,
   * and one row of the embedding table (all of it when lm_head is the tied table). Decode streams
   * these once per token, so they set its speed at memory bandwidth.
   */
  get weightBytesPerToken(): number {
    const table = this.ops.byteLength(this.embedTokens.table);
    const tied = this.lmHead.weight === this.embedTokens.table;
    return this.bytes.weights - (tied ? 0 : table - table / this.dims.vocab);
  }

  /** Bytes held by the weights and the KV cache. */
  get bytes(): { weights: number; kvCache: number } {
    const sum = (ts: T[]) => ts.reduce((s, t) => s + this.ops.byteLength(t), 0);
    return { weights: sum(this.weights), kvCache: sum(this.caches) };
  }

  dispose(): void {
    this.ops.flush(); // recorded work that reads (or, for synthetic weights, writes) a weight runs first
    for (const t of [...this.weights, ...this.caches]) this.ops.dispose(t);
  }

  private get caches(): T[] {
    return this.layers.flatMap((l) => l.selfAttn.caches);
  }
}
