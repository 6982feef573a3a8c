/**
 * The LLaVA glue: a vision tower, a projector and a LLaMA decoder, and the one place image rows meet
 * the prompt.
 *
 *   pixel_values [3, R, R] ─ VisionTower ─ features [Tv, C] ─ Projector ─ image rows [Tv, H]
 *   ids (−200 where the image goes) ─ inputsEmbeds ─ [T, H] ─ LlamaDecoder (KV cache) ─ logits
 *
 * Generic over the op set (nn/ops.ts): `Llava<Tensor>` runs on the GPU, `Llava<Nd>` on the CPU
 * references; llm/backend.ts and llm/cpu-backend.ts wrap one each with their decode steps.
 */
import type { Checkpoint } from '../weights/checkpoint.js';
import { VisionTower } from '../convnext/model.js';
import { runToEnd } from '../nn/chunks.js';
import type { TensorOps } from '../nn/ops.js';
import type { WeightDType } from '../nn/loader.js';
import { isQuantDType, type QuantDType } from '../runtime/quant.js';
import { wrongDTypeMessage } from '../weights/quantized.js';
import { Projector } from '../nn/projector.js';
import { LlamaDecoder } from './llama.js';
import { IMAGE_TOKEN_INDEX } from './prompt.js';

/**
 * LLaVA's inputs_embeds: the text embeddings with the image rows [Tv, H] spliced in where the ids hold
 * IMAGE_TOKEN_INDEX (−200). Returns [len(ids) − 1 + Tv, H] (one image), or the plain embeddings.
 */
export function inputsEmbeds<T>(decoder: LlamaDecoder<T>, ids: readonly number[], image?: T | null): T {
  const { ops } = decoder;
  const imageAt = ids.indexOf(IMAGE_TOKEN_INDEX);
  if (imageAt !== ids.lastIndexOf(IMAGE_TOKEN_INDEX)) throw new Error('inputsEmbeds: the prompt holds more than one <image>');
  if (imageAt < 0 || !image) {
    if (imageAt >= 0) throw new Error('inputsEmbeds: the prompt has an <image> but no image features were given');
    return decoder.embed(ids);
  }
  const H = decoder.dims.hidden;
  const imageShape = ops.shape(image);
  if (imageShape.length !== 2 || imageShape[1] !== H) {
    throw new Error(`inputsEmbeds: image features are [${imageShape}] but the LLM needs [T, ${H}] (hidden_size)`);
  }
  const before = imageAt;
  const after = ids.length - imageAt - 1;
  const Tv = imageShape[0];
  return ops.tidy(() => {
    // One embedding call for all text ids: its id upload happens before any buffer here is recycled.
    const text = decoder.embed([...ids.slice(0, imageAt), ...ids.slice(imageAt + 1)]); //  [before + after, H]
    const x = ops.empty([before + Tv + after, H], 'inputs_embeds'); //                      [T, H]
    if (before > 0) ops.writeRows(ops.sliceRows(text, 0, before), x, 0);
    ops.writeRows(image, x, before);
    if (after > 0) ops.writeRows(ops.sliceRows(text, before, after), x, before + Tv);
    return x;
  });
}

export interface LlavaLoadOptions {
  /**
   * f32 / f16: every matrix in that dtype. q8 / q4: the decoder's linears, lm_head, the token
   * embedding and the projector quantized as they load (runtime/quant.ts); the vision tower in f16
   * unless `quantizeVision` (then its 2-D weights, the pointwise linears, are quantized too).
   */
  dtype: WeightDType | QuantDType;
  quantizeVision?: boolean;
  maxContext?: number;
  onProgress?: (stage: 'vision' | 'projector' | 'llm', done: number, total: number) => void;
}

export class Llava<T> {
  private constructor(
    readonly ops: TensorOps<T>,
    readonly tower: VisionTower<T>,
    readonly projector: Projector<T>,
    readonly decoder: LlamaDecoder<T>,
  ) {}

  /** Loads the three parts in order; if one fails, the parts already loaded are freed. */
  static async load<T>(ops: TensorOps<T>, ckpt: Checkpoint, options: LlavaLoadOptions): Promise<Llava<T>> {
    const quantize = isQuantDType(options.dtype) ? options.dtype : undefined;
    const dtype: WeightDType = quantize ? 'f16' : (options.dtype as WeightDType);
    const onDisk = ckpt.quantizedAs; // a folder written by `convllava quantize` loads only in its own format
    if (onDisk && options.dtype !== onDisk) {
      throw new Error(wrongDTypeMessage(ckpt.dir, onDisk, options.dtype));
    }
    const quantizeVision = options.quantizeVision || ckpt.visionQuantized;
    const progress = (stage: 'vision' | 'projector' | 'llm') => (done: number, total: number) => options.onProgress?.(stage, done, total);
    const tower = await VisionTower.load(ops, ckpt, { dtype, quantize: quantizeVision ? quantize : undefined, onProgress: progress('vision') });
    let projector: Projector<T> | null = null;
    try {
      projector = await Projector.load(ops, ckpt, { dtype, quantize, onProgress: progress('projector') });
      const decoder = await LlamaDecoder.load(ops, ckpt.llm, ckpt.config, { dtype, quantize, maxContext: options.maxContext, onProgress: progress('llm') });
      return new Llava(ops, tower, projector, decoder);
    } catch (e) {
      projector?.dispose();
      tower.dispose();
      throw e;
    }
  }

  /** pixel_values [3, R, R] → the image's rows in the LLM's embedding space [Tv, H]. */
  encodeImage(pixelValues: T): T {
    return runToEnd(this.encodeImageSteps(pixelValues));
  }

  /** The same, pausing between the tower's stages (llm/backend.ts checks an abort signal there). */
  *encodeImageSteps(pixelValues: T): Generator<number, T> {
    const { features } = yield* this.tower.encodeSteps(pixelValues); // [Tv, C]
    try {
      return this.projector.forward(features); //                      [Tv, H]
    } finally {
      this.ops.dispose(features);
    }
  }

  /**
   * Keeps the first `keep` cached positions, runs `ids` (the image rows where −200 is) through the
   * decoder into the KV cache and returns the last position's logits [1, vocab].
   */
  prefill(ids: readonly number[], image: T | null, keep: number): T {
    return runToEnd(this.prefillSteps(ids, image, keep));
  }

  /** The same, pausing after each decoder layer (llm/backend.ts checks an abort signal there). */
  *prefillSteps(ids: readonly number[], image: T | null, keep: number): Generator<number, T> {
    const { decoder, ops } = this;
    decoder.truncate(keep);
    const x = inputsEmbeds(decoder, ids, image); //                       [T, H]
    let hidden: T;
    try {
      hidden = yield* decoder.forwardSteps(x); //                         [T, H], appended to the KV cache
    } finally {
      ops.dispose(x);
    }
    try {
      return decoder.lastLogits(hidden); //                               [1, vocab]
    } finally {
      ops.dispose(hidden);
    }
  }

  dispose(): void {
    this.tower.dispose();
    this.projector.dispose();
    this.decoder.dispose();
  }
}
