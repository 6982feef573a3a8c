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
 * The token stream is an async generator of TokenEvents whose return value is the GenerationResult;
 * `collect` drains it and calls an onToken callback. Text deltas are whole characters (partial UTF-8
 * sequences are held back) and never include (a prefix of) a stop string.
 */
import type { Gpu } from '../runtime/gpu.js';
import { Tensor } from '../runtime/tensor.js';
import { argmax } from '../ops/argmax.js';
import { sample } from '../ops/sample.js';
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
  };
  const bad = (what: string) => {
    throw new Error(`generation options: ${what}`);
  };
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 1) bad(`maxNewTokens must be an integer ≥ 1, got ${opts.maxNewTokens}`);
  if (!(opts.temperature >= 0)) bad(`temperature must be ≥ 0, got ${opts.temperature}`);
  if (!Number.isInteger(opts.topK) || opts.topK < 0) bad(`topK must be an integer ≥ 0, got ${opts.topK}`);
  if (!(opts.topP > 0 && opts.topP <= 1)) bad(`topP must be in (0, 1], got ${opts.topP}`);
  if (!(opts.repetitionPenalty > 0)) bad(`repetitionPenalty must be > 0, got ${opts.repetitionPenalty}`);
  if (!Number.isInteger(opts.seed)) bad(`seed must be an integer, got ${opts.seed}`);
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

/**
 * Chooses each next token on the GPU. The ids generated so far live in a u32 buffer allocated once
 * (maxNewTokens long) for the repetition penalty.
 */
class TokenPicker {
  private readonly uniform: () => number;
  private readonly recent: Tensor | null;
  private count = 0;

  constructor(
    private readonly gpu: Gpu,
    private readonly opts: ReturnType<typeof samplingDefaults>,
  ) {
    this.uniform = uniformStream(opts.seed);
    this.recent = opts.repetitionPenalty !== 1 ? gpu.empty([opts.maxNewTokens], 'u32', 'recent-ids') : null;
  }

  /** logits [1, vocab] → u32 [1] on the GPU. */
  pick(logits: Tensor): Tensor {
    const { temperature, topK, topP, repetitionPenalty } = this.opts;
    if (temperature === 0 && repetitionPenalty === 1) return argmax(this.gpu, logits);
    return sample(this.gpu, logits, {
      temperature,
      topK,
      topP,
      repetitionPenalty,
      // A view of the ids generated so far (the buffer is maxNewTokens long; never disposed through the view).
      recentIds: this.recent ? new Tensor(this.gpu, this.recent.buffer, [this.count], 'u32') : undefined,
      u: this.uniform(),
    });
  }

  remember(id: number): void {
    if (!this.recent) return;
    this.gpu.write(this.recent, Uint32Array.of(id), this.count);
    this.count++;
  }

  dispose(): void {
    this.recent?.dispose();
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

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('generation aborted', 'AbortError');
}

/**
 * Generates from a decoder whose cache already holds the prompt, given the prompt's last logits
 * [1, vocab] (disposed here). Yields one TokenEvent per generated token; returns the result.
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
  const opts = samplingDefaults(options);
  const gpu = decoder.gpu;
  const picker = new TokenPicker(gpu, opts);
  const detok = new StreamDecoder(tokenizer);
  const ids: number[] = [];
  let text = '';
  let emitted = 0;
  let finishReason: FinishReason = 'length';
  let logits: Tensor | null = promptLogits;
  const start = performance.now();
  let firstAt = 0;
  try {
    for (;;) {
      if (opts.signal?.aborted) throw abortError(opts.signal);
      const chosen = picker.pick(logits!);
      logits!.dispose();
      logits = null;
      const id = (await chosen.read())[0]; // submits the step; the only read-back
      if (ids.length === 0) firstAt = performance.now();
      if (eosIds.includes(id)) {
        chosen.dispose();
        finishReason = 'eos';
        break;
      }
      ids.push(id);
      picker.remember(id);
      text += detok.push(id);

      const stopAt = findStop(text, opts.stop);
      if (stopAt >= 0) {
        chosen.dispose();
        text = text.slice(0, stopAt);
        if (text.length > emitted) yield { id, text: text.slice(emitted) };
        finishReason = 'stop';
        break;
      }
      const safe = text.length - pendingStopLength(text, opts.stop);
      yield { id, text: safe > emitted ? text.slice(emitted, safe) : '' };
      emitted = Math.max(emitted, safe);
      if (ids.length >= opts.maxNewTokens) {
        chosen.dispose();
        break;
      }
      if (opts.signal?.aborted) {
        chosen.dispose();
        throw abortError(opts.signal);
      }
      // One decode step: embed the chosen id where it already is (on the GPU) and run it through the cache.
      const x = decoder.embed(chosen); //                 [1, H]
      chosen.dispose();
      const hidden = decoder.forward(x);
      x.dispose();
      logits = decoder.logits(hidden); //                 [1, vocab]
      hidden.dispose();
    }
  } finally {
    logits?.dispose();
    picker.dispose();
    // Stopped with a step recorded but not submitted (abort, or the consumer broke off): submit it
    // now, so a later queue write into a recycled buffer cannot land before the step's reads.
    gpu.flush();
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

/** Drains a token stream, calling `onToken` for each event; returns the generation result. */
export async function collect<R>(stream: AsyncGenerator<TokenEvent, R>, onToken?: (e: TokenEvent) => void): Promise<R> {
  for (;;) {
    const step = await stream.next();
    if (step.done) return step.value;
    onToken?.(step.value);
  }
}
