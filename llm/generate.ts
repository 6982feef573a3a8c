/**
 * Autoregressive generation on top of a prefilled LlamaDecoder.
 *
 *   logits of the last prompt position
 *     → pick a token on the GPU (argmax, or temperature / top-k / top-p sampling with a seeded
 *       uniform draw; repetition penalty over the answer so far)
 *     → read back only that token id (this submits the whole step as one command buffer)
 *     → stop at EOS, a stop string, max_new_tokens or an aborted signal
 *     → else embed the id (straight from the GPU tensor) and run one decode step through the KV cache
 *
 * Pipelined (the default on the GPU): the token id never needs the CPU to feed the next step, so
 * step N+1 (embed id N on the GPU, forward, logits, pick N+1) is recorded and submitted while id N
 * is still on its way back, and the GPU always has the next step queued. The stop conditions are
 * then seen one step late: when id N ends the answer, step N+1 is discarded (its tensors freed, the
 * KV cache position rolled back as `truncate` does), so ids, text, finish reason and cache length
 * are exactly what the plain loop (`pipelined: false`, and the CPU backend) gives.
 *
 * The token stream is an async generator of TokenEvents whose return value is the GenerationResult;
 * `collect` drains it and calls an onToken callback. Text deltas are whole characters (partial UTF-8
 * sequences are held back) and never include (a prefix of) a stop string.
 */
import { Tensor } from '../runtime/tensor.js';
import { argmax, NON_FINITE_ID } from '../ops/argmax.js';
import { sample } from '../ops/sample.js';
import { appendId } from '../ops/appendId.js';
import type { LlamaDecoder } from './llama.js';
import { StreamDecoder, type TextTokenizer } from './tokenizer.js';

export interface SamplingOptions {
  /** Most tokens to generate. Default 256. */
  maxNewTokens?: number;
  /** 0 (default) is greedy argmax; > 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Keep only the k most likely tokens before sampling (0: all). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1: all). */
  topP?: number;
  /** Seed of the uniform draws: the same seed and options give the same tokens. */
  seed?: number;
  /**
   * > 1 discourages tokens already in the answer (HF: logit / p if > 0 else logit · p). As in LLaVA,
   * whose generate() starts from inputs_embeds with empty input_ids, the prompt is not penalised.
   */
  repetitionPenalty?: number;
  /** Generation stops before any of these strings; the answer excludes it. */
  stop?: string[];
  /** Aborting rejects the generation with the signal's reason (an AbortError by default). */
  signal?: AbortSignal;
  /**
   * Record and submit decode step N+1 before token N is read back (default true; used where the
   * backend can: WebGPU). The tokens and the KV cache are the same either way; false gives the
   * plain loop (for comparison).
   */
  pipelined?: boolean;
}

export interface TokenEvent {
  /** The token id just generated. */
  id: number;
  /** New answer text this token completes ('' while a character or a possible stop string is pending). */
  text: string;
}

export type FinishReason = 'eos' | 'stop' | 'length';

export interface GenerationResult {
  /** Generated token ids, EOS excluded. */
  ids: number[];
  text: string;
  finishReason: FinishReason;
  /** ms from the first pick to the first token id on the CPU; ms of the remaining decode steps. */
  firstTokenMs: number;
  decodeMs: number;
  /** Tokens per second over the decode steps after the first token. */
  decodeTokPerS: number;
}

