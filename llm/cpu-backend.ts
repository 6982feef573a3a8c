/**
 * `--backend cpu`: the whole ConvLLaVA forward on the ops' CPU references (plain loops over
 * ndarrays, double-precision sums) — llm/llava.ts's assembly over `cpuOps`, the same modules as the
 * WebGPU path, for checking and teaching. Slow: fine for the tiny fixture model, minutes per token
 * for a 7B one.
 */
import ndarray from 'ndarray';
import { sampleRef } from '../ops/sample.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import { runToEnd } from '../nn/chunks.js';
import { cpuOps, type Nd } from '../nn/ops.js';
import type { PickOptions, TokenSteps } from './generate.js';
import type { LlamaDecoder } from './llama.js';
import { Llava } from './llava.js';
import { LlavaBackend, type PrefillOptions } from './backend.js';

/** Sampling on the CPU with the same semantics and the same seeded draws as the GPU sampler (NaN / +Inf logits give NON_FINITE_ID, as the kernels flag them). */
class CpuSteps implements TokenSteps {
  private readonly answer: number[] = [];

  constructor(
    private readonly decoder: LlamaDecoder<Nd>,
    private logits: Float32Array,
  ) {}

  async pick(c: PickOptions): Promise<number> {
    const id = sampleRef(this.logits, { ...c, recentIds: this.answer });
    this.answer.push(id);
    return id;
  }

  feed(): void {
    const id = this.answer[this.answer.length - 1];
    this.logits = this.decoder.logits(this.decoder.forward(this.decoder.embed([id]))).data;
  }

  close(): void {}
}

export class CpuBackend extends LlavaBackend<Nd> {
  readonly name = 'cpu';

  /** f32 weights; with dtype q8 / q4 the quantized parts hold exactly the values the GPU dequantizes. */
  static async load(
    ckpt: Checkpoint,
    options: { dtype?: string; quantizeVision?: boolean; maxContext?: number; onProgress?: (stage: 'vision' | 'projector' | 'llm') => void } = {},
  ): Promise<CpuBackend> {
    let stage: 'vision' | 'projector' | 'llm' | null = null;
    const model = await Llava.load(cpuOps, ckpt, {
      dtype: options.dtype === 'q8' || options.dtype === 'q4' ? options.dtype : 'f32',
      quantizeVision: options.quantizeVision,
      maxContext: options.maxContext,
      onProgress: (next) => {
        if (stage && stage !== next) options.onProgress?.(stage);
        stage = next;
      },
    });
    options.onProgress?.('llm');
    return new CpuBackend(model);
  }

  async encodeImage(pixelValues: Float32Array, size: number, signal?: AbortSignal): Promise<Nd> {
    return this.runSteps(this.model.encodeImageSteps(ndarray(pixelValues, [3, size, size])), signal); // [Tv, H]
  }

  prefill(ids: readonly number[], image: Nd | null, keep: number, opts: PrefillOptions): TokenSteps | Promise<TokenSteps> {
    const steps = (logits: Nd) => new CpuSteps(this.decoder, logits.data); // logits [1, vocab]
    const prefill = this.model.prefillSteps(ids, image, keep);
    return opts.signal ? this.runSteps(prefill, opts.signal).then(steps) : steps(runToEnd(prefill));
  }

  releaseImage(): void {}

  async dispose(): Promise<void> {}

  /** Nothing is pending on the CPU; yielding to the event loop lets an abort (a timer, a closed request) fire. */
  protected settle(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }
}
