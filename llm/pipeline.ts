/**
 * ConvLLaVA end to end: image + question in, streamed answer out.
 *
 *   image ─ loadImage → preprocess (CPU, PIL-exact) → pixel_values [3, R, R]
 *         ─ vision tower → features [Tv, C] ─ projector → image rows [Tv, H]       backend.encodeImage
 *   question ─ vicuna_v1 prompt → tokenizer_image_token → ids with −200
 *   inputs_embeds = text embeddings with the image rows spliced in at −200 [T, H]
 *     → LLaMA prefill into the KV cache                                             backend.prefill
 *     → decode loop (generateWith): choose, stream, stop, feed                       TokenSteps
 *
 * The backend is WebGPU (llm/backend.ts, default) or the ops' CPU references (llm/cpu-backend.ts).
 * One model holds one KV cache. A ChatSession owns it while it talks; its next turn prefills only
 * the new ids. If another session or a one-shot generate used the cache in between, the session
 * re-prefills its whole history (it keeps its image rows for that).
 *
 * Browser note: nothing here touches the file system; a model folder path is opened through
 * weights/checkpoint.ts, imported only when a path is given.
 */
import { wrongDTypeMessage } from '../weights/quantized.js';
import { Gpu } from '../runtime/gpu.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import { towerStride, visionTowerConfig } from '../convnext/config.js';
import { loadImage, preprocess, preprocessorFor, type RawImage } from '../convnext/preprocess.js';
import { GpuBackend, type ImageRows, type ModelBackend } from './backend.js';
import { abortError, collect, generateWith, samplingDefaults, type FinishReason, type GenerationResult, type SamplingOptions, type TokenEvent } from './generate.js';
import { checkQuestion, conversationIds, followUpIds, imageQuestionIds, IMAGE_TOKEN_INDEX, type Turn } from './prompt.js';
import { LlamaTokenizer, type TextTokenizer } from './tokenizer.js';
import { defaultPrecision, type Precision } from '../ops/precision.js';

export type ImageInput = string | Uint8Array | RawImage;

export interface LoadProgress {
  /** Which part is loading. */
  stage: 'vision' | 'projector' | 'llm';
  /** Tensors of this stage on the GPU so far, and in all. */
  done: number;
  total: number;
}

export interface LoadOptions {
  /**
   * Storage of the weight matrices. Default 'f16' (accumulation is always f32). 'q8' / 'q4' quantize
   * the decoder's linears, lm_head, the token embedding and the projector while loading (groups of
   * 32 along K, f16 scales: runtime/quant.ts); the vision tower stays f16 unless `quantizeVision`.
   */
  dtype?: 'f32' | 'f16' | 'q8' | 'q4';
  /**
   * Storage precision of the activations and the KV cache, apart from the weights' dtype: 'f16'
   * (default where the adapter has `shader-f16`) halves the bytes every bandwidth-bound kernel moves
   * and the KV cache; 'f32' (default elsewhere, always available) matches the PyTorch fixtures to 1e-4.
   * Sums, norm statistics, softmax and logits are f32 either way (ops/precision.ts). The CPU backend is f32.
   */
  precision?: Precision;
  /** With dtype q8 / q4: quantize the vision tower's pointwise linears too. */
  quantizeVision?: boolean;
  /** KV cache length in positions. Default max_position_embeddings. */
  maxContext?: number;
  onProgress?: (p: LoadProgress) => void;
  /** 'webgpu' (default): the WGSL kernels; 'cpu': the ops' CPU references (slow; checking, teaching). */
  backend?: 'webgpu' | 'cpu';
  /** An existing GPU context (tests share one); default: a new one, destroyed by dispose(). */
  gpu?: Gpu;
  /** Tokenizer; default the bundled LLaMA/Vicuna SentencePiece vocabulary. */
  tokenizer?: TextTokenizer;
}

export interface GenerateOptions extends SamplingOptions {
  /** Called with each token as it is generated (the stream() iterator yields the same events). */
  onToken?: (e: TokenEvent) => void;
}

/** How a conversation opens: its image, earlier exchanges and system message (all optional). */
export interface ChatOptions {
  /** A PNG/JPEG path, its bytes, raw RGB/RGBA pixels, or an image `encodeImage` already encoded.
   * Optional: text-only when absent. */
  image?: ImageInput | EncodedImage;
  /** Exchanges before the first question (the image goes in front of the first user message, as in LLaVA). */
  history?: Turn[];
  /** Replaces the vicuna_v1 system message. */
  system?: string;
}

