/**
 * End-to-end ConvLLaVA benchmark (what `convllava bench` runs): load, image encode per resolution,
 * prompt processing (pp), token generation (tg), time to first token for image + prompt, peak GPU
 * memory. Each figure is mean ± sd over `runs` repetitions after one warm-up.
 *
 * Weights come from a synthetic preset (generated on the GPU, or written to disk first with
 * `throughDisk` so the real loader is timed) or from a model folder. Image inputs are seeded random
 * pixel_values (preprocessing is CPU work and is not what this measures); prompt inputs are random
 * embeddings for pp and real token ids for TTFT.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { towerStride, visionTowerConfig } from '../convnext/config.js';
import { VisionTower } from '../convnext/model.js';
import { generateTokens } from '../llm/generate.js';
import { precompileDecode } from '../llm/warmup.js';
import { LlamaDecoder } from '../llm/llama.js';
import { inputsEmbeds } from '../llm/llava.js';
import { imageQuestionIds } from '../llm/prompt.js';
import { Projector } from '../nn/projector.js';
import { gpuOps } from '../nn/ops.js';
import type { Precision } from '../ops/precision.js';
import { LlamaTokenizer } from '../llm/tokenizer.js';
import { argmax } from '../ops/argmax.js';
import { randomFill } from '../ops/randomFill.js';
import type { DispatchProfile, Gpu, RecordCounters } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { syntheticCheckpoint, writeSyntheticCheckpoint, type SyntheticCheckpoint } from '../synthetic/checkpoint.js';
import { Checkpoint } from '../weights/checkpoint.js';

export interface Stat {
  /** mean ± sd (population sd over the samples). */
  mean: number;
  sd: number;
  samples: number[];
}

export function stat(samples: number[]): Stat {
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  const sd = Math.sqrt(samples.reduce((a, b) => a + (b - mean) ** 2, 0) / samples.length);
  return { mean, sd, samples };
}

export interface ModelBenchOptions {
  preset?: string;
  model?: string;
  resolutions: number[];
  nPrompt: number;
  nGen: number;
  runs: number;
  /** q8 / q4: the decoder and projector quantized on load (runtime/quant.ts), the vision tower f16. */
  dtype: 'f16' | 'f32' | 'q8' | 'q4';
  /** Storage precision of the activations and the KV cache (ops/precision.ts); default f32. */
  precision?: Precision;
  throughDisk?: boolean;
  /** Which tests to run (default all): image encode, prompt processing, token generation, time to first token. */
  tests?: BenchTest[];
  /** Also time every kernel of one decode step and one image encode on the GPU (Gpu.profile). */
  profile?: boolean;
  /** Progress lines (stderr in the CLI). */
  progress?: (message: string) => void;
}

export const BENCH_TESTS = ['encode', 'pp', 'tg', 'ttft'] as const;
export type BenchTest = (typeof BENCH_TESTS)[number];

export interface ImageEncodeResult {
  resolution: number;
  visual_tokens: number;
  /** ms per image: vision tower + projector, GPU work submitted and finished. */
  ms: Stat;
  /** Work recorded for one image (tower + projector): dispatches, compute passes, buffer copies. */
  dispatches: number;
  passes: number;
  copies: number;
  /** ms of JS spent inside Gpu.dispatch for one image. */
  cpu_record_ms: number;
}

/** Per generated token of the tg test, over the tokens after the first of every timed run. */
export interface DecodeCounters {
  dispatches_per_token: number;
  passes_per_token: number;
  copies_per_token: number;
  /** JS time inside Gpu.dispatch per token (ops' own JS around it not included). */
  cpu_record_ms_per_token: number;
  /** Pipelines created after the first token of the timed runs (0: nothing compiles during generation). */
  pipelines_created: number;
  /** Decoder layers, to read dispatches_per_token per layer. */
  n_layers: number;
  /** Weight bytes a decode step reads (LlamaDecoder.weightBytesPerToken; f16 / q8 / q4 differ). */
  weight_bytes_per_token: number;
}

