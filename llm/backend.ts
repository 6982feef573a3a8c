/**
 * Where the model runs. The pipeline (llm/pipeline.ts) speaks to a ModelBackend: encode an image to
 * projected rows, prefill ids (with those rows at −200) into the KV cache, then decode through
 * TokenSteps. Both backends wrap the same assembly (llm/llava.ts) over a different op set:
 *
 *   GpuBackend (here)           Llava<Tensor>: the WGSL kernels via WebGPU — the default
 *   CpuBackend (cpu-backend.ts) Llava<Nd>: the ops' CPU references — `--backend cpu`, for checking and teaching
 */
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import type { Precision } from '../ops/precision.js';
import { gpuOps, type Nd } from '../nn/ops.js';
import { runToEnd } from '../nn/chunks.js';
import { abortError, GpuSteps, type TokenSteps } from './generate.js';
import { Llava } from './llava.js';
import type { LlamaDecoder } from './llama.js';
import { precompileDecode } from './warmup.js';

/** One image's projected rows [Tv, H], on the backend's device (a GPU tensor or a CPU ndarray). */
export type ImageRows = Tensor | Nd;

export interface PrefillOptions {
  maxNewTokens: number;
  repetitionPenalty: number;
  /** Checked between dispatch batches (after each decoder layer); aborting rejects with its reason. */
  signal?: AbortSignal;
}

export interface ModelBackend<Rows extends ImageRows = ImageRows> {
  readonly name: 'webgpu' | 'cpu';
  /** Storage precision of the activations and the KV cache (ops/precision.ts). */
  readonly precision: Precision;
  /** KV cache capacity in positions. */
  readonly maxContext: number;
  /** Positions currently in the KV cache. */
  readonly cacheLength: number;
  /**
   * pixel_values [3, size, size] (CHW) → the image's projected rows [Tv, hidden]. With a signal, the
   * tower runs stage by stage and the signal is checked between stages.
   */
  encodeImage(pixelValues: Float32Array, size: number, signal?: AbortSignal): Promise<Rows>;
  /**
   * Keeps the first `keep` cached positions, appends `ids` (the image's rows where −200 is) and
   * returns the decode steps starting from the last position's logits. Without a signal the whole
   * prefill is recorded at once (one submission with the first pick); with one, it runs layer by
   * layer, checking the signal between layers, and the steps come as a Promise.
   */
  prefill(ids: readonly number[], image: Rows | null, keep: number, opts: PrefillOptions): TokenSteps | Promise<TokenSteps>;
  releaseImage(image: Rows): void;
  dispose(): Promise<void>;
}

/** What both backends share: a Llava model and its decoder's KV cache. */
export abstract class LlavaBackend<Rows extends ImageRows> implements ModelBackend<Rows> {
  abstract readonly name: 'webgpu' | 'cpu';

  constructor(readonly model: Llava<Rows>) {}

  get decoder(): LlamaDecoder<Rows> {
    return this.model.decoder;
  }

  get precision(): Precision {
    return this.model.ops.precision;
  }

  get maxContext(): number {
    return this.decoder.dims.maxContext;
  }

  get cacheLength(): number {
    return this.decoder.length;
  }

  abstract encodeImage(pixelValues: Float32Array, size: number, signal?: AbortSignal): Promise<Rows>;
  abstract prefill(ids: readonly number[], image: Rows | null, keep: number, opts: PrefillOptions): TokenSteps | Promise<TokenSteps>;
  abstract releaseImage(image: Rows): void;
  abstract dispose(): Promise<void>;

  /** Waits for the work recorded so far (GPU: a submission and its completion). */
  protected abstract settle(): Promise<void>;

  /**
   * Drives a forward recorded in steps (Llava's encodeImageSteps / prefillSteps). Without a signal,
   * all steps are recorded at once (no round trip). With one, each step's work is run and waited
   * for, and the signal checked, so an abort stops a long image encode or prefill within one step.
   */
  protected async runSteps<R>(steps: Generator<unknown, R>, signal?: AbortSignal): Promise<R> {
    if (!signal) return runToEnd(steps);
    try {
      for (;;) {
        if (signal.aborted) throw abortError(signal);
        const step = steps.next();
        if (step.done) return step.value;
        await this.settle();
      }
    } catch (e) {
      steps.return(undefined as never); // frees the tensors in flight (a no-op once finished)
      this.model.ops.flush(); // what was recorded is submitted (ordered before later writes into recycled buffers)
      throw e;
    }
  }
}

export interface GpuBackendOptions {
  dtype: 'f32' | 'f16' | 'q8' | 'q4';
  /** Activations and KV cache: f32, or f16 (needs shader-f16). */
  precision: Precision;
  quantizeVision?: boolean;
  maxContext?: number;
  onProgress: (stage: 'vision' | 'projector' | 'llm', done: number, total: number) => void;
}

export class GpuBackend extends LlavaBackend<Tensor> {
  readonly name = 'webgpu';

  private constructor(
    readonly gpu: Gpu,
    model: Llava<Tensor>,
  ) {
    super(model);
  }

  /** Loads the model and compiles every pipeline its decode loop can need (llm/warmup.ts). */
  static async load(gpu: Gpu, ckpt: Checkpoint, options: GpuBackendOptions): Promise<GpuBackend> {
    const model = await Llava.load(gpuOps(gpu, options.precision), ckpt, options);
    try {
      await precompileDecode(model.decoder);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return new GpuBackend(gpu, model);
  }

  async encodeImage(pixelValues: Float32Array, size: number, signal?: AbortSignal): Promise<Tensor> {
    const pixels = this.gpu.upload([3, size, size], pixelValues); //               [3, R, R]
    try {
      const rows = await this.runSteps(this.model.encodeImageSteps(pixels), signal); // [Tv, H]
      await this.gpu.sync();
      return rows;
    } finally {
      pixels.dispose();
    }
  }

  prefill(ids: readonly number[], image: Tensor | null, keep: number, opts: PrefillOptions): TokenSteps | Promise<TokenSteps> {
    const steps = (logits: Tensor) => new GpuSteps(this.decoder, logits, opts.maxNewTokens, opts.repetitionPenalty); // logits [1, vocab]
    const prefill = this.model.prefillSteps(ids, image, keep);
    return opts.signal ? this.runSteps(prefill, opts.signal).then(steps) : steps(runToEnd(prefill));
  }

  releaseImage(image: Tensor): void {
    image.dispose();
  }

  async dispose(): Promise<void> {
    this.model.dispose();
  }

  protected settle(): Promise<void> {
    return this.gpu.sync();
  }
}