export interface GenerateRequest extends GenerateOptions, ChatOptions {
  prompt: string;
}

export interface Timings {
  preprocess_ms: number;
  image_encode_ms: number;
  prefill_ms: number;
  prefill_tok_s: number;
  decode_tok_s: number;
  /** From the request to the first token id on the CPU. */
  ttft_ms: number;
}

export interface GenerateResult {
  text: string;
  /** Generated ids (EOS excluded). */
  ids: number[];
  /** The prompt ids of this turn, −200 where the image rows go. */
  inputIds: number[];
  visualTokens: number;
  finishReason: FinishReason;
  timings: Timings;
}

/**
 * The generation that holds a model (it has one KV cache, so one generation at a time). The rule
 * for an abandoned stream: a generation suspended at a token, waiting for its consumer to ask for
 * the next one, is *idle*; a new request on the model cancels an idle generation (its consumer gets
 * a "cancelled" error if it ever comes back) instead of failing with "already running". A
 * generation that is computing is never cancelled that way: the new request fails.
 */
export interface Hold {
  idle: boolean;
  /** Set when a newer request cancelled this generation; thrown when its consumer comes back. */
  cancelled: Error | null;
  /** Ends the generation from outside: frees its GPU steps, settles its history, releases the model. */
  cancel(): Promise<void>;
}

export class ConvLlava {
  private holder: Hold | null = null;
  private disposed = false;
  /** The session whose conversation the KV cache currently holds. */
  cacheOwner: ChatSession | null = null;
  /** Ids that end an answer: config.json's and generation_config.json's eos_token_id (number or list). */
  readonly eosIds: number[];

  private constructor(
    readonly backend: ModelBackend,
    readonly checkpoint: Checkpoint,
    readonly tokenizer: TextTokenizer,
    /** The GPU context when the backend is webgpu and load() created it (destroyed by dispose). */
    private readonly ownedGpu: Gpu | null,
    /** Visual tokens per image: (resolution / tower stride)². */
    readonly visualTokens: number,
    /** ms spent loading. */
    readonly loadMs: number,
  ) {
    const fromGeneration = checkpoint.generationConfig?.eos_token_id;
    const ids = [checkpoint.config.eos_token_id, ...(Array.isArray(fromGeneration) ? fromGeneration : [fromGeneration])];
    this.eosIds = [...new Set(ids.filter((id): id is number => Number.isInteger(id)))];
  }

  /** The GPU context (webgpu backend), else null. */
  /** Storage precision of the activations and the KV cache ('f32' on the CPU backend). */
  get precision(): Precision {
    return this.backend.precision;
  }

  get gpu(): Gpu | null {
    return this.backend instanceof GpuBackend ? this.backend.gpu : null;
  }

  /** Loads a model folder (a path, Node) or an opened Checkpoint. */
  static async load(model: string | Checkpoint, options: LoadOptions = {}): Promise<ConvLlava> {
    const start = performance.now();
    const ckpt = typeof model === 'string' ? await (await import('../weights/checkpoint.js')).Checkpoint.open(model) : model;
    if (ckpt.quantizedAs && options.dtype !== ckpt.quantizedAs) {
      // A folder written by `convllava quantize` loads only in its own format (the default dtype included).
      if (typeof model === 'string') await ckpt.close();
      throw new Error(wrongDTypeMessage(ckpt.dir, ckpt.quantizedAs, options.dtype ?? (options.backend === 'cpu' ? 'f32' : 'f16')));
    }
    const stride = towerStride(visionTowerConfig(ckpt.config, ckpt.visionConfig));
    const visualTokens = (ckpt.config.mm_vision_resolution / stride) ** 2;
    const tokenizer = options.tokenizer ?? new LlamaTokenizer();
    // Each stage reports per tensor, then once more as complete when its load has returned.
    const totals = { vision: 1, projector: 1, llm: 1 };
    const progress = (stage: LoadProgress['stage'], done: number, total: number) => {
      totals[stage] = total;
      options.onProgress?.({ stage, done, total });
    };
    const complete = (stage: LoadProgress['stage']) => options.onProgress?.({ stage, done: totals[stage], total: totals[stage] });

    if (options.backend === 'cpu') {
      if (options.precision === 'f16') {
        if (typeof model === 'string') await ckpt.close();
        throw new Error("ConvLlava.load: the CPU backend runs the f32 references; precision 'f16' is for the webgpu backend");
      }
      const { CpuBackend } = await import('./cpu-backend.js');
      const backend = await CpuBackend.load(ckpt, { dtype: options.dtype, quantizeVision: options.quantizeVision, maxContext: options.maxContext, onProgress: complete });
      return new ConvLlava(backend, ckpt, tokenizer, null, visualTokens, performance.now() - start);
    }
    const gpu = options.gpu ?? (await Gpu.create());
    try {
      let stage: LoadProgress['stage'] | null = null;
      const backend = await GpuBackend.load(gpu, ckpt, {
        dtype: options.dtype ?? 'f16',
        precision: options.precision ?? defaultPrecision(gpu),
        quantizeVision: options.quantizeVision,
        maxContext: options.maxContext,
        onProgress: (next, done, total) => {
          if (stage && stage !== next) complete(stage);
          stage = next;
          progress(next, done, total);
        },
      });
      complete('llm');
      return new ConvLlava(backend, ckpt, tokenizer, options.gpu ? null : gpu, visualTokens, performance.now() - start);
    } catch (e) {
      if (!options.gpu) gpu.destroy();
      throw e;
    }
  }

