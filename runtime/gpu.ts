/**
 * The GPU context: a WebGPU device plus everything ops need to run kernels on it.
 *
 *   const gpu = await Gpu.create();           // Dawn in Node, navigator.gpu in a browser
 *   const y = add(gpu, a, b);                 // ops record dispatches; nothing runs yet
 *   const values = await y.read();            // submit, copy back, surface any GPU error
 *   gpu.destroy();
 *
 * Ops record into one open compute pass; the pass is submitted only when a result is read (or on
 * `flush()`), so a whole forward pass is one command buffer with no CPU round trips. Each dispatch's
 * small uniform block (shapes, eps, …) goes into a reused "params arena" (staged on the CPU and
 * written with one queue write per batch), so steady-state recording allocates no GPU memory. Validation / out-of-memory errors and device loss reject the
 * next `read()` / `sync()` with the reason — never a hang or a silently wrong answer.
 */
import { KERNELS, kernelUrl } from '../kernels/index.js';
import { BufferPool } from './pool.js';
import { f16ToF32Array, f32ToF16Array } from './half.js';
import { Tensor, storageBytes, numel, type DType } from './tensor.js';

export interface GpuOptions {
  /** Prefer a specific WebGPU implementation (tests, browsers). Default: navigator.gpu, else Dawn. */
  gpu?: GPU;
  /** Ask for 'high-performance' (default) or 'low-power' adapters. */
  powerPreference?: GPUPowerPreference;
  /** Do not request `shader-f16` even if available. */
  disableF16?: boolean;
}

/** One binding of a dispatch: a whole tensor, or a byte range of its buffer (offset 256-aligned). */
export type Binding = Tensor | { tensor: Tensor; offset: number; size: number };

export interface Dispatch {
  /** Kernel file name in kernels/ (without .wgsl). */
  kernel: string;
  /** Entry point; default 'main'. */
  entry?: string;
  /** WGSL `override` constants (workgroup sizes, tile shapes). Part of the pipeline cache key. */
  constants?: Record<string, number>;
  /** Uniform block at @binding(0): the kernel's `Params` struct, packed by `params()`. */
  params?: ArrayBuffer;
  /** Storage buffers at @binding(1), @binding(2), … in order. */
  bindings: Binding[];
  /** Workgroup counts; each ≤ maxComputeWorkgroupsPerDimension (use `grid()` for big 1-D work). */
  workgroups: [number, number?, number?];
}

/** Packs a WGSL uniform struct of 4-byte scalars, in declaration order: params(['u32', n], ['f32', eps]). */
export function params(...fields: [type: 'u32' | 'i32' | 'f32', value: number][]): ArrayBuffer {
  const bytes = Math.max(16, Math.ceil((fields.length * 4) / 16) * 16);
  const buf = new ArrayBuffer(bytes);
  const view = new DataView(buf);
  fields.forEach(([type, value], i) => {
    if (type === 'f32') view.setFloat32(i * 4, value, true);
    else if (type === 'i32') view.setInt32(i * 4, value, true);
    else {
      if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
        throw new Error(`params: field ${i} must be a u32, got ${value}`);
      }
      view.setUint32(i * 4, value, true);
    }
  });
  return buf;
}

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: string;
  features: string[];
}

const ARENA_BYTES = 1 << 16;
/** Reads up to this size reuse pooled staging buffers. */
const SMALL_READ_BYTES = 4096;

export class Gpu {
  readonly pool: BufferPool;
  readonly limits: GPUSupportedLimits;
  readonly features: ReadonlySet<string>;
  /** True when kernels may `enable f16;` (the device has `shader-f16`). */
  readonly hasF16: boolean;

  private sources = new Map<string, string>();
  private modules = new Map<string, GPUShaderModule>();
  private pipelines = new Map<string, GPUComputePipeline>();

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private errorScopes: Promise<GPUError | null>[] = [];
  private uncaptured: GPUError[] = [];
  private lostReason: string | null = null;
  private lostPromise: Promise<never>;

  private arenas: GPUBuffer[] = [];
  /** CPU copies of the arenas' contents for the batch being recorded, and bytes used in each. */
  private arenaMirrors: Uint8Array[] = [];
  private arenaUsed: number[] = [];
  private smallStaging: GPUBuffer[] = [];
  private arenaIndex = 0;
  private arenaOffset = 0;
  private readonly uniformAlign: number;

  /**
   * Open `tidy` scopes (nn/tidy.ts), innermost last: each pooled tensor allocated while one is open
   * is recorded in the innermost, which frees it when it closes unless it is returned.
   */
  readonly scopes: Tensor[][] = [];