/** One kernel's share of a profiled piece of work (Gpu.profile), summed over its dispatches. */
export interface KernelShare {
  kernel: string;
  count: number;
  ms: number;
  /** Fraction of the profiled GPU time. */
  share: number;
}

export interface ProfileResult {
  /** How the dispatches were timed (runtime/gpu.ts DispatchProfile.method). */
  method: DispatchProfile['method'];
  decode_step: KernelShare[] | null;
  image_encode: { resolution: number; kernels: KernelShare[] } | null;
}

export interface LlmTestResult extends Partial<DecodeCounters> {
  /** llama-bench fields. */
  n_prompt: number;
  n_gen: number;
  avg_ts: number;
  stddev_ts: number;
  samples_ts: number[];
  avg_ns: number;
  stddev_ns: number;
  samples_ns: number[];
}

export interface ModelBenchResult {
  model: string;
  dtype: string;
  /** Activation / KV-cache precision. */
  precision: Precision;
  /** Bytes of the weights (all three parts) and of the KV cache (maxContext positions, at this precision); tensor sizes, not the pool's buffers. */
  memory: { weights: number; kv_cache: number; kv_cache_positions: number };
  load_ms: number;
  parameters: { vision: number; llm: number };
  image_encode: ImageEncodeResult[];
  pp: LlmTestResult | null;
  tg: LlmTestResult | null;
  /** image (at the model's resolution) + prompt → first generated token. */
  ttft_ms: Stat | null;
  peak_gpu_bytes: number;
  /** --profile: per-kernel GPU time of one decode step and one image encode. */
  profile?: ProfileResult;
}

/** Sums a profile's rows per kernel (entry points other than main named kernel:entry), largest first. */
export function kernelShares(p: DispatchProfile): KernelShare[] {
  const byKernel = new Map<string, KernelShare>();
  for (const r of p.rows) {
    const name = r.entry === 'main' ? r.kernel : `${r.kernel}:${r.entry}`;
    const k = byKernel.get(name) ?? { kernel: name, count: 0, ms: 0, share: 0 };
    k.count++;
    k.ms += r.ms;
    byKernel.set(name, k);
  }
  const total = p.rows.reduce((a, r) => a + r.ms, 0);
  return [...byKernel.values()].map((k) => ({ ...k, share: total > 0 ? k.ms / total : 0 })).sort((a, b) => b.ms - a.ms);
}

function diff(a: RecordCounters, b: RecordCounters): RecordCounters {
  return { dispatches: b.dispatches - a.dispatches, passes: b.passes - a.passes, copies: b.copies - a.copies, recordMs: b.recordMs - a.recordMs, pipelines: b.pipelines - a.pipelines };
}

function llmTest(nPrompt: number, nGen: number, tokens: number, secondsPerRun: number[]): LlmTestResult {
  const ts = secondsPerRun.map((s) => tokens / s);
  const t = stat(ts);
  const ns = stat(secondsPerRun.map((s) => s * 1e9));
  return { n_prompt: nPrompt, n_gen: nGen, avg_ts: t.mean, stddev_ts: t.sd, samples_ts: ts, avg_ns: ns.mean, stddev_ns: ns.sd, samples_ns: ns.samples };
}

function countParameters(source: { names(): string[]; shape(n: string): number[] }): number {
  return source.names().reduce((sum, n) => sum + source.shape(n).reduce((a, b) => a * b, 1), 0);
}