  /** Answers one question about an image; resolves with the whole result. */
  generate(request: GenerateRequest): Promise<GenerateResult> {
    return collect(this.stream(request), request.onToken);
  }

  /** The same as generate, as an async iterator of token events whose return value is the result. */
  async *stream(request: GenerateRequest): AsyncGenerator<TokenEvent, GenerateResult> {
    const session = this.chat({ image: request.image, history: request.history, system: request.system });
    session.oneShot = true;
    try {
      return yield* session.stream(request.prompt, request);
    } finally {
      session.dispose();
    }
  }

  /** A multi-turn conversation about one image (or none). */
  chat(options: ChatOptions = {}): ChatSession {
    return new ChatSession(this, options.image, options);
  }

  /** Fails when the model was disposed. */
  checkUsable(): void {
    if (this.disposed) throw new Error('ConvLlava: this model was disposed (its GPU buffers are freed); load it again');
  }

  /**
   * Gives the model to one generation (one KV cache: generations cannot interleave). An idle
   * generation (suspended at a token; see Hold) is cancelled first; a computing one makes this fail.
   */
  async acquire(hold: Hold): Promise<void> {
    this.checkUsable();
    const current = this.holder;
    if (current?.idle) {
      current.cancelled = new Error(
        'ConvLlava: this generation was cancelled: its consumer stopped asking for tokens and a newer request took the model',
      );
      await current.cancel();
    }
    if (this.holder) throw new Error('ConvLlava: a generation is already running on this model; await it first');
    this.checkUsable();
    this.holder = hold;
  }

  release(hold: Hold): void {
    if (this.holder === hold) this.holder = null;
  }

  /**
   * Preprocesses and encodes an image once (vision tower + projector), for several independent
   * questions: `generate({ image: encoded, prompt })` then skips the encode. The caller disposes it.
   */
  async encodeImage(image: ImageInput, options: { signal?: AbortSignal } = {}): Promise<EncodedImage> {
    const hold: Hold = { idle: false, cancelled: null, cancel: async () => {} };
    await this.acquire(hold);
    try {
      const pixels = await this.preprocessImage(image);
      return new EncodedImage(this, await this.backend.encodeImage(pixels.pixelValues, pixels.size, options.signal));
    } finally {
      this.release(hold);
    }
  }

  /** Decoded and preprocessed pixels [3, R, R]; an image that cannot be used is an ImageInputError. */
  async preprocessImage(image: ImageInput) {
    const { preprocessorConfig, config } = this.checkpoint;
    try {
      return preprocess(await loadImage(image), preprocessorFor(preprocessorConfig, config.mm_vision_resolution));
    } catch (e) {
      throw new ImageInputError((e as Error).message, { cause: e });
    }
  }

  /** Whether dispose() has run. */
  get isDisposed(): boolean {
    return this.disposed;
  }

  /**
   * Releases every GPU buffer (and the GPU context if load created it) and closes the weight files.
   * An idle generation is cancelled first; while one is computing, dispose fails (abort it first).
   */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    if (this.holder?.idle) {
      this.holder.cancelled = new Error('ConvLlava: this generation was cancelled: the model was disposed');
      await this.holder.cancel();
    }
    if (this.holder) throw new Error('ConvLlava.dispose: a generation is running; abort it (signal) or await it first');
    this.disposed = true;
    await this.backend.dispose();
    await this.checkpoint.close();
    this.ownedGpu?.destroy();
  }
}