/** Validated options with defaults applied. */
export function samplingDefaults(o: SamplingOptions): Required<Omit<SamplingOptions, 'signal' | 'seed'>> & { seed: number; signal?: AbortSignal } {
  const opts = {
    maxNewTokens: o.maxNewTokens ?? 256,
    temperature: o.temperature ?? 0,
    topK: o.topK ?? 0,
    topP: o.topP ?? 1,
    seed: o.seed ?? 0,
    repetitionPenalty: o.repetitionPenalty ?? 1,
    stop: o.stop ?? [],
    signal: o.signal,
    pipelined: o.pipelined ?? true,
  };
  const bad = (what: string) => {
    throw new Error(`generation options: ${what}`);
  };
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 1) bad(`maxNewTokens must be an integer ≥ 1, got ${opts.maxNewTokens}`);
  if (!(opts.temperature >= 0)) bad(`temperature must be ≥ 0, got ${opts.temperature}`);
  if (!Number.isInteger(opts.topK) || opts.topK < 0) bad(`topK must be an integer ≥ 0, got ${opts.topK}`);
  if (!(opts.topP > 0 && opts.topP <= 1)) bad(`topP must be in (0, 1], got ${opts.topP}`);
  if (!(opts.repetitionPenalty > 0)) bad(`repetitionPenalty must be > 0, got ${opts.repetitionPenalty}`);
  if (!Number.isInteger(opts.seed) || opts.seed < 0 || opts.seed > 0xffffffff) {
    bad(`seed must be an integer in 0 … 4294967295 (the sampler's 32-bit state; larger seeds would wrap), got ${opts.seed}`);
  }
  if (opts.stop.some((s) => s.length === 0)) bad('stop strings must not be empty');
  return opts;
}

/** Deterministic uniform [0, 1) stream (mulberry32): the only randomness in sampling. */
export function uniformStream(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** How to choose one token: the sampling options plus this step's uniform draw. */
export interface PickOptions {
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  /** Uniform draw in [0, 1) for this step (from the seeded stream). */
  u: number;
}

/**
 * One device's half of the decode loop. The loop (generateWith) owns the policy (stopping,
 * streaming, the seeded draws); a backend owns the logits and the KV cache.
 */
export interface TokenSteps {
  /** Chooses the next token from the current logits (consuming them); resolves with its id. */
  pick(choice: PickOptions): Promise<number>;
  /** Feeds the last chosen token through one decode step; its logits become current. */
  feed(): void;
  /** Frees whatever is still held (called once, however the loop ends). */
  close(): void;
  /** Present where the loop can run one step ahead (WebGPU): then it pipelines, unless told not to. */
  readonly ahead?: StepsAhead;
}

/**
 * The pipelined loop's half of a backend: step N+1 is recorded and submitted before id N is known.
 * At most one step is ahead at a time; `close()` discards it (and rolls the KV cache back) unless
 * `keep()` was called.
 */
export interface StepsAhead {
  /**
   * Chooses the next token from the current logits (consuming them), submits the work and starts
   * reading its id back; the promise resolves with the id (await it after recording the next step).
   */
  startPick(choice: PickOptions): Promise<number>;
  /** Whether the KV cache has room for one more step (else only the plain `feed`, which refuses it). */
  readonly hasRoom: boolean;
  /** Feeds the last started pick's id through one decode step before the id is known (its logits become current). */
  feedAhead(): void;
  /** The id fed ahead continued the answer: the step it fed is kept. */
  keep(): void;
}

/**
 * The WebGPU backend: logits, the choice and the next step's embedding never leave the GPU; only the
 * chosen id is read back. The answer so far lives in a u32 buffer allocated once (maxNewTokens long)
 * for the repetition penalty: the plain loop writes each id into it from the CPU once read; the
 * pipelined loop appends it on the GPU (ops/appendId.ts) as the step it feeds is recorded, since the
 * next pick runs before the id reaches the CPU.
 */
export class GpuSteps implements TokenSteps, StepsAhead {
  private readonly recent: Tensor | null;
  private count = 0;
  private chosen: Tensor | null = null;
  /** The chosen id was started with startPick: the feed appends it to `recent` on the GPU (the CPU has not seen it). */
  private appendOnFeed = false;
  /** A step fed ahead and not kept: close() discards it. */
  private unkept = false;

  constructor(
    private readonly decoder: LlamaDecoder,
    private logits: Tensor | null,
    maxNewTokens: number,
    repetitionPenalty: number,
  ) {
    this.recent = repetitionPenalty !== 1 ? decoder.gpu.empty([maxNewTokens], 'u32', 'recent-ids') : null;
  }

  get ahead(): StepsAhead {
    return this;
  }

  async pick(c: PickOptions): Promise<number> {
    this.choose(c);
    this.appendOnFeed = false;
    const id = (await this.chosen!.read())[0]; // submits the step; the only read-back
    if (this.recent) this.decoder.gpu.write(this.recent, Uint32Array.of(id), this.count++);
    return id;
  }

  startPick(c: PickOptions): Promise<number> {
    this.choose(c);
    this.appendOnFeed = true;
    const id = this.decoder.gpu.readLater(this.chosen!).then((ids) => ids[0]); // submitted now, awaited later
    id.catch(() => {}); // a discarded step's read may fail unobserved
    return id;
  }

  /** Records the pick (argmax, or sampling over the answer's ids so far) from the current logits, consuming them. */
  private choose(c: PickOptions): void {
    const gpu = this.decoder.gpu;
    const logits = this.logits!;
    this.logits = null;
    try {
      this.chosen =
        c.temperature === 0 && c.repetitionPenalty === 1
          ? argmax(gpu, logits)
          : sample(gpu, logits, {
              ...c,
              // A view of the answer's ids so far (never disposed through the view).
              recentIds: this.recent ? new Tensor(gpu, this.recent.buffer, [this.count], 'u32') : undefined,
            });
    } finally {
      logits.dispose(); // consumed, even when the op refused them
    }
  }

  get hasRoom(): boolean {
    return this.decoder.length + 1 <= this.decoder.dims.maxContext;
  }

  feedAhead(): void {
    this.feed();
    this.unkept = true;
  }

  keep(): void {
    this.unkept = false;
  }

  feed(): void {
    if (this.recent && this.appendOnFeed) appendId(this.decoder.gpu, this.chosen!, this.recent, this.count++); // before the next pick reads it
    this.appendOnFeed = false;
    const x = this.decoder.embed(this.chosen!); //  [1, H], from the id where it already is (on the GPU)
    this.chosen!.dispose();
    this.chosen = null;
    let hidden: Tensor;
    try {
      hidden = this.decoder.forward(x); //           one step through the KV cache (refused when it is full)
    } finally {
      x.dispose();
    }
    this.logits = this.decoder.logits(hidden); //  [1, vocab]
    hidden.dispose();
  }

  close(): void {
    // A step fed ahead whose id ended the answer: its position counts as empty again, as after truncate.
    if (this.unkept) this.decoder.truncate(this.decoder.length - 1);
    this.unkept = false;
    this.logits?.dispose();
    this.chosen?.dispose();
    this.recent?.dispose();
    // A step recorded but not submitted (the consumer broke off): submit it now, so that a later
    // queue write into a recycled buffer cannot land before the step's reads.
    this.decoder.gpu.flush();
  }
}

/** Index where the earliest stop string starts in `text`, or −1. */
function findStop(text: string, stops: readonly string[]): number {
  let at = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

/** Length of the longest suffix of `text` that is a proper prefix of some stop string (held back). */
function pendingStopLength(text: string, stops: readonly string[]): number {
  let longest = 0;
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > longest; n--) {
      if (text.endsWith(s.slice(0, n))) {
        longest = n;
        break;
      }
    }
  }
  return longest;
}

