/**
 * The GPU context: a WebGPU device plus everything ops need to run kernels on it.
 *
 *   const gpu = await Gpu.create();           // Dawn in Node, navigator.gpu in a browser
 *   const y = add(gpu, a, b);                 // ops record dispatches; nothing runs yet
 *   const values = await y.read();            // submit, copy back, surface any GPU error
 *   gpu.destroy();
 *
 * This file is the facade: tensors (allocation from the pool, upload, write, read), submission and
 * waiting (flush / sync), GPU errors and device loss as rejected promises, and timing. The other jobs
 * have their own files:
 *
 *   runtime/device.ts      finding an adapter and opening the device (limits, features, Dawn toggles)
 *   runtime/pipelines.ts   kernel sources, explicit bind-group layouts and the compute-pipeline cache
 *   runtime/recorder.ts    how one dispatch is recorded: checks, params arena, bind group, the open pass
 *   runtime/bind-groups.ts the bind-group cache (groups reused across dispatches and decode steps)
 *   runtime/pool.ts        the buffer pool;  runtime/tensor.ts  Tensor
 *
 * Ops record into one open compute pass; the pass is submitted only when a result is read (or on
 * `flush()`), so a whole forward pass is one command buffer with no CPU round trips. Validation /
 * out-of-memory errors and device loss reject the next `read()` / `sync()` with the reason — never a
 * hang or a silently wrong answer.
 */
import { openDevice, type AdapterSummary, type GpuOptions } from './device.js';
import { f16ToF32Array, f32ToF16Array } from './half.js';
import { KernelLibrary } from './pipelines.js';
import { BufferPool } from './pool.js';
import { CommandRecorder, type Dispatch, type ProfileState } from './recorder.js';
import { Tensor, tensorBytes, numel, type DType } from './tensor.js';

export type { AdapterSummary, GpuOptions } from './device.js';
export { params, type Binding, type Dispatch } from './recorder.js';

/** One dispatch of a profiled recording (Gpu.profile), in recording order. */
export interface DispatchTime {
  kernel: string;
  entry: string;
  /** GPU time of the dispatch in ms. */
  ms: number;
}

/** What Gpu.profile measured and how. */
export interface DispatchProfile {
  rows: DispatchTime[];
  /**
   * 'timestamp-query': each dispatch in its own compute pass with GPU timestamps at its start and
   * end. 'wall-clock': the adapter has no timestamp queries, so each dispatch was submitted alone
   * and timed from its submission (or the previous one's completion) to its completion on the CPU
   * clock: submission and wake-up overheads included.
   */
  method: 'timestamp-query' | 'wall-clock';
}

/** Recording counters (Gpu.counters): cumulative since the device was opened. */
export interface RecordCounters {
  dispatches: number;
  passes: number;
  copies: number;
  recordMs: number;
  pipelines: number;
}

/** Reads up to this size reuse pooled staging buffers. */
const SMALL_READ_BYTES = 4096;

export class Gpu {
  readonly pool: BufferPool;
  readonly limits: GPUSupportedLimits;
  readonly features: ReadonlySet<string>;
  /** True when kernels may `enable f16;` (the device has `shader-f16`). */
  readonly hasF16: boolean;
  /** The adapter's smallest subgroup size when the device has `subgroups` (lavapipe 8, NVIDIA 32), else 0. */
  readonly subgroupMinSize: number;
  /**
   * Open `tidy` scopes (nn/tidy.ts), innermost last: each pooled tensor allocated while one is open
   * is recorded in the innermost, which frees it when it closes unless it is returned.
   */
  readonly scopes: Tensor[][] = [];

  private readonly kernels: KernelLibrary;
  private readonly recorder: CommandRecorder;
  private uncaptured: GPUError[] = [];
  private lostReason: string | null = null;
  private lostPromise: Promise<never>;
  private smallStaging: GPUBuffer[] = [];