/** Refuses a turn that would not fit the KV cache, with the counts. */
function checkContext(cached: number, text: number, visual: number, newTokens: number, context: number, maxPositions: number): void {
  const needed = cached + text + visual + newTokens;
  if (needed > context) {
    throw new Error(
      `prompt too long: ${cached} cached + ${text} text tokens + ${visual} visual tokens + ${newTokens} new tokens = ${needed} ` +
        `> context ${context} (max_position_embeddings ${maxPositions}); ask for fewer new tokens or start a new chat`,
    );
  }
}

/**
 * Everything about a first question that can be checked from the configs alone, before any weight
 * is loaded (the CLI calls it so that a bad option or an over-long prompt fails in milliseconds, not
 * after minutes of loading): the sampling options, a typed "<image>", and the context length.
 */
export function checkFirstTurn(
  ckpt: Checkpoint,
  question: string,
  options: SamplingOptions & { hasImage: boolean; maxContext?: number; tokenizer?: TextTokenizer },
): void {
  const opts = samplingDefaults(options);
  checkQuestion(question);
  const stride = towerStride(visionTowerConfig(ckpt.config, ckpt.visionConfig));
  const visual = options.hasImage ? (ckpt.config.mm_vision_resolution / stride) ** 2 : 0;
  const ids = imageQuestionIds(options.tokenizer ?? new LlamaTokenizer(), question, options.hasImage);
  const maxPositions = ckpt.config.max_position_embeddings;
  checkContext(0, ids.length - (options.hasImage ? 1 : 0), visual, opts.maxNewTokens, options.maxContext ?? maxPositions, maxPositions);
}

/** A failure to read, decode or encode a chat's image (the CLI clears the image and goes on). */
export class ImageInputError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ImageInputError';
  }
}

/** A conversation: each `send` / `stream` is one user turn; the KV cache carries the history. */
export class ChatSession {
  /** Every id of the conversation so far (−200 for the image), including uncached generated ids. */
  readonly history: number[] = [];
  /** Generated ids not yet fed through the decoder (the last token of each answer). */
  private uncached: number[] = [];
  private imageRows: ImageRows | null = null;
  private imagePending: boolean;
  private disposed = false;
  /** A one-shot generate/stream session: disposed with its turn, also when that turn is cancelled. */
  oneShot = false;

  constructor(
    readonly model: ConvLlava,
    private readonly image: ImageInput | EncodedImage | undefined,
    private readonly opening: Pick<ChatOptions, 'history' | 'system'> = {},
  ) {
    if (image instanceof EncodedImage && image.model !== model) throw new Error('ChatSession: the EncodedImage belongs to another model');
    this.imagePending = image !== undefined && !(image instanceof EncodedImage);
  }

  /** The image rows to prefill: this session's own, or the borrowed EncodedImage's. */
  private rows(): ImageRows | null {
    return this.image instanceof EncodedImage ? this.image.rows : this.imageRows;
  }

  send(question: string, options: GenerateOptions = {}): Promise<GenerateResult> {
    return collect(this.stream(question, options), options.onToken);
  }