/** The rejection an aborted signal gives: its reason, or an AbortError. */
export function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('generation aborted', 'AbortError');
}

/**
 * Generates from a decoder whose cache already holds the prompt, given the prompt's last logits
 * [1, vocab] (consumed). Yields one TokenEvent per generated token; returns the result.
 * Afterwards the cache holds every generated id that was followed by another step: all of them when
 * the answer ended at EOS (never fed itself), all but the last when it ended at a stop string or
 * the length limit. (ChatSession feeds that last id at the start of the next turn.)
 */
export async function* generateTokens(
  decoder: LlamaDecoder,
  tokenizer: TextTokenizer,
  promptLogits: Tensor,
  options: SamplingOptions,
  eosIds: readonly number[] = [tokenizer.eosId],
): AsyncGenerator<TokenEvent, GenerationResult> {
  const opts = samplingDefaults(options); // before any GPU work
  return yield* generateWith(new GpuSteps(decoder, promptLogits, opts.maxNewTokens, opts.repetitionPenalty), tokenizer, opts, eosIds);
}

/**
 * The decode loop over any backend: choose, stop or stream, feed. Pipelined (where the backend has
 * `ahead` and `pipelined` is not false), step N+1 is fed with id N and submitted before id N is
 * awaited; if id N ends the answer, `close()` discards that step.
 */
