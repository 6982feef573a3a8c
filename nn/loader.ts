/**
 * The one weight loader. A model lists the tensors it expects (names and shapes from
 * weights/names.ts); its modules then ask for them by checkpoint name. The loader
 *
 *   - checks each tensor is present and has the shape the config implies (naming both shapes),
 *   - applies the dtype policy: matrices and conv kernels in `dtype` (f32 or f16), vectors (norm
 *     scales, biases, layer scales) always f32 — they are tiny and read by f32-only ops; with
 *     `quantize`, every 2-D tensor (linear weights, token embeddings) is quantized to q8/q4 as it
 *     loads (runtime/quant.ts), one tensor in memory at a time,
 *   - a tensor the checkpoint stores quantized (a `convllava quantize` folder, weights/quantized.ts)
 *     loads only in its own format, from its stored codes and scales (no requantization),
 *   - reports progress once per tensor against the expected total,
 *   - hands a tensor asked for twice (tied embeddings) out once,
 *   - frees everything it loaded if building the model fails (`build`).
 *
 * On the CPU twin (cpuOps) "f16" rounds the values through f16, so a CPU reference sees exactly the
 * weights an f16 GPU model holds.
 */
import type { Gpu } from '../runtime/gpu.js';
import type { QuantDType, QuantizedMatrix } from '../runtime/quant.js';
import type { Tensor } from '../runtime/tensor.js';
import type { TensorOps } from './ops.js';

/** Read access to named tensors: a checkpoint (weights/checkpoint.ts) or synthetic weights. */
export interface WeightReader {
  has(name: string): boolean;
  shape(name: string): number[];
  readF32(name: string): Promise<Float32Array>;
  toGpu(gpu: Gpu, name: string, dtype: 'f32' | 'f16'): Promise<Tensor>;
  /** A quantized checkpoint (weights/quantized.ts): the format `name` is stored in, if quantized. */
  quantizedAs?(name: string): QuantDType | undefined;
  /** Its stored codes and scales, as they are (loaded with no requantization). */
  readQuantized?(name: string): Promise<QuantizedMatrix>;
}

export type WeightDType = 'f32' | 'f16';
/** What a tensor is stored as: a float dtype, or a quantized format (2-D tensors only). */
export type StoredDType = WeightDType | QuantDType;

export interface WeightLoadOptions {
  /** Storage of matrices and conv kernels (vectors stay f32). Default f32. */
  dtype?: WeightDType;
  /** Quantize every 2-D tensor of this part (linear weights, embeddings) to this format while loading. */
  quantize?: QuantDType;
  /** Called after each tensor is loaded. */
  onProgress?: (done: number, total: number, name: string) => void;
}

export interface ExpectedWeight {
  name: string;
  shape: readonly number[];
}

export class WeightLoader<T> {
  private readonly expected: Map<string, readonly number[]>;
  private readonly loaded = new Map<string, T>();
  /** Tensors a module made while loading (KV caches): freed with the weights if the build fails. */
  private readonly adopted: T[] = [];

  constructor(
    readonly ops: TensorOps<T>,
    private readonly source: WeightReader,
    expected: readonly ExpectedWeight[],
    /** For messages: what is loading ('LLM weights') and which config fixes the shapes ('config.json'). */
    private readonly what: { part: string; config: string },
    private readonly options: WeightLoadOptions = {},
  ) {
    this.expected = new Map(expected.map((t) => [t.name, t.shape]));
  }

  /** Tensors this model loads in all. */
  get total(): number {
    return this.expected.size;
  }

  /** Every tensor loaded so far, once each (for `bytes` and `dispose`). */
  get tensors(): T[] {
    return [...this.loaded.values()];
  }

  /** The tensor `name`, checked against its expected shape. */
  async get(name: string): Promise<T> {
    const cached = this.loaded.get(name);
    if (cached) return cached;
    const want = this.expected.get(name);
    if (!want) throw new Error(`${this.what.part}: '${name}' is not among the tensors this model expects`);
    if (!this.source.has(name)) throw new Error(`${this.what.part}: tensor '${name}' is missing from the checkpoint`);
    const shape = this.source.shape(name);
    if (shape.length !== want.length || shape.some((d, i) => d !== want[i])) {
      throw new Error(`${this.what.part}: '${name}' has shape [${shape}] but ${this.what.config} implies [${want}]`);
    }
    const stored = shape.length === 1 ? 'f32' : shape.length === 2 && this.options.quantize ? this.options.quantize : (this.options.dtype ?? 'f32');
    const onDisk = this.source.quantizedAs?.(name);
    if (onDisk && stored !== onDisk) {
      throw new Error(
        `${this.what.part}: '${name}' is stored quantized (${onDisk}) in the checkpoint; it loads only as ${onDisk} (dtype '${onDisk}'), not ${stored} — quantized folders are not dequantized to floats`,
      );
    }
    const t = await this.ops.load(this.source, name, stored);
    this.loaded.set(name, t);
    this.options.onProgress?.(this.loaded.size, this.total, name);
    return t;
  }

  /** A tensor the model may lack (attention biases): undefined when it is not expected. */
  async optional(name: string): Promise<T | undefined> {
    return this.expected.has(name) ? this.get(name) : undefined;
  }

  /** Frees `tensors` too if the build fails (a module's own buffers, e.g. a KV cache). */
  adopt(...tensors: T[]): void {
    this.adopted.push(...tensors);
  }

  /** Runs `build` (which loads through this loader); if it throws, frees every tensor loaded. */
  async build<R>(build: (w: this) => Promise<R>): Promise<R> {
    try {
      return await build(this);
    } catch (e) {
      this.ops.flush(); // weights generated on the GPU (synthetic) may still have their fill pending
      for (const t of [...this.loaded.values(), ...this.adopted]) this.ops.dispose(t);
      this.loaded.clear();
      this.adopted.length = 0;
      throw e;
    }
  }
}
