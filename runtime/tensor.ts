/**
 * A GPU tensor: one GPUBuffer + shape + dtype. Row-major, no strides, no views: ops that need a
 * sub-range bind it explicitly (see `Gpu.dispatch` binding ranges).
 *
 * dtypes and their storage:
 *   f32  one f32 per element
 *   f16  two halves packed per u32 word (element i = half i&1 of word i>>1), read in WGSL with
 *        unpack2x16float — portable: needs no `shader-f16` feature. Byte size = ceil(n/2)·4.
 *   u32 / i32  one 32-bit integer per element (token ids, argmax results)
 *   q8 / q4    quantized weights [N, K]: per row, packed codes then f16 group scales (runtime/quant.ts)
 */
import type { Gpu } from './gpu.js';
import { isQuantDType, quantBytes } from './quant.js';

export type DType = 'f32' | 'f16' | 'u32' | 'i32' | 'q8' | 'q4';

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Bytes a tensor of `n` elements of `dtype` occupies on the GPU (before 4-byte alignment). */
export function storageBytes(dtype: DType, n: number): number {
  if (isQuantDType(dtype)) throw new Error(`storageBytes: a ${dtype} tensor's size depends on its row length; use tensorBytes`);
  return dtype === 'f16' ? Math.ceil(n / 2) * 4 : n * 4;
}

/** Bytes a tensor of `shape` and `dtype` occupies on the GPU (quantized: whole padded rows). */
export function tensorBytes(dtype: DType, shape: readonly number[]): number {
  return isQuantDType(dtype) ? quantBytes(dtype, shape) : storageBytes(dtype, numel(shape));
}

export class Tensor {
  private disposed = false;

  constructor(
    readonly gpu: Gpu,
    readonly buffer: GPUBuffer,
    readonly shape: readonly number[],
    readonly dtype: DType,
    /** Shared by a tensor and its reshape views: set once any of them has returned the buffer. */
    private readonly lease: { released: boolean } = { released: false },
  ) {}

  get size(): number {
    return numel(this.shape);
  }

  get byteLength(): number {
    return tensorBytes(this.dtype, this.shape);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** True once this tensor or a reshape view of it has been disposed (its buffer may already serve another tensor). */
  get isReleased(): boolean {
    return this.lease.released;
  }

  /** Same buffer, new shape (same element count). The view shares the buffer: dispose only one (the pool throws on a second release). */
  reshape(shape: readonly number[]): Tensor {
    if (numel(shape) !== this.size) {
      throw new Error(`reshape: cannot view [${this.shape}] (${this.size} elements) as [${shape}]`);
    }
    return new Tensor(this.gpu, this.buffer, shape, this.dtype, this.lease);
  }

  /** Copies the tensor to the CPU. f32 → Float32Array, f16 → Float32Array (converted), u32/i32 → typed ints. */
  read(): Promise<Float32Array | Uint32Array | Int32Array> {
    return this.gpu.read(this);
  }

  /** Returns the buffer to the pool. Using the tensor afterwards is an error. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.lease.released = true;
    this.gpu.pool.release(this.buffer);
  }
}
