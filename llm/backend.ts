/**
 * Where the model runs. The pipeline (llm/pipeline.ts) speaks to a ModelBackend: encode an image to
 * projected rows, prefill ids (with those rows at −200) into the KV cache, then decode through
 * TokenSteps. Two implementations compute the same forward:
 *
 *   GpuBackend (here)          WGSL kernels via WebGPU — the default
 *   CpuBackend (cpu-backend.ts) the ops' CPU references — `--backend cpu`, for checking and teaching
 */
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import { VisionTower } from '../convnext/model.js';
import { Projector } from './projector.js';
import { LlamaDecoder } from './llama.js';
import { abortError, GpuSteps, type TokenSteps } from './generate.js';

export interface ModelBackend {
  readonly name: 'webgpu' | 'cpu';
  /** KV cache capacity in positions. */
  readonly maxContext: number;
  /** Positions currently in the KV cache. */
  readonly cacheLength: number;
  /** pixel_values [3, size, size] (CHW) → the image's projected rows [Tv, hidden] (an opaque handle). */
  encodeImage(pixelValues: Float32Array, size: number, signal?: AbortSignal): Promise<unknown>;
  /**
   * Keeps the first `keep` cached positions, appends `ids` (the image's rows where −200 is) and
   * returns the decode steps starting from the last position's logits.
   */
  prefill(ids: readonly number[], image: unknown, keep: number, opts: PrefillOptions): TokenSteps | Promise<TokenSteps>;
  releaseImage(image: unknown): void;
  dispose(): Promise<void>;
}

export interface PrefillOptions {
  maxNewTokens: number;
  repetitionPenalty: number;
  /** Checked between dispatch batches (after each decoder layer); aborting rejects with its reason. */
  signal?: AbortSignal;
}

export interface GpuBackendOptions {
  dtype: 'f32' | 'f16';
  maxContext?: number;
  onProgress: (stage: 'vision' | 'projector' | 'llm', done: number, total: number) => void;
}

export class GpuBackend implements ModelBackend {
  readonly name = 'webgpu';

  private constructor(
    readonly gpu: Gpu,
    readonly tower: VisionTower,
    readonly projector: Projector,
    readonly decoder: LlamaDecoder,
  ) {}

  static async load(gpu: Gpu, ckpt: Checkpoint, options: GpuBackendOptions): Promise<GpuBackend> {
    const { dtype } = options;
    const tower = await VisionTower.load(gpu, ckpt, { dtype, onProgress: (d, t) => options.onProgress('vision', d, t) });
    try {
      const projector = await Projector.load(gpu, ckpt, { dtype });
      options.onProgress('projector', 1, 1);
      try {
        const decoder = await LlamaDecoder.load(gpu, ckpt.llm, ckpt.config, {
          dtype,
          maxContext: options.maxContext,
          onProgress: (d, t) => options.onProgress('llm', d, t),
        });
        return new GpuBackend(gpu, tower, projector, decoder);
      } catch (e) {
        projector.dispose();
        throw e;
      }
    } catch (e) {
      tower.dispose();
      throw e;
    }
  }

  get maxContext(): number {
    return this.decoder.dims.maxContext;
  }

  get cacheLength(): number {
    return this.decoder.length;
  }

  /** With a signal, the tower runs stage by stage (one submission each) and the signal is checked between. */
  async encodeImage(pixelValues: Float32Array, size: number, signal?: AbortSignal): Promise<Tensor> {
    const pixels = this.gpu.upload([3, size, size], pixelValues); //    [3, R, R]
    let features: Tensor;
    try {
      features = signal
        ? (await runSteps(this.gpu, this.tower.encodeSteps(pixels), signal)).features //  [Tv, C], stage by stage
        : this.tower.encode(pixels).features; //                                         [Tv, C], one submission
    } finally {
      pixels.dispose();
    }
    let rows: Tensor;
    try {
      rows = this.projector.forward(features); //                       [Tv, H]
    } finally {
      features.dispose();
    }
    await this.gpu.sync();
    return rows;
  }

  /**
   * Without a signal the whole prefill is recorded at once (one submission with the first pick).
   * With one, the layers run one submission each and the signal is checked between them.
   */
  prefill(ids: readonly number[], image: unknown, keep: number, opts: PrefillOptions): TokenSteps | Promise<TokenSteps> {
    const { decoder } = this;
    decoder.truncate(keep);
    const x = decoder.inputsEmbeds(ids, (image as Tensor | null) ?? undefined); // [T, H]
    const last = (hidden: Tensor) => {
      const logits = decoder.lastLogits(hidden); //                               [1, vocab]
      hidden.dispose();
      return new GpuSteps(decoder, logits, opts.maxNewTokens, opts.repetitionPenalty);
    };
    if (!opts.signal) {
      try {
        return last(decoder.forward(x)); //                                       all layers, into the KV cache
      } finally {
        x.dispose();
      }
    }
    return runSteps(this.gpu, decoder.forwardSteps(x), opts.signal).then(last).finally(() => x.dispose());
  }

  releaseImage(image: unknown): void {
    (image as Tensor).dispose();
  }

  async dispose(): Promise<void> {
    this.tower.dispose();
    this.projector.dispose();
    this.decoder.dispose();
  }
}

/**
 * Drives a forward recorded in steps. Without a signal, all steps are recorded at once (one
 * submission, no round trip). With one, the work of each step is submitted and waited for, and the
 * signal checked, so an abort stops a long image encode or prefill within one step's GPU time.
 */
async function runSteps<T>(gpu: Gpu, steps: Generator<unknown, T>, signal?: AbortSignal): Promise<T> {
  try {
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      const step = steps.next();
      if (step.done) return step.value;
      if (signal) await gpu.sync();
    }
  } catch (e) {
    steps.return(undefined as never); // frees the tensors in flight (a no-op once finished)
    gpu.flush(); // what was recorded is submitted (ordered before later writes into recycled buffers)
    throw e;
  }
}