  private constructor(
    /** Held for the context's lifetime: if Dawn's GPU object is garbage-collected, its instance is torn down under the device. */
    readonly instance: GPU,
    readonly adapter: GPUAdapter,
    readonly device: GPUDevice,
    readonly summary: AdapterSummary,
  ) {
    this.limits = device.limits;
    this.features = new Set([...device.features].map(String));
    this.hasF16 = this.features.has('shader-f16');
    const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number };
    this.subgroupMinSize = this.features.has('subgroups') ? (info.subgroupMinSize ?? 0) : 0;
    this.pool = new BufferPool(device, device.limits.maxBufferSize);
    this.kernels = new KernelLibrary(device);
    this.recorder = new CommandRecorder(device, this.kernels);
    this.pool.onDestroy = (buffer) => this.recorder.bindGroups.forgetBuffer(buffer);
    device.addEventListener('uncapturederror', (e) => {
      this.uncaptured.push((e as GPUUncapturedErrorEvent).error);
    });
    this.lostPromise = device.lost.then((info) => {
      this.lostReason = `WebGPU device lost (${info.reason}): ${info.message}`;
      throw new Error(this.lostReason);
    });
    this.lostPromise.catch(() => {}); // observed by read()/sync(); avoid unhandled-rejection noise
  }

  /** Acquires an adapter and device (runtime/device.ts) and loads the kernel sources. */
  static async create(options: GpuOptions = {}): Promise<Gpu> {
    const { instance, adapter, device, summary } = await openDevice(options);
    const ctx = new Gpu(instance, adapter, device, summary);
    await ctx.kernels.loadAll();
    return ctx;
  }

  /** Registers WGSL source under a name (kernels outside kernels/, tests). */
  defineKernel(name: string, source: string): void {
    this.kernels.define(name, source);
  }

  /** The WGSL source registered for `name` (loaded from kernels/, or given to defineKernel). */
  kernelSource(name: string): string {
    return this.kernels.source(name);
  }

  /** Cached compute pipeline for kernel + entry point + override constants (laid out for every binding the WGSL declares). */
  pipeline(kernel: string, entry = 'main', constants: Record<string, number> = {}): GPUComputePipeline {
    return this.kernels.pipeline(kernel, entry, constants);
  }

  /** Number of dispatches recorded since creation (tests use it to check "no work was done"). */
  get dispatchCount(): number {
    return this.recorder.dispatchCount;
  }

  /** Compute pipelines created since creation: a decode loop that compiles nothing leaves it unchanged. */
  get pipelineCount(): number {
    return this.kernels.pipelineCount;
  }

  /** Every pipeline compiled so far: kernel, entry point and override constants. */
  compiledPipelines(): { kernel: string; entry: string; constants: Readonly<Record<string, number>> }[] {
    return this.kernels.compiled();
  }

  /** Compute passes begun since creation (each buffer copy ends one). */
  get passCount(): number {
    return this.recorder.passCount;
  }

  /** Buffer copies recorded since creation, not counting the copies of reads into staging buffers. */
  get copyCount(): number {
    return this.recorder.copyCount;
  }

  /** Milliseconds of JS spent recording dispatches since creation (inside `dispatch`). */
  get recordMs(): number {
    return this.recorder.recordMs;
  }

  /** All counters at once; subtract two snapshots to count a piece of work. */
  counters(): RecordCounters {
    const r = this.recorder;
    return { dispatches: r.dispatchCount, passes: r.passCount, copies: r.copyCount, recordMs: r.recordMs, pipelines: this.kernels.pipelineCount };
  }

  /** Bind groups currently cached, and lookups answered from the cache / groups created so far. */
  get bindGroupStats(): { cached: number; hits: number; misses: number } {
    const c = this.recorder.bindGroups;
    return { cached: c.size, hits: c.hits, misses: c.misses };
  }

  /**
   * Compiles the pipelines `record`'s dispatches need, without recording or running anything: ops
   * called inside check their arguments and allocate their outputs as usual, but every dispatch only
   * looks up (and if new, creates) its pipeline and every copy is skipped. Tensors stay uninitialised.
   * Resolves to the number of pipelines created; rejects if one failed to compile.
   */
  async precompile(record: () => void): Promise<number> {
    const before = this.kernels.pipelineCount;
    this.device.pushErrorScope('validation');
    this.recorder.compileOnly = true;
    let thrown: unknown = null;
    try {
      record();
    } catch (e) {
      thrown = e;
    } finally {
      this.recorder.compileOnly = false;
    }
    const error = await this.device.popErrorScope();
    if (thrown) throw thrown;
    if (error) throw new Error(`precompile: a pipeline failed to compile: ${error.message}`);
    return this.kernels.pipelineCount - before;
  }

  // ---- tensors ---------------------------------------------------------------------------------

  /** An uninitialised tensor from the pool. */
  empty(shape: readonly number[], dtype: DType = 'f32', label?: string): Tensor {
    return this.allocate(shape, dtype, label, false);
  }

  /**
   * An uninitialised tensor in its own exact-size buffer, outside the pool: for weights and other
   * tensors that live as long as the model. `dispose()` frees it.
   */
  weight(shape: readonly number[], dtype: DType = 'f32', label?: string): Tensor {
    return this.allocate(shape, dtype, label, true);
  }

  private allocate(shape: readonly number[], dtype: DType, label: string | undefined, exact: boolean): Tensor {
    const bytes = tensorBytes(dtype, shape);
    let t: Tensor;
    try {
      t = new Tensor(this, exact ? this.pool.acquireExact(bytes, label) : this.pool.acquire(bytes, label), shape, dtype);
    } catch (e) {
      throw new Error(`${label ?? 'tensor'} [${shape}] ${dtype}: ${(e as Error).message}`);
    }
    if (!exact) this.scopes[this.scopes.length - 1]?.push(t);
    return t;
  }

  /** A tensor holding `data`. f16 accepts f16 bits (Uint16Array) or numbers (converted). */
  upload(shape: readonly number[], data: ArrayLike<number> | Uint16Array, dtype: DType = 'f32', label?: string): Tensor {
    const n = numel(shape);
    if (data.length !== n) {
      throw new Error(`upload: shape [${shape}] has ${n} elements but the data has ${data.length}`);
    }
    const t = this.empty(shape, dtype, label);
    this.write(t, data);
    return t;
  }

  /**
   * Overwrites a tensor's contents. A queue write runs before any command buffer submitted after it,
   * so recorded-but-unsubmitted work is submitted first: otherwise a write into a buffer that this
   * work released to the pool (and that `t` now reuses) would land before the work's reads.
   */
  write(t: Tensor, data: ArrayLike<number> | Uint16Array, elementOffset = 0): void {
    if (!Number.isInteger(elementOffset) || elementOffset < 0 || elementOffset + data.length > t.size) {
      throw new Error(
        `write: ${data.length} elements at offset ${elementOffset} do not fit tensor [${t.shape}] ${t.dtype} (${t.size} elements)`,
      );
    }
    if (t.dtype === 'f16' && data.length % 2 && elementOffset + data.length < t.size) {
      // the pad half that completes the last u32 word would overwrite element offset + length
      throw new Error(
        `write: an odd number (${data.length}) of f16 elements at offset ${elementOffset} can only end the tensor [${t.shape}] f16`,
      );
    }
    if (t.dtype === 'q8' || t.dtype === 'q4') throw new Error(`write: [${t.shape}] ${t.dtype} is written as packed words (writeWords)`);
    this.flush();
    let bytes: ArrayBufferView;
    if (t.dtype === 'f32') bytes = data instanceof Float32Array ? data : Float32Array.from(data);
    else if (t.dtype === 'u32') bytes = data instanceof Uint32Array ? data : Uint32Array.from(data);
    else if (t.dtype === 'i32') bytes = data instanceof Int32Array ? data : Int32Array.from(data);
    else {
      if (elementOffset % 2) throw new Error(`write: f16 offsets must be even (two halves per u32 word), got ${elementOffset} for [${t.shape}]`);
      const bits = data instanceof Uint16Array ? data : f32ToF16Array(data);
      // pad to whole u32 words
      bytes = bits.length % 2 ? concatPad(bits) : bits;
    }
    const byteOffset = t.dtype === 'f16' ? elementOffset * 2 : elementOffset * 4;
    // writeBuffer needs a multiple-of-4 size
    this.device.queue.writeBuffer(t.buffer, byteOffset, bytes.buffer, bytes.byteOffset, Math.ceil(bytes.byteLength / 4) * 4);
  }

  /** Overwrites u32 words of a tensor's buffer from `wordOffset` (quantized weights: runtime/quant.ts packQuantized). */
  writeWords(t: Tensor, words: Uint32Array, wordOffset = 0): void {
    if (wordOffset < 0 || (wordOffset + words.length) * 4 > t.byteLength) {
      throw new Error(`writeWords: ${words.length} words at word ${wordOffset} do not fit [${t.shape}] ${t.dtype} (${t.byteLength} bytes)`);
    }
    this.flush(); // as in write(): recorded work first
    this.device.queue.writeBuffer(t.buffer, wordOffset * 4, words.buffer, words.byteOffset, words.byteLength);
  }

  // ---- recording and submission ---------------------------------------------------------------

  /** Records one compute dispatch (runtime/recorder.ts). Nothing runs until the next read/flush. */
  dispatch(d: Dispatch): void {
    this.recorder.dispatch(d);
  }

  /** Records a buffer-to-buffer copy (ends the open pass). */
  copy(src: Tensor, srcByteOffset: number, dst: Tensor, dstByteOffset: number, bytes: number): void {
    for (const [t, offset, name] of [[src, srcByteOffset, 'src'], [dst, dstByteOffset, 'dst']] as const) {
      if (offset < 0 || offset + bytes > Math.ceil(t.byteLength / 4) * 4) {
        throw new Error(`copy: ${name} bytes ${offset} … ${offset + bytes} are not inside [${t.shape}] ${t.dtype} (${t.byteLength} bytes)`);
      }
    }
    this.recorder.copy(src.buffer, srcByteOffset, dst.buffer, dstByteOffset, bytes);
  }

  /** Submits everything recorded so far. */
  flush(): void {
    this.recorder.flush();
  }

  /**
   * Throws the first GPU error recorded since the last check (validation, OOM, device loss): in the
   * given error scopes (default: those of every submission so far) or uncaptured.
   */
  private async checkErrors(scopes = this.recorder.takeErrorScopes()): Promise<void> {
    const errors = (await Promise.all(scopes)).filter((e): e is GPUError => e !== null);
    errors.push(...this.uncaptured.splice(0));
    if (this.lostReason) throw new Error(this.lostReason);
    if (errors.length) throw new Error(`WebGPU error: ${errors[0].message}`);
  }

  /** Submits and waits until the GPU has finished all recorded work; rejects on GPU errors. */
  async sync(): Promise<void> {
    this.flush();
    await Promise.race([this.device.queue.onSubmittedWorkDone(), this.lostPromise]);
    await this.checkErrors();
  }

  /** Copies a tensor back to the CPU (submitting pending work first). */
  read(t: Tensor): Promise<Float32Array | Uint32Array | Int32Array> {
    return this.readLater(t);
  }

  /**
   * Starts a read now and lets the caller await it later: the copy to a staging buffer is recorded
   * and submitted with the pending work, and the mapping requested, before this returns. Work
   * recorded and submitted afterwards runs on the GPU while the caller waits (the pipelined decode
   * loop records step N+1 while token N is on its way back). The promise checks only the errors of
   * work submitted up to this read, so awaiting it never waits for later submissions. A read that
   * is never awaited (a discarded speculative step) raises no unhandled rejection.
   */
  readLater(t: Tensor): Promise<Float32Array | Uint32Array | Int32Array> {
    if (t.isDisposed) return observed(Promise.reject(new Error(`read: tensor [${t.shape}] was disposed`)));
    if (this.recorder.compileOnly) return observed(Promise.reject(new Error(`read: tensor [${t.shape}] read inside Gpu.precompile, where nothing runs`)));
    const bytes = Math.ceil(t.byteLength / 4) * 4;
    // Small reads (token ids in the decode loop) reuse staging buffers; big ones get their own.
    const small = bytes <= SMALL_READ_BYTES;
    const staging =
      (small && this.smallStaging.pop()) ||
      this.device.createBuffer({ size: small ? SMALL_READ_BYTES : Math.max(4, bytes), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    let mapped: Promise<unknown>;
    let scopes: Promise<GPUError | null>[];
    try {
      if (bytes > 0) this.recorder.copy(t.buffer, 0, staging, 0, bytes, true);
      this.flush();
      scopes = this.recorder.takeErrorScopes(); // this read's and earlier submissions' only
      mapped = Promise.race([staging.mapAsync(GPUMapMode.READ), this.lostPromise]);
    } catch (e) {
      staging.destroy();
      return observed(Promise.reject(e));
    }
    const result = (async () => {
      let reusable = false;
      try {
        await mapped;
        await this.checkErrors(scopes);
        const raw = staging.getMappedRange(0, Math.max(4, bytes)).slice(0, bytes);
        staging.unmap();
        reusable = small;
        if (t.dtype === 'f32') return new Float32Array(raw, 0, t.size);
        if (t.dtype === 'u32') return new Uint32Array(raw, 0, t.size);
        if (t.dtype === 'i32') return new Int32Array(raw, 0, t.size);
        if (t.dtype === 'q8' || t.dtype === 'q4') return new Uint32Array(raw); // the packed words
        return f16ToF32Array(new Uint16Array(raw, 0, t.size));
      } finally {
        if (reusable) this.smallStaging.push(staging);
        else staging.destroy();
      }
    })();
    return observed(result);
  }

  /**
   * GPU time of the dispatches `record` makes, in ms, from timestamp queries written at the start
   * and end of one compute pass. Null when the device lacks `timestamp-query` or `record` split the
   * pass (a copy): then callers fall back to wall-clock time around `sync()`.
   */
  async timeGpu(record: () => void): Promise<number | null> {
    if (!this.features.has('timestamp-query')) {
      record();
      return null;
    }
    const querySet = this.device.createQuerySet({ type: 'timestamp', count: 2 });
    const resolve = this.device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const staging = this.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    try {
      const intact = this.recorder.recordTimed(querySet, resolve, staging, record);
      await Promise.race([staging.mapAsync(GPUMapMode.READ), this.lostPromise]);
      await this.checkErrors();
      const [begin, end] = new BigInt64Array(staging.getMappedRange().slice(0));
      staging.unmap();
      return intact ? Number(end - begin) / 1e6 : null;
    } finally {
      querySet.destroy();
      resolve.destroy();
      staging.destroy();
    }
  }

  /**
   * GPU time of each dispatch `record` makes: every dispatch is recorded in a compute pass of its
   * own whose start and end write timestamps (feature `timestamp-query`); without the feature each
   * dispatch is submitted alone and timed on the CPU clock (see DispatchProfile.method). The work is
   * real: it runs and its results are kept. Separate passes cost a little GPU time per dispatch, so
   * the rows add up to somewhat more than the same work in one pass.
   */
  async profile(record: () => void): Promise<DispatchProfile> {
    const timestamps = this.features.has('timestamp-query');
    const owned: GPUBuffer[] = [];
    let state: ProfileState;
    this.recorder.startProfile(timestamps);
    const staging = (bytes: number) => {
      const resolve = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
      const read = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      owned.push(resolve, read);
      return { resolve, staging: read };
    };
    try {
      try {
        record();
      } catch (e) {
        state = this.recorder.stopProfile(true, staging);
        throw e;
      }
      state = this.recorder.stopProfile(false, staging);
      if (!timestamps) {
        const done = await Promise.race([Promise.all(state.done), this.lostPromise]);
        await this.checkErrors();
        let previous = 0;
        return {
          method: 'wall-clock',
          rows: state.rows.map((r, i) => {
            const ms = done[i] - Math.max(previous, state.submitted[i]);
            previous = done[i];
            return { ...r, ms };
          }),
        };
      }
      if (state.rows.length === 0) return { method: 'timestamp-query', rows: [] };
      const read = owned[1];
      await Promise.race([read.mapAsync(GPUMapMode.READ), this.lostPromise]);
      await this.checkErrors();
      const ticks = new BigInt64Array(read.getMappedRange().slice(0));
      read.unmap();
      return { method: 'timestamp-query', rows: state.rows.map((r, i) => ({ ...r, ms: Number(ticks[2 * i + 1] - ticks[2 * i]) / 1e6 })) };
    } finally {
      for (const qs of state!?.querySets ?? []) qs.destroy();
      for (const b of owned) b.destroy();
    }
  }

  /** Releases the device; the process can exit afterwards. */
  destroy(): void {
    this.recorder.destroy();
    this.pool.trim();
    for (const b of this.smallStaging) b.destroy();
    this.device.destroy();
  }
}

/** The same promise, marked as handled: its rejection reaches whoever awaits it, and no one else. */
function observed<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

function concatPad(bits: Uint16Array): Uint16Array {
  const out = new Uint16Array(bits.length + 1);
  out.set(bits);
  return out;
}