  /** Number of dispatches recorded since creation (tests use it to check "no work was done"). */
  dispatchCount = 0;

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
    this.pool = new BufferPool(device, device.limits.maxBufferSize);
    this.uniformAlign = device.limits.minUniformBufferOffsetAlignment;
    device.addEventListener('uncapturederror', (e) => {
      this.uncaptured.push((e as GPUUncapturedErrorEvent).error);
    });
    this.lostPromise = device.lost.then((info) => {
      this.lostReason = `WebGPU device lost (${info.reason}): ${info.message}`;
      throw new Error(this.lostReason);
    });
    this.lostPromise.catch(() => {}); // observed by read()/sync(); avoid unhandled-rejection noise
  }

  /** Acquires an adapter and device with the adapter's real limits and useful optional features. */
  static async create(options: GpuOptions = {}): Promise<Gpu> {
    let gpu = options.gpu ?? (globalThis.navigator as Navigator | undefined)?.gpu;
    const isNode = typeof process !== 'undefined' && !!process.versions?.node;
    let nodeGPU: ((toggles: string[]) => GPU) | undefined;
    if (!gpu && isNode) {
      nodeGPU = (await import('./node.js')).nodeGPU;
      gpu = nodeGPU([]);
    }
    if (!gpu) {
      throw new Error('WebGPU is not available: this browser has no navigator.gpu. Use a WebGPU-capable browser.');
    }
    let adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
    if (!adapter) throw new Error(noAdapterMessage(isNode));
    // Dawn on NVIDIA/Vulkan hides shader-f16 unless the instance is created with these toggles.
    if (nodeGPU && !adapter.features.has('shader-f16') && /nvidia/i.test(adapter.info.vendor)) {
      gpu = nodeGPU(['enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia']);
      adapter = (await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' })) ?? adapter;
    }

    const wanted = ['shader-f16', 'subgroups', 'timestamp-query'].filter(
      (f) => adapter!.features.has(f) && !(f === 'shader-f16' && options.disableF16),
    ) as GPUFeatureName[];
    const l = adapter.limits;
    const requiredLimits: Record<string, number> = {
      maxBufferSize: l.maxBufferSize,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    };
    const device = await adapter.requestDevice({ requiredFeatures: wanted, requiredLimits });
    const info = adapter.info;
    const summary: AdapterSummary = {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      backend: isNode ? 'dawn' : 'browser',
      features: [...device.features].map(String).sort(),
    };
    const ctx = new Gpu(gpu, adapter, device, summary);
    await ctx.loadKernelSources();
    return ctx;
  }

  private async loadKernelSources(): Promise<void> {
    const isNode = typeof process !== 'undefined' && !!process.versions?.node;
    await Promise.all(
      KERNELS.map(async (name) => {
        const url = kernelUrl(name);
        const text = isNode
          ? await (await import('node:fs/promises')).readFile(url, 'utf8')
          : await (await fetch(url)).text();
        this.sources.set(name, text);
      }),
    );
  }

  /** Registers WGSL source under a name (kernels outside kernels/, tests). */
  defineKernel(name: string, source: string): void {
    this.sources.set(name, source);
  }

  /** The WGSL source registered for `name` (loaded from kernels/, or given to defineKernel). */
  kernelSource(name: string): string {
    const src = this.sources.get(name);
    if (src === undefined) {
      throw new Error(`unknown kernel '${name}': add kernels/${name}.wgsl and list it in kernels/index.ts`);
    }
    return src;
  }

  /** Cached compute pipeline for kernel + entry point + override constants. */
  pipeline(kernel: string, entry = 'main', constants: Record<string, number> = {}): GPUComputePipeline {
    const key = `${kernel}:${entry}:${JSON.stringify(constants)}`;
    let p = this.pipelines.get(key);
    if (!p) {
      let module = this.modules.get(kernel);
      if (!module) {
        module = this.device.createShaderModule({ code: this.kernelSource(kernel), label: kernel });
        this.modules.set(kernel, module);
      }
      p = this.device.createComputePipeline({
        layout: 'auto',
        compute: { module, entryPoint: entry, constants },
        label: key,
      });
      this.pipelines.set(key, p);
    }
    return p;
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
    const bytes = storageBytes(dtype, numel(shape));
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

  // ---- recording -------------------------------------------------------------------------------

  private beginPass(): GPUComputePassEncoder {
    if (!this.encoder) {
      this.device.pushErrorScope('out-of-memory');
      this.device.pushErrorScope('validation');
      this.encoder = this.device.createCommandEncoder();
    }
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    return this.pass;
  }

  private endPass(): GPUCommandEncoder {
    this.beginPass();
    this.pass!.end();
    this.pass = null;
    return this.encoder!;
  }

  private writeParams(kernel: string, data: ArrayBuffer): { buffer: GPUBuffer; offset: number; size: number } {
    const size = data.byteLength;
    if (size > ARENA_BYTES) throw new Error(`${kernel}: params block of ${size} bytes exceeds the ${ARENA_BYTES}-byte arena`);
    if (this.arenaOffset + size > ARENA_BYTES) {
      this.arenaIndex++;
      this.arenaOffset = 0;
    }
    if (this.arenaIndex === this.arenas.length) {
      this.arenas.push(
        this.device.createBuffer({ size: ARENA_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: 'params-arena' }),
      );
      this.arenaMirrors.push(new Uint8Array(ARENA_BYTES));
      this.arenaUsed.push(0);
    }
    const buffer = this.arenas[this.arenaIndex];
    const offset = this.arenaOffset;
    // Staged on the CPU; `uploadParams` writes each arena once, just before the batch is submitted
    // (one queue write per batch instead of one per dispatch: a decode step has hundreds).
    this.arenaMirrors[this.arenaIndex].set(new Uint8Array(data), offset);
    this.arenaOffset = Math.ceil((offset + size) / this.uniformAlign) * this.uniformAlign;
    this.arenaUsed[this.arenaIndex] = offset + size;
    return { buffer, offset, size };
  }

  /** Writes the params staged for the recorded batch (ordered before the submit that follows). */
  private uploadParams(): void {
    for (let i = 0; i <= this.arenaIndex && i < this.arenas.length; i++) {
      const used = Math.ceil(this.arenaUsed[i] / 4) * 4;
      if (used > 0) this.device.queue.writeBuffer(this.arenas[i], 0, this.arenaMirrors[i].buffer, 0, used);
    }
    this.resetArena();
  }

  private resetArena(): void {
    this.arenaUsed.fill(0);
    this.arenaIndex = 0;
    this.arenaOffset = 0;
  }

  /** Records one compute dispatch. Nothing runs until the next read/flush. */
  dispatch(d: Dispatch): void {
    const maxGroups = this.limits.maxComputeWorkgroupsPerDimension;
    const [x, y = 1, z = 1] = d.workgroups;
    if (x > maxGroups || y > maxGroups || z > maxGroups) {
      throw new Error(`${d.kernel}: workgroup grid [${x}, ${y}, ${z}] exceeds ${maxGroups} per dimension`);
    }
    if (x === 0 || y === 0 || z === 0) return; // empty tensor: nothing to do
    const pass = this.beginPass(); // opens the error scopes first, so pipeline errors are caught too
    const pipeline = this.pipeline(d.kernel, d.entry, d.constants);
    const entries: GPUBindGroupEntry[] = [];
    if (d.params) entries.push({ binding: 0, resource: this.writeParams(d.kernel, d.params) });
    const maxBinding = this.limits.maxStorageBufferBindingSize;
    d.bindings.forEach((b, i) => {
      const t = b instanceof Tensor ? b : b.tensor;
      if (t.isDisposed) throw new Error(`${d.kernel}: binding ${i + 1} uses a disposed tensor [${t.shape}]`);
      const offset = b instanceof Tensor ? 0 : b.offset;
      const size = b instanceof Tensor ? Math.max(4, Math.ceil(t.byteLength / 4) * 4) : b.size;
      if (!(b instanceof Tensor)) {
        // A range past the tensor's end but inside its pool bucket's slack would pass validation
        // and read or write garbage, so check it against the tensor, not the buffer.
        const align = this.limits.minStorageBufferOffsetAlignment;
        if (offset % align || offset < 0 || size <= 0 || offset + size > Math.max(4, Math.ceil(t.byteLength / 4) * 4)) {
          throw new Error(
            `${d.kernel}: binding ${i + 1} is bytes ${offset} … ${offset + size} of [${t.shape}] ${t.dtype} (${t.byteLength} bytes); ` +
              `a range must lie inside the tensor and start at a multiple of ${align}`,
          );
        }
      }
      if (size > maxBinding) {
        throw new Error(
          `${d.kernel}: binding ${i + 1} ([${t.shape}] ${t.dtype}) is ${size} bytes, over maxStorageBufferBindingSize ` +
            `(${maxBinding}); the op must split it`,
        );
      }
      entries.push({ binding: i + 1, resource: { buffer: t.buffer, offset, size } });
    });
    const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    this.dispatchCount++;
  }

  /** Records a buffer-to-buffer copy (ends the open pass). */
  copy(src: Tensor, srcByteOffset: number, dst: Tensor, dstByteOffset: number, bytes: number): void {
    for (const [t, offset, name] of [[src, srcByteOffset, 'src'], [dst, dstByteOffset, 'dst']] as const) {
      if (offset < 0 || offset + bytes > Math.ceil(t.byteLength / 4) * 4) {
        throw new Error(`copy: ${name} bytes ${offset} … ${offset + bytes} are not inside [${t.shape}] ${t.dtype} (${t.byteLength} bytes)`);
      }
    }
    this.endPass().copyBufferToBuffer(src.buffer, srcByteOffset, dst.buffer, dstByteOffset, bytes);
  }

  /** Submits everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    const encoder = this.endPass();
    this.uploadParams();
    this.device.queue.submit([encoder.finish()]);
    this.encoder = null;
    this.errorScopes.push(this.device.popErrorScope(), this.device.popErrorScope());
  }

  /** Throws the first GPU error recorded since the last check (validation, OOM, device loss). */
  private async checkErrors(): Promise<void> {
    const scopes = this.errorScopes;
    this.errorScopes = [];
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
  async read(t: Tensor): Promise<Float32Array | Uint32Array | Int32Array> {
    if (t.isDisposed) throw new Error(`read: tensor [${t.shape}] was disposed`);
    const bytes = Math.ceil(t.byteLength / 4) * 4;
    // Small reads (token ids in the decode loop) reuse staging buffers; big ones get their own.
    const small = bytes <= SMALL_READ_BYTES;
    const staging =
      (small && this.smallStaging.pop()) ||
      this.device.createBuffer({ size: small ? SMALL_READ_BYTES : Math.max(4, bytes), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    let reusable = false;
    try {
      if (bytes > 0) this.copyRaw(t.buffer, staging, bytes);
      this.flush();
      await Promise.race([staging.mapAsync(GPUMapMode.READ), this.lostPromise]);
      await this.checkErrors();
      const raw = staging.getMappedRange(0, Math.max(4, bytes)).slice(0, bytes);
      staging.unmap();
      reusable = small;
      if (t.dtype === 'f32') return new Float32Array(raw, 0, t.size);
      if (t.dtype === 'u32') return new Uint32Array(raw, 0, t.size);
      if (t.dtype === 'i32') return new Int32Array(raw, 0, t.size);
      return f16ToF32Array(new Uint16Array(raw, 0, t.size));
    } finally {
      if (reusable) this.smallStaging.push(staging);
      else staging.destroy();
    }
  }

  private copyRaw(src: GPUBuffer, dst: GPUBuffer, bytes: number): void {
    this.endPass().copyBufferToBuffer(src, 0, dst, 0, bytes);
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
    this.flush();
    const querySet = this.device.createQuerySet({ type: 'timestamp', count: 2 });
    const resolve = this.device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const staging = this.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    try {
      this.device.pushErrorScope('out-of-memory');
      this.device.pushErrorScope('validation');
      this.encoder = this.device.createCommandEncoder();
      const timedPass = this.encoder.beginComputePass({
        timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 },
      });
      this.pass = timedPass;
      try {
        record();
      } catch (e) {
        // Drop the half-recorded pass: left open, it would be submitted later with timestamp
        // writes into the query set destroyed below, failing some unrelated read.
        this.discardRecording();
        throw e;
      }
      const intact = this.pass === timedPass;
      const encoder = this.endPass();
      encoder.resolveQuerySet(querySet, 0, 2, resolve, 0);
      encoder.copyBufferToBuffer(resolve, 0, staging, 0, 16);
      this.flush();
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

  /** Drops recorded, unsubmitted work (after an error while recording) and closes its error scopes. */
  private discardRecording(): void {
    if (!this.encoder) return;
    this.pass?.end();
    this.pass = null;
    this.encoder = null;
    this.resetArena();
    this.errorScopes.push(this.device.popErrorScope(), this.device.popErrorScope());
  }

  /** Releases the device; the process can exit afterwards. */
  destroy(): void {
    this.pass = null;
    this.encoder = null;
    this.pool.trim();
    for (const a of this.arenas) a.destroy();
    for (const b of this.smallStaging) b.destroy();
    this.device.destroy();
  }
}

function noAdapterMessage(isNode: boolean): string {
  if (!isNode) return 'WebGPU found no adapter (GPU blocked or unsupported). Try another browser or enable WebGPU.';
  return [
    'WebGPU (Dawn) found no adapter: no Vulkan driver that Dawn accepts is installed.',
    'On a headless Linux box, install Mesa\'s software Vulkan driver (lavapipe) ≥ 23, e.g. on Debian 12:',
    '  echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/backports.list',
    '  apt-get update && apt-get install -t bookworm-backports mesa-vulkan-drivers',
    'or run `npm run setup`, which does this (as root) after asking. Debian 12\'s stock Mesa 22.3 is too old.',
  ].join('\n');
}

function concatPad(bits: Uint16Array): Uint16Array {
  const out = new Uint16Array(bits.length + 1);
  out.set(bits);
  return out;
}
