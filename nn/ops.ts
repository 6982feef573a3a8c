/**
 * The op set a module runs on. Modules (nn/*.ts) are written once against `TensorOps<T>`; two
 * implementations make the two twins of every module and model:
 *
 *   gpuOps(gpu)   T = Tensor    the WGSL kernels (ops/<op>.ts), recorded into one command stream
 *   cpuOps        T = Nd        the ops' CPU references (`<op>Ref`, plain loops over ndarrays)
 *
 * so `--backend cpu` is the same assembly as the GPU path, over the references. Only what differs
 * between a device and the CPU lives here: memory (tidy / dispose / empty), row copies, and the
 * largest row block one storage binding holds (chunking; unlimited on the CPU).
 */
import ndarray, { type NdArray } from 'ndarray';
import { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { add, addRef } from '../ops/add.js';
import { attention, attentionRef, type AttentionOptions } from '../ops/attention.js';
import { dwconv7, dwconv7Ref } from '../ops/dwconv7.js';
import { embedding, embeddingRef } from '../ops/embedding.js';
import { gateUpSwiglu, gateUpSwigluRef } from '../ops/gateUpSwiglu.js';
import { layerNorm, layerNormRef } from '../ops/layerNorm.js';
import { linear, linearRef, MATVEC_MAX_M, uploadWeight, type LinearOptions } from '../ops/linear.js';
import { patchConv, patchConvRef } from '../ops/patchConv.js';
import { qkvRope, qkvRopeRef, type QkvOperands, type QkvRopeOptions } from '../ops/qkvRope.js';
import { rmsNorm, rmsNormRef } from '../ops/rmsNorm.js';
import { rope, ropeRef, type RopeOptions } from '../ops/rope.js';
import { sliceRows, sliceRowsRef, writeRows, writeRowsRef } from '../ops/rows.js';
import { swiglu, swigluRef } from '../ops/swiglu.js';
import { nchwToNhwc, nchwToNhwcRef } from '../ops/transpose.js';
import { cast } from '../ops/cast.js';
import { assertF16Capable, roundF16Array, toF16Nd, type Precision } from '../ops/precision.js';
import type { StoredDType, WeightReader } from './loader.js';
import { dequantize, isQuantDType, packQuantized, roundTrip } from '../runtime/quant.js';
import { tidy } from './tidy.js';

/** A CPU tensor: a contiguous row-major f32 ndarray. */
export type Nd = NdArray<Float32Array>;

export interface TensorOps<T> {
  readonly device: 'webgpu' | 'cpu';
  /**
   * Storage precision of the activations this op set makes (ops/precision.ts): `empty`, `embedding`
   * and `activation` produce it, and every op's output follows its input. The CPU references run f32.
   */
  readonly precision: Precision;
  shape(x: T): readonly number[];
  /** A view of x with another shape (same elements, shares storage: dispose only one of them). */
  reshape(x: T, shape: readonly number[]): T;
  /** Runs fn and frees what it allocated, except what it returns (nn/tidy.ts). */
  tidy<R>(fn: () => R): R;
  dispose(x: T): void;
  /** Submits recorded work (GPU), e.g. before freeing weights whose generating dispatches are still pending. */
  flush(): void;
  /** A zero-initialised (CPU) / uninitialised (GPU) activation tensor at `precision`: KV caches, inputs_embeds. */
  empty(shape: readonly number[], label?: string): T;
  /** An f32 input (pixel values) at the op set's precision: x itself when it already is, else a cast copy. */
  activation(x: T): T;
  /** How many rows of `width` activations one storage binding holds (Infinity on the CPU). */
  maxRowsPerBinding(width: number): number;
  /** Bytes the tensor occupies (f16 weights: two per element). */
  byteLength(x: T): number;
  /** One named tensor of a weight source, stored as `dtype` (nn/loader.ts decides which). */
  load(source: WeightReader, name: string, dtype: StoredDType): Promise<T>;

  linear(x: T, w: T, bias?: T, opts?: LinearOptions<T>): T;
  layerNorm(x: T, gamma: T, beta: T, eps: number): T;
  rmsNorm(x: T, gamma: T, eps: number): T;
  dwconv7(x: T, w: T, bias: T): T;
  patchConv(x: T, w: T, bias: T, k: number): T;
  add(a: T, b: T): T;
  swiglu(gate: T, up: T): T;
  rope(x: T, o: RopeOptions): T;
  attention(q: T, kCache: T, vCache: T, o: AttentionOptions): T;
  /** rmsNorm → q/k/v projections → RoPE, keys/values written into the caches; returns q (ops/qkvRope.ts). */
  qkvRope(x: T, a: QkvOperands<T>, o: QkvRopeOptions): T;
  /** silu(rmsNorm(x)·Wgᵀ) · (rmsNorm(x)·Wuᵀ) (ops/gateUpSwiglu.ts). */
  gateUpSwiglu(x: T, gamma: T, eps: number, wg: T, wu: T): T;
  /** ids: CPU numbers, or (GPU) a u32 tensor of ids already on the device. */
  embedding(ids: readonly number[] | T, table: T): T;
  nchwToNhwc(x: T): T;
  sliceRows(x: T, start: number, count: number): T;
  /** Copies src's rows into dst at rowOffset, in place. */
  writeRows(src: T, dst: T, rowOffset: number): void;
}

export interface GpuOps extends TensorOps<Tensor> {
  readonly gpu: Gpu;
}

/** The WGSL op set on `gpu`, its activations at `precision` (f16 needs the adapter's `shader-f16`). */
export function gpuOps(gpu: Gpu, precision: Precision = 'f32'): GpuOps {
  if (precision === 'f16') assertF16Capable(gpu, 'gpuOps');
  else if (precision !== 'f32') throw new Error(`gpuOps: precision must be 'f32' or 'f16', got '${precision}'`);
  const actBytes = precision === 'f16' ? 2 : 4;
  return {
    device: 'webgpu',
    precision,
    gpu,
    shape: (x) => x.shape,
    reshape: (x, shape) => x.reshape(shape),
    tidy: (fn) => tidy(gpu, fn),
    dispose: (x) => x.dispose(),
    flush: () => gpu.flush(),
    empty: (shape, label) => gpu.empty(shape, precision, label),
    activation: (x) => (x.dtype === precision ? x : cast(gpu, x, precision)),
    maxRowsPerBinding: (width) => Math.floor(gpu.limits.maxStorageBufferBindingSize / (width * actBytes)),
    byteLength: (x) => x.byteLength,
    load: async (source, name, dtype) => {
      if (!isQuantDType(dtype)) return source.toGpu(gpu, name, dtype);
      if (source.quantizedAs?.(name) === dtype) {
        // A quantized checkpoint: its stored codes and scales, packed into the GPU layout as they are.
        const words = packQuantized(await source.readQuantized!(name));
        const t = gpu.weight(source.shape(name), dtype, name);
        gpu.writeWords(t, words);
        return t;
      }
      // Quantize on load: this tensor's f32 values, quantized row by row, uploaded as packed words.
      return uploadWeight(gpu, await source.readF32(name), source.shape(name), dtype, name);
    },
    linear: (x, w, bias, opts) => linear(gpu, x, w, bias, opts),
    layerNorm: (x, gamma, beta, eps) => layerNorm(gpu, x, gamma, beta, eps),
    rmsNorm: (x, gamma, eps) => rmsNorm(gpu, x, gamma, eps),
    dwconv7: (x, w, bias) => dwconv7(gpu, x, w, bias),
    patchConv: (x, w, bias, k) => patchConv(gpu, x, w, bias, k),
    add: (a, b) => add(gpu, a, b),
    swiglu: (gate, up) => swiglu(gpu, gate, up),
    rope: (x, o) => rope(gpu, x, o),
    attention: (q, k, v, o) => attention(gpu, q, k, v, o),
    qkvRope: (x, a, o) => qkvRope(gpu, x, a, o),
    gateUpSwiglu: (x, gamma, eps, wg, wu) => gateUpSwiglu(gpu, x, gamma, eps, wg, wu),
    embedding: (ids, table) => embedding(gpu, ids, table, { dtype: precision }),
    nchwToNhwc: (x) => nchwToNhwc(gpu, x),
    sliceRows: (x, start, count) => sliceRows(gpu, x, start, count),
    writeRows: (src, dst, rowOffset) => writeRows(gpu, src, dst, rowOffset),
  };
}

export const cpuOps: TensorOps<Nd> = {
  device: 'cpu',
  precision: 'f32',
  shape: (x) => x.shape,
  reshape: (x, shape) => ndarray(x.data, [...shape]),
  tidy: (fn) => fn(), // garbage-collected
  dispose: () => {},
  flush: () => {},
  empty: (shape) => ndarray(new Float32Array(shape.reduce((a, b) => a * b, 1)), [...shape]),
  activation: (x) => x,
  maxRowsPerBinding: () => Infinity,
  byteLength: (x) => x.data.byteLength,
  async load(source, name, dtype) {
    if (isQuantDType(dtype) && source.quantizedAs?.(name) === dtype) {
      const q = await source.readQuantized!(name); // a quantized checkpoint: exactly its stored values
      return ndarray(dequantize(q), [q.N, q.K]);
    }
    const values = await source.readF32(name);
    const shape = source.shape(name);
    if (isQuantDType(dtype)) return ndarray(roundTrip(values, shape[0], shape[1], dtype), shape); // the values the GPU dequantizes
    if (dtype === 'f16') roundF16Array(values);
    return ndarray(values, shape);
  },
  linear: (x, w, bias, opts) => linearRef(x, w, bias, opts),
  layerNorm: layerNormRef,
  rmsNorm: rmsNormRef,
  dwconv7: dwconv7Ref,
  patchConv: patchConvRef,
  add: addRef,
  swiglu: swigluRef,
  rope: ropeRef,
  attention: attentionRef,
  qkvRope: qkvRopeRef,
  gateUpSwiglu: gateUpSwigluRef,
  embedding: (ids, table) => {
    if (!Array.isArray(ids)) throw new Error('embedding (CPU): ids must be numbers');
    return embeddingRef(ids as readonly number[], table);
  },
  nchwToNhwc: nchwToNhwcRef,
  sliceRows: sliceRowsRef,
  writeRows: (src, dst, rowOffset) => dst.data.set(writeRowsRef(src, dst, rowOffset).data),
};

/**
 * The CPU twin at a precision: at f16, every op's reference with its activation output rounded to f16
 * (round to nearest even), the KV-cache rows a fused qkvRope writes included; logits (linear with
 * `outDtype: 'f32'`) stay f32. The rounding points are the f16 kernels' stores — a fused op rounds
 * once, at its end, as its kernel does — so a module at f16 is compared with this twin, not with f32.
 */
export function cpuOpsAt(precision: Precision): TensorOps<Nd> {
  if (precision === 'f32') return cpuOps;
  const r = toF16Nd;
  const twin: TensorOps<Nd> = {
    ...cpuOps,
    precision: 'f16',
    activation: (x) => r(x),
    linear: (x, w, bias, opts) => (opts?.outDtype === 'f32' ? cpuOps.linear(x, w, bias, opts) : r(cpuOps.linear(x, w, bias, opts))),
    layerNorm: (x, g, b, eps) => r(cpuOps.layerNorm(x, g, b, eps)),
    rmsNorm: (x, g, eps) => r(cpuOps.rmsNorm(x, g, eps)),
    dwconv7: (x, w, b) => r(cpuOps.dwconv7(x, w, b)),
    patchConv: (x, w, b, k) => r(cpuOps.patchConv(x, w, b, k)),
    add: (a, b) => r(cpuOps.add(a, b)),
    swiglu: (g, u) => r(cpuOps.swiglu(g, u)),
    rope: (x, o) => r(cpuOps.rope(x, o)),
    attention: (q, k, v, o) => r(cpuOps.attention(q, k, v, o)),
    // The fused ops round once where their kernel runs (M ≤ MATVEC_MAX_M, no biases); elsewhere the
    // GPU runs the unfused ops, each rounding its output, and so does this twin.
    qkvRope: (x, a, o) => {
      const rows = x.shape[0];
      if (rows > MATVEC_MAX_M || a.bq || a.bk || a.bv) {
        const rot = { headDim: o.headDim, positionOffset: o.position, theta: o.theta };
        const h = twin.rmsNorm(x, a.gamma, o.eps);
        const q = twin.rope(twin.linear(h, a.wq, a.bq), { ...rot, nHeads: o.heads });
        twin.writeRows(twin.rope(twin.linear(h, a.wk, a.bk), { ...rot, nHeads: o.kvHeads }), a.kCache, o.position);
        twin.writeRows(twin.linear(h, a.wv, a.bv), a.vCache, o.position);
        return q;
      }
      const q = cpuOps.qkvRope(x, a, o);
      for (const cache of [a.kCache, a.vCache]) {
        const width = cache.shape[1];
        roundF16Array(cache.data.subarray(o.position * width, (o.position + rows) * width));
      }
      return r(q);
    },
    gateUpSwiglu: (x, g, eps, wg, wu) => {
      if (x.shape[0] <= MATVEC_MAX_M) return r(cpuOps.gateUpSwiglu(x, g, eps, wg, wu));
      const h = twin.rmsNorm(x, g, eps);
      return twin.swiglu(twin.linear(h, wg), twin.linear(h, wu));
    },
    embedding: (ids, table) => r(cpuOps.embedding(ids, table)),
    nchwToNhwc: (x) => r(cpuOps.nchwToNhwc(x)),
  };
  return twin;
}

/** The op set of a device given as a Gpu (the WGSL kernels) or as an op set already. */
export function opsFor<T>(device: Gpu | TensorOps<T>): TensorOps<T> {
  return (device instanceof Gpu ? gpuOps(device) : device) as TensorOps<T>;
}

/** The Gpu behind an op set, or null on the CPU. */
export function gpuOf<T>(ops: TensorOps<T>): Gpu | null {
  return 'gpu' in ops ? (ops as unknown as GpuOps).gpu : null;
}