export async function* generateWith(
  steps: TokenSteps,
  tokenizer: TextTokenizer,
  options: SamplingOptions,
  eosIds: readonly number[] = [tokenizer.eosId],
): AsyncGenerator<TokenEvent, GenerationResult> {
  let opts: ReturnType<typeof samplingDefaults>;
  try {
    opts = samplingDefaults(options);
  } catch (e) {
    steps.close();
    throw e;
  }
  const ahead = opts.pipelined ? steps.ahead : undefined;
  const uniform = uniformStream(opts.seed);
  // Each pick draws the next uniform, in step order (pipelined too: step N+1's draw follows step N's).
  const draw = (): PickOptions => ({ temperature: opts.temperature, topK: opts.topK, topP: opts.topP, repetitionPenalty: opts.repetitionPenalty, u: uniform() });
  const detok = new StreamDecoder(tokenizer);
  const ids: number[] = [];
  let text = '';
  let emitted = 0;
  let finishReason: FinishReason = 'length';
  const start = performance.now();
  let firstAt = 0;
  /** Pipelined: the id of the step already recorded and submitted ahead, on its way back. */
  let pending: Promise<number> | null = null;
  try {
    for (;;) {
      if (opts.signal?.aborted) throw abortError(opts.signal);
      const next = pending ?? (ahead ? ahead.startPick(draw()) : steps.pick(draw()));
      pending = null;
      // Pipelined: record and submit the following step now, fed with this id before it is known
      // (unless this id is the last one allowed, or the cache is full: the plain feed below refuses that).
      if (ahead && ids.length + 1 < opts.maxNewTokens && ahead.hasRoom) {
        ahead.feedAhead();
        pending = ahead.startPick(draw());
      }
      const id = await next;
      if (id === NON_FINITE_ID) {
        const step = ids.length === 0 ? "the prefill (the prompt's last position)" : `decode step ${ids.length} (after ${ids.length} generated tokens)`;
        throw new Error(
          `non-finite logits (NaN or +Inf) at ${step}: the weights or activations overflowed or hold NaN, so no token can be chosen; ` +
            `check the weights with 'convllava inspect --check-values', or try --dtype f32`,
        );
      }
      if (ids.length === 0) firstAt = performance.now();
      if (eosIds.includes(id)) {
        finishReason = 'eos';
        break;
      }
      ids.push(id);
      text += detok.push(id);

      const stopAt = findStop(text, opts.stop);
      if (stopAt >= 0) {
        text = text.slice(0, stopAt);
        if (text.length > emitted) yield { id, text: text.slice(emitted) };
        finishReason = 'stop';
        break;
      }
      const safe = text.length - pendingStopLength(text, opts.stop);
      yield { id, text: safe > emitted ? text.slice(emitted, safe) : '' };
      emitted = Math.max(emitted, safe);
      if (ids.length >= opts.maxNewTokens) break;
      if (opts.signal?.aborted) throw abortError(opts.signal);
      if (pending) ahead!.keep(); // the step fed ahead with this id stands
      else steps.feed();
    }
  } finally {
    steps.close(); // discards a step fed ahead and not kept: however the loop ended, the cache is the plain loop's
    // Its id is still on the way back: wait for it, so that no read is in flight once the
    // generation has returned (a device destroyed under a pending mapAsync aborts Dawn's Node binding).
    await pending?.catch(() => {});
  }
  if (finishReason !== 'stop') text = detok.text;
  const end = performance.now();
  const decodeMs = ids.length > 0 ? end - firstAt : 0;
  return {
    ids,
    text,
    finishReason,
    firstTokenMs: firstAt - start,
    decodeMs,
    decodeTokPerS: ids.length > 1 ? ((ids.length - 1) / decodeMs) * 1000 : 0,
  };
}

/**
 * Drains a token stream, calling `onToken` for each event; returns the generation result. A
 * callback that throws ends the stream (its finally blocks free the GPU and release the model) and
 * its error reaches the caller.
 */
export async function collect<R>(stream: AsyncGenerator<TokenEvent, R>, onToken?: (e: TokenEvent) => void): Promise<R> {
  for (;;) {
    const step = await stream.next();
    if (step.done) return step.value;
    try {
      onToken?.(step.value);
    } catch (e) {
      await stream.return(undefined as never);
      throw e;
    }
  }
}