export async function runModelBench(gpu: Gpu, o: ModelBenchOptions): Promise<ModelBenchResult> {
  const log = o.progress ?? (() => {});
  const wanted = (t: BenchTest) => !o.tests || o.tests.includes(t);
  let tmp: string | null = null;
  let ckpt: SyntheticCheckpoint | Checkpoint;
  const label = o.model ?? o.preset ?? 'tiny';
  if (o.model) {
    ckpt = await Checkpoint.open(o.model);
  } else if (o.throughDisk) {
    tmp = await mkdtemp(join(tmpdir(), 'convllava-bench-'));
    log(`writing synthetic ${o.preset} to ${tmp} …`);
    await writeSyntheticCheckpoint(o.preset!, tmp);
    ckpt = await Checkpoint.open(tmp);
  } else {
    ckpt = syntheticCheckpoint(o.preset ?? 'tiny');
  }
  const visionOnly = 'visionOnly' in ckpt && ckpt.visionOnly;
  let tower: VisionTower | null = null;
  let projector: Projector | null = null;
  let decoder: LlamaDecoder | null = null;
  try {
    const towerConfig = visionTowerConfig(ckpt.config, ckpt.visionConfig);
    const stride = towerStride(towerConfig);
    const badResolution = wanted('encode') ? o.resolutions.find((R) => R % stride) : undefined;
    if (badResolution !== undefined) throw new Error(`resolution ${badResolution} is not a multiple of the tower's stride ${stride}`);
    gpu.pool.peakBytes = gpu.pool.liveBytes;
    // --- load ----------------------------------------------------------------------------------------
    const t0 = performance.now();
    log('loading vision tower …');
    const quantize = o.dtype === 'q8' || o.dtype === 'q4' ? o.dtype : undefined;
    const floatDType = quantize ? 'f16' : (o.dtype as 'f16' | 'f32');
    const precision = o.precision ?? 'f32';
    const ops = gpuOps(gpu, precision);
    tower = await VisionTower.fromSource(ops, towerConfig, ckpt.vision, {
      dtype: floatDType,
      onProgress: (d, t) => log(`loading vision tower ${d}/${t}`),
    });
    projector = await Projector.fromSource(ops, ckpt.config, ckpt.llm, { dtype: floatDType, quantize });
    const maxContext = Math.min(ckpt.config.max_position_embeddings, Math.max(o.nPrompt, 64) + tower.tokens + o.nGen + 128);
    if (!visionOnly) {
      log('loading LLM …');
      decoder = await LlamaDecoder.load(ops, ckpt.llm, ckpt.config, {
        dtype: floatDType,
        quantize,
        maxContext,
        onProgress: (d, t) => log(`loading LLM ${d}/${t}`),
      });
      log('compiling the decode pipelines …');
      await precompileDecode(decoder); // as ConvLlava.load does: nothing compiles during generation
    }
    await gpu.sync();
    const loadMs = performance.now() - t0;
    const parameters = { vision: countParameters(ckpt.vision), llm: countParameters(ckpt.llm) };

    // --- image encode per resolution ---------------------------------------------------------------
    const imageEncode: ImageEncodeResult[] = [];
    for (const R of wanted('encode') ? o.resolutions : []) {
      const pixels = randomFill(gpu, [3, R, R], 'f32', { seed: R, halfWidth: 1.8 });
      const samples: number[] = [];
      let work = diff(gpu.counters(), gpu.counters());
      for (let r = 0; r <= o.runs; r++) {
        log(`image encode ${R}² run ${r}/${o.runs}${r === 0 ? ' (warm-up)' : ''}`);
        const start = performance.now();
        const before = gpu.counters();
        const { features } = tower.encode(pixels);
        const projected = projector.forward(features);
        features.dispose();
        work = diff(before, gpu.counters()); // the same every run; the last is kept
        await gpu.sync();
        if (r > 0) samples.push(performance.now() - start);
        projected.dispose();
      }
      pixels.dispose();
      imageEncode.push({
        resolution: R,
        visual_tokens: (R / stride) ** 2,
        ms: stat(samples),
        dispatches: work.dispatches,
        passes: work.passes,
        copies: work.copies,
        cpu_record_ms: work.recordMs,
      });
    }

    let pp: LlmTestResult | null = null;
    let tg: LlmTestResult | null = null;
    let ttft: Stat | null = null;
    if (decoder) {
      const H = ckpt.config.hidden_size;
      // --- pp: prompt processing of nPrompt tokens (random embeddings) -------------------------------
      if (o.nPrompt > 0 && wanted('pp')) {
        const x32 = randomFill(gpu, [o.nPrompt, H], 'f32', { seed: 5 });
        const x = ops.activation(x32); // x32 itself at f32
        if (x !== x32) x32.dispose();
        const seconds: number[] = [];
        for (let r = 0; r <= o.runs; r++) {
          log(`pp${o.nPrompt} run ${r}/${o.runs}${r === 0 ? ' (warm-up)' : ''}`);
          decoder.truncate(0);
          const start = performance.now();
          await prefillAndPick(decoder, x);
          if (r > 0) seconds.push((performance.now() - start) / 1000);
        }
        x.dispose();
        pp = llmTest(o.nPrompt, 0, o.nPrompt, seconds);
      }
      // --- tg: nGen decode steps after a short prompt, each reading back only the token id ----------
      const tokenizer = new LlamaTokenizer();
      if (o.nGen > 0 && wanted('tg')) {
        const seconds: number[] = [];
        // Work per token: counted from the first pick to the end, over the timed runs.
        let work = diff(gpu.counters(), gpu.counters());
        let tokens = 0;
        for (let r = 0; r <= o.runs; r++) {
          log(`tg${o.nGen} run ${r}/${o.runs}${r === 0 ? ' (warm-up)' : ''}`);
          decoder.truncate(0);
          const prompt = decoder.embed([tokenizer.bosId]);
          const hidden = decoder.forward(prompt);
          prompt.dispose();
          const logits = decoder.lastLogits(hidden);
          hidden.dispose();
          const start = performance.now();
          // Counted from the first pick: the pipelined loop records step 2 before token 1 arrives, so
          // a count started at the first token would miss a step. Per token (after the first) this
          // adds the first pick's work spread over the tokens (≤ 1/(n_gen − 1) of a step).
          const first = gpu.counters();
          const stream = generateTokens(decoder, tokenizer, logits, { temperature: 0, maxNewTokens: o.nGen }, []);
          let step = await stream.next();
          let generated = step.done ? 0 : 1;
          while (!step.done) {
            step = await stream.next();
            if (!step.done) generated++;
          }
          if (r > 0) {
            seconds.push((performance.now() - start) / 1000);
            const d = diff(first, gpu.counters());
            work = { dispatches: work.dispatches + d.dispatches, passes: work.passes + d.passes, copies: work.copies + d.copies, recordMs: work.recordMs + d.recordMs, pipelines: work.pipelines + d.pipelines };
            tokens += generated - 1;
          }
        }
        tg = llmTest(0, o.nGen, o.nGen, seconds);
        if (tokens > 0) {
          Object.assign(tg, {
            dispatches_per_token: work.dispatches / tokens,
            passes_per_token: work.passes / tokens,
            copies_per_token: work.copies / tokens,
            cpu_record_ms_per_token: work.recordMs / tokens,
            pipelines_created: work.pipelines,
            n_layers: decoder.dims.layers,
            weight_bytes_per_token: decoder.weightBytesPerToken,
          } satisfies DecodeCounters);
        }
      }
      // --- TTFT: image at the model's resolution + a question → first token ------------------------
      if (wanted('ttft')) ttft = await timeToFirstToken(gpu, tower, projector, decoder, towerConfig.resolution, o.runs, log);
    }
    const peak = gpu.pool.peakBytes;
    let profile: ProfileResult | undefined;
    if (o.profile) {
      log('profiling one decode step and one image encode …');
      profile = await profileModel(gpu, tower, projector, decoder, o.resolutions[0] ?? towerConfig.resolution);
    }
    const memory = {
      weights: tower.bytes + projector.bytes + (decoder?.bytes.weights ?? 0),
      kv_cache: decoder?.bytes.kvCache ?? 0,
      kv_cache_positions: decoder?.dims.maxContext ?? 0,
    };
    return {
      model: label,
      dtype: o.dtype,
      precision,
      memory,
      load_ms: loadMs,
      parameters,
      image_encode: imageEncode,
      pp,
      tg,
      ttft_ms: ttft,
      peak_gpu_bytes: peak,
      ...(profile ? { profile } : {}),
    };
  } finally {
    tower?.dispose();
    projector?.dispose();
    decoder?.dispose();
    await ckpt.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * GPU time per kernel of one greedy decode step (after a one-token prompt: embed the id → every
 * layer → lm_head → argmax) and of one image encode (tower + projector), each dispatch in its own
 * timed pass (Gpu.profile).
 */
async function profileModel(gpu: Gpu, tower: VisionTower, projector: Projector, decoder: LlamaDecoder | null, resolution: number): Promise<ProfileResult> {
  let method: DispatchProfile['method'] = gpu.features.has('timestamp-query') ? 'timestamp-query' : 'wall-clock';
  let decodeStep: KernelShare[] | null = null;
  if (decoder) {
    decoder.truncate(0);
    const tokenizer = new LlamaTokenizer();
    const prompt = decoder.embed([tokenizer.bosId]);
    const hidden = decoder.forward(prompt);
    prompt.dispose();
    const logits = decoder.lastLogits(hidden);
    hidden.dispose();
    let id = argmax(gpu, logits).reshape([1]);
    logits.dispose();
    await id.read();
    const p = await gpu.profile(() => {
      const x = decoder.embed(id); //           [1, H]
      id.dispose();
      const h = decoder.forward(x);
      x.dispose();
      const l = decoder.logits(h); //            [1, vocab]
      h.dispose();
      id = argmax(gpu, l).reshape([1]);
      l.dispose();
    });
    id.dispose();
    method = p.method;
    decodeStep = kernelShares(p);
  }
  const pixels = randomFill(gpu, [3, resolution, resolution], 'f32', { seed: resolution, halfWidth: 1.8 });
  let projected: Tensor | null = null;
  const p = await gpu.profile(() => {
    const { features } = tower.encode(pixels);
    projected = projector.forward(features);
    features.dispose();
  });
  pixels.dispose();
  (projected as Tensor | null)?.dispose();
  return { method: p.method ?? method, decode_step: decodeStep, image_encode: { resolution, kernels: kernelShares(p) } };
}

/** Image at the model's resolution + a question → the first generated token id on the CPU. */
async function timeToFirstToken(
  gpu: Gpu,
  tower: VisionTower,
  projector: Projector,
  decoder: LlamaDecoder,
  resolution: number,
  runs: number,
  log: (m: string) => void,
): Promise<Stat> {
  const tokenizer = new LlamaTokenizer();
  const R = resolution;
  const ids = imageQuestionIds(tokenizer, 'Describe this image in detail.');
  const pixels = randomFill(gpu, [3, R, R], 'f32', { seed: 7, halfWidth: 1.8 });
  const samples: number[] = [];
  for (let r = 0; r <= runs; r++) {
    log(`ttft run ${r}/${runs}${r === 0 ? ' (warm-up)' : ''}`);
    decoder.truncate(0);
    const start = performance.now();
    const { features } = tower.encode(pixels);
    const projected = projector.forward(features);
    features.dispose();
    const x = inputsEmbeds(decoder, ids, projected);
    projected.dispose();
    await prefillAndPick(decoder, x);
    x.dispose();
    if (r > 0) samples.push(performance.now() - start);
  }
  pixels.dispose();
  return stat(samples);
}

/** Prefills x [T, H] into the KV cache and reads back the greedy next token (submits and waits). */
async function prefillAndPick(decoder: LlamaDecoder, x: Tensor): Promise<number> {
  const hidden = decoder.forward(x);
  const logits = decoder.lastLogits(hidden); // [1, vocab]
  hidden.dispose();
  const id = argmax(decoder.gpu, logits);
  logits.dispose();
  const [value] = await id.read();
  id.dispose();
  return value;
}