  async *stream(question: string, options: GenerateOptions = {}): AsyncGenerator<TokenEvent, GenerateResult> {
    if (this.disposed) throw new Error('ChatSession: used after dispose()');
    const { model } = this;
    model.checkUsable();
    checkQuestion(question);
    const { backend, tokenizer } = model;
    const opts = samplingDefaults(options);
    const requestStart = performance.now();

    let tokens: AsyncGenerator<TokenEvent, GenerationResult> | null = null;
    let result: GenerationResult | undefined;
    const generated: number[] = [];
    let lengthBefore = 0;
    let settled = true; // nothing to settle until the prefill has run
    // However the turn ends (done, broken off, aborted, failed, cancelled from outside), the answer so
    // far joins the conversation once; the cache holds those of its ids that were fed back.
    const settle = () => {
      if (settled) return;
      settled = true;
      const answer = result ? result.ids : generated;
      this.history.push(...answer);
      this.uncached = answer.slice(backend.cacheLength - lengthBefore);
    };
    const hold: Hold = {
      idle: false,
      cancelled: null,
      cancel: async () => {
        await tokens?.return(undefined as never); // suspended at its yield: its finally frees the GPU steps
        settle();
        if (model.cacheOwner === this) model.cacheOwner = null;
        model.release(hold);
        if (this.oneShot) this.dispose();
      },
    };
    await model.acquire(hold);
    try {
      const firstTurn = this.history.length === 0;
      const turnIds = firstTurn
        ? conversationIds(tokenizer, [...(this.opening.history ?? []), { user: question }], this.image !== undefined, this.opening.system)
        : followUpIds(tokenizer, question);

      // What must be prefilled: only the new ids if the cache still holds this conversation, else all of it.
      const cacheIsOurs = !firstTurn && model.cacheOwner === this;
      const prefillIds = cacheIsOurs ? [...this.uncached, ...turnIds] : [...this.history, ...turnIds];
      const cachedRows = cacheIsOurs ? backend.cacheLength : 0;
      const imageRowsIn = prefillIds.includes(IMAGE_TOKEN_INDEX) ? model.visualTokens : 0;
      const textTokens = prefillIds.length - (imageRowsIn ? 1 : 0);
      const prefillRows = textTokens + imageRowsIn;
      checkContext(cachedRows, textTokens, imageRowsIn, opts.maxNewTokens, backend.maxContext, model.checkpoint.config.max_position_embeddings);

      let preprocessMs = 0;
      let imageEncodeMs = 0;
      if (this.imagePending) {
        const t0 = performance.now();
        const pixels = await model.preprocessImage(this.image as ImageInput); // [3, R, R]
        const t1 = performance.now();
        if (opts.signal?.aborted) throw abortError(opts.signal);
        this.imageRows = await backend.encodeImage(pixels.pixelValues, pixels.size, opts.signal); //  [Tv, H]
        preprocessMs = t1 - t0;
        imageEncodeMs = performance.now() - t1;
        this.imagePending = false;
      }

      // Prefill: the new rows go through every layer at once, appending to the KV cache.
      const prefillStart = performance.now();
      model.cacheOwner = this;
      const steps = await backend.prefill(prefillIds, imageRowsIn ? this.rows() : null, cachedRows, opts);
      this.history.push(...turnIds);
      this.uncached = [];
      lengthBefore = backend.cacheLength;
      settled = false;

      tokens = generateWith(steps, tokenizer, opts, model.eosIds);
      try {
        for (;;) {
          const step = await tokens.next();
          if (step.done) {
            result = step.value;
            break;
          }
          generated.push(step.value.id);
          hold.idle = true;
          try {
            yield step.value;
          } finally {
            hold.idle = false;
          }
          if (hold.cancelled) throw hold.cancelled;
        }
      } finally {
        await tokens.return(undefined as never); // the consumer stopped early: release the steps' buffers
        settle();
      }
      const prefillMs = performance.now() - prefillStart - result.decodeMs;
      return {
        text: result.text.trim(),
        ids: result.ids,
        inputIds: turnIds,
        visualTokens: imageRowsIn,
        finishReason: result.finishReason,
        timings: {
          preprocess_ms: preprocessMs,
          image_encode_ms: imageEncodeMs,
          prefill_ms: prefillMs,
          prefill_tok_s: (prefillRows / prefillMs) * 1000,
          decode_tok_s: result.decodeTokPerS,
          ttft_ms: performance.now() - requestStart - result.decodeMs,
        },
      };
    } catch (e) {
      // Aborted or failed mid-turn: the history keeps what was said (above); rebuild the cache from it next time.
      if (model.cacheOwner === this) model.cacheOwner = null;
      throw e;
    } finally {
      model.release(hold);
    }
  }

  dispose(): void {
    this.disposed = true;
    if (this.imageRows) this.model.backend.releaseImage(this.imageRows);
    this.imageRows = null;
    if (this.model.cacheOwner === this) this.model.cacheOwner = null;
  }
}

/** An image encoded once by `ConvLlava.encodeImage`: its projected rows [Tv, H], reusable by any number of turns. */
export class EncodedImage {
  private released = false;

  constructor(
    readonly model: ConvLlava,
    private readonly imageRows: ImageRows,
  ) {}

  get rows(): ImageRows {
    if (this.released) throw new Error('EncodedImage: used after dispose()');
    return this.imageRows;
  }

  /** Frees the rows (a no-op once the model itself is disposed: its buffers are gone with it). */
  dispose(): void {
    if (this.released) return;
    this.released = true;
    if (!this.model.isDisposed) this.model.backend.releaseImage(this.imageRows);
  }
}
