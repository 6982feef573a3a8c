/**
 * Recording: how one dispatch gets into the command stream.
 *
 *   dispatch({ kernel, constants, params, bindings, workgroups })
 *     → check the grid and every binding (inside its tensor, aligned, under the binding limit)
 *     → the cached pipeline for its constants and binding count (runtime/pipelines.ts)
 *     → the params block into the params arena (staged on the CPU, one queue write per batch)
 *     → a cached bind group (runtime/bind-groups.ts): @binding(0) the arena, the block reached by a
 *       dynamic offset; @binding(1…) the storage buffers in order
 *     → setPipeline / setBindGroup / dispatchWorkgroups into the one open compute pass
 *
 * All work goes into one command encoder with one open compute pass (a copy ends the pass; the next
 * dispatch opens another). `flush` writes the params, submits the encoder and keeps the error scopes
 * it opened, for the Gpu facade (runtime/gpu.ts) to check at the next read or sync.
 *
 * Counters for benchmarks: dispatches, passes, copies and the JS time spent in dispatch(). Two
 * modes: compile-only (Gpu.precompile: pipelines are made, nothing is recorded) and profiling
 * (Gpu.profile: each dispatch in a pass of its own with timestamp writes).
 */
import { Tensor } from './tensor.js';
import { BindGroupCache } from './bind-groups.js';
import type { KernelLibrary } from './pipelines.js';

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

/**
 * Bytes per params arena. One dynamic-offset binding reaches anywhere in it, so the bigger it is the
 * fewer distinct bind groups a batch needs: 1 MiB holds 4096 blocks at 256-byte alignment, more than
 * one decode step or image encode of the largest model records.
 */
const ARENA_BYTES = 1 << 20;

/** What `profile` collects: each dispatch in its own pass, timed by timestamps or by completion. */
export interface ProfileState {
  rows: { kernel: string; entry: string }[];
  /** Timestamp queries: one set per 2048 queries (begin, end per dispatch). */
  querySets: GPUQuerySet[] | null;
  /** Without timestamp queries: when each dispatch was submitted alone, and when it completed. */
  submitted: number[];
  done: Promise<number>[];
}

const QUERIES_PER_SET = 2048;

export class CommandRecorder {
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /** Error scopes of submitted batches, not yet checked. */
  private errorScopes: Promise<GPUError | null>[] = [];

  private arenas: GPUBuffer[] = [];
  /** CPU copies of the arenas' contents for the batch being recorded, and bytes used in each. */
  private arenaMirrors: Uint8Array[] = [];
  private arenaUsed: number[] = [];
  private arenaIndex = 0;
  private arenaOffset = 0;
  private readonly uniformAlign: number;
  private readonly maxGroups: number;
  private readonly maxBinding: number;
  private readonly storageAlign: number;
  private readonly maxParamsBytes: number;

  readonly bindGroups: BindGroupCache;
  /** Scratch space for one dispatch's bound ranges (no allocation per dispatch). */
  private readonly scratchBuffers: GPUBuffer[] = [];
  private readonly scratchOffsets: number[] = [];
  private readonly scratchSizes: number[] = [];
  private readonly dynamicOffset = [0];

  /** While set, dispatches compile their pipelines and record nothing (Gpu.precompile). */
  compileOnly = false;
  private profiling: ProfileState | null = null;

  /** Dispatches recorded since creation (tests use it to check "no work was done"). */
  dispatchCount = 0;
  /** Compute passes begun (a copy ends the open pass; the next dispatch begins another). */
  passCount = 0;
  /** Buffer copies recorded, not counting the copy of a read into its staging buffer. */
  copyCount = 0;
  /** Milliseconds of JS spent inside dispatch(): checks, pipeline lookup, params, bind group, encoding. */
  recordMs = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly kernels: KernelLibrary,
  ) {
    const l = device.limits;
    this.uniformAlign = l.minUniformBufferOffsetAlignment;
    this.maxGroups = l.maxComputeWorkgroupsPerDimension;
    this.maxBinding = l.maxStorageBufferBindingSize;
    this.storageAlign = l.minStorageBufferOffsetAlignment;
    this.maxParamsBytes = Math.min(l.maxUniformBufferBindingSize, ARENA_BYTES);
    this.bindGroups = new BindGroupCache(device);
  }

  /** True while recorded work waits to be submitted. */
  get pending(): boolean {
    return this.encoder !== null;
  }

  /** The open command encoder (opened with its error scopes when there is none). */
  private openEncoder(): GPUCommandEncoder {
    if (!this.encoder) {
      this.device.pushErrorScope('out-of-memory');
      this.device.pushErrorScope('validation');
      this.encoder = this.device.createCommandEncoder();
    }
    return this.encoder;
  }

  private beginPass(): GPUComputePassEncoder {
    const encoder = this.openEncoder();
    if (!this.pass) {
      this.pass = encoder.beginComputePass();
      this.passCount++;
    }
    return this.pass;
  }

  /** Ends the open pass, if any (a copy or the submit follows); returns the encoder. */
  private endPass(): GPUCommandEncoder {
    const encoder = this.openEncoder();
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    return encoder;
  }

  private writeParams(kernel: string, data: ArrayBuffer): { buffer: GPUBuffer; offset: number } {
    const size = data.byteLength;
    if (size > this.maxParamsBytes) throw new Error(`${kernel}: params block of ${size} bytes exceeds the ${this.maxParamsBytes}-byte uniform binding limit`);
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
    return { buffer, offset };
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
    const start = performance.now();
    const [x, y = 1, z = 1] = d.workgroups;
    const maxGroups = this.maxGroups;
    if (x > maxGroups || y > maxGroups || z > maxGroups) {
      throw new Error(`${d.kernel}: workgroup grid [${x}, ${y}, ${z}] exceeds ${maxGroups} per dimension`);
    }
    if (x === 0 || y === 0 || z === 0) return; // empty tensor: nothing to do
    // Every binding: not disposed, a range inside its tensor, under the binding limit.
    const bindings = d.bindings;
    const n = bindings.length;
    const first = d.params ? 1 : 0; // scratch slot of binding 1
    const buffers = this.scratchBuffers;
    const offsets = this.scratchOffsets;
    const sizes = this.scratchSizes;
    for (let i = 0; i < n; i++) {
      const b = bindings[i];
      const whole = b instanceof Tensor;
      const t = whole ? b : b.tensor;
      if (t.isDisposed) throw new Error(`${d.kernel}: binding ${i + 1} uses a disposed tensor [${t.shape}]`);
      const tensorBytes = Math.max(4, Math.ceil(t.byteLength / 4) * 4);
      const offset = whole ? 0 : b.offset;
      const size = whole ? tensorBytes : b.size;
      // A range past the tensor's end but inside its pool bucket's slack would pass validation
      // and read or write garbage, so check it against the tensor, not the buffer.
      if (!whole && (offset % this.storageAlign || offset < 0 || size <= 0 || offset + size > tensorBytes)) {
        throw new Error(
          `${d.kernel}: binding ${i + 1} is bytes ${offset} … ${offset + size} of [${t.shape}] ${t.dtype} (${t.byteLength} bytes); ` +
            `a range must lie inside the tensor and start at a multiple of ${this.storageAlign}`,
        );
      }
      if (size > this.maxBinding) {
        throw new Error(
          `${d.kernel}: binding ${i + 1} ([${t.shape}] ${t.dtype}) is ${size} bytes, over maxStorageBufferBindingSize ` +
            `(${this.maxBinding}); the op must split it`,
        );
      }
      buffers[first + i] = t.buffer;
      offsets[first + i] = offset;
      sizes[first + i] = size;
    }
    if (this.compileOnly) {
      this.kernels.resolve(d.kernel, d.entry ?? 'main', d.constants, first === 1, n);
      return;
    }
    if (this.profiling) this.beginProfiledPass();
    const pass = this.beginPass(); // opens the error scopes first, so pipeline errors are caught too
    const variant = this.kernels.resolve(d.kernel, d.entry ?? 'main', d.constants, first === 1, n);
    if (d.params) {
      const { buffer, offset } = this.writeParams(d.kernel, d.params);
      buffers[0] = buffer;
      offsets[0] = 0;
      sizes[0] = d.params.byteLength;
      this.dynamicOffset[0] = offset;
    }
    const group = this.bindGroups.get(variant.layout, first ? 0 : 1, first + n, buffers, offsets, sizes);
    pass.setPipeline(variant.pipeline);
    if (d.params) pass.setBindGroup(0, group, this.dynamicOffset);
    else pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(x, y, z);
    this.dispatchCount++;
    if (this.profiling) this.endProfiledPass(d);
    this.recordMs += performance.now() - start;
  }

  /** Profiling: each dispatch gets a pass of its own, with timestamps at its start and end. */
  private beginProfiledPass(): void {
    const p = this.profiling!;
    if (this.pass) this.endPass();
    if (!p.querySets) return; // beginPass() opens a plain pass
    const index = 2 * p.rows.length;
    if (index % QUERIES_PER_SET === 0) p.querySets.push(this.device.createQuerySet({ type: 'timestamp', count: QUERIES_PER_SET }));
    const querySet = p.querySets[p.querySets.length - 1];
    const at = index % QUERIES_PER_SET;
    this.openEncoder();
    this.pass = this.encoder!.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: at, endOfPassWriteIndex: at + 1 } });
    this.passCount++;
  }

  private endProfiledPass(d: Dispatch): void {
    const p = this.profiling!;
    p.rows.push({ kernel: d.kernel, entry: d.entry ?? 'main' });
    this.endPass();
    if (!p.querySets) {
      // No timestamps: submit this dispatch alone; its completion time bounds its GPU time.
      p.submitted.push(performance.now());
      this.flush();
      p.done.push(this.device.queue.onSubmittedWorkDone().then(() => performance.now()));
    }
  }

  /** Starts profiling: from now on each dispatch is recorded in a pass of its own (Gpu.profile). */
  startProfile(timestamps: boolean): void {
    this.flush();
    this.profiling = { rows: [], querySets: timestamps ? [] : null, submitted: [], done: [] };
  }

  /**
   * Ends profiling. With timestamps, resolves them into `staging` (8 bytes per query, `rows.length`
   * pairs) and submits; returns what was collected. On `abandon` the recorded work is dropped.
   */
  stopProfile(abandon: boolean, makeStaging: (bytes: number) => { resolve: GPUBuffer; staging: GPUBuffer } | null): ProfileState {
    const p = this.profiling!;
    this.profiling = null;
    if (abandon) {
      this.discard();
      return p;
    }
    if (p.querySets && p.rows.length) {
      const queries = 2 * p.rows.length;
      const buffers = makeStaging(queries * 8)!;
      const encoder = this.openEncoder();
      if (this.pass) this.endPass();
      p.querySets.forEach((qs, i) => {
        const count = Math.min(QUERIES_PER_SET, queries - i * QUERIES_PER_SET);
        encoder.resolveQuerySet(qs, 0, count, buffers.resolve, i * QUERIES_PER_SET * 8);
      });
      encoder.copyBufferToBuffer(buffers.resolve, 0, buffers.staging, 0, queries * 8);
    }
    this.flush();
    return p;
  }

  /** Records a raw buffer-to-buffer copy (ends the open pass; the caller has checked the ranges). */
  copy(src: GPUBuffer, srcByteOffset: number, dst: GPUBuffer, dstByteOffset: number, bytes: number, staging = false): void {
    if (this.compileOnly) return;
    this.endPass().copyBufferToBuffer(src, srcByteOffset, dst, dstByteOffset, bytes);
    if (!staging) this.copyCount++;
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

  /** The error scopes of every batch submitted since the last call. */
  takeErrorScopes(): Promise<GPUError | null>[] {
    return this.errorScopes.splice(0);
  }

  /**
   * Records `record`'s dispatches into one compute pass whose start and end write timestamps into
   * `querySet`, resolves them into `staging` and submits. Returns false if `record` split the pass
   * (a copy), so the timestamps do not span all of its work.
   */
  recordTimed(querySet: GPUQuerySet, resolve: GPUBuffer, staging: GPUBuffer, record: () => void): boolean {
    this.flush();
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    this.encoder = this.device.createCommandEncoder();
    const timedPass = this.encoder.beginComputePass({
      timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 },
    });
    this.pass = timedPass;
    this.passCount++;
    try {
      record();
    } catch (e) {
      // Drop the half-recorded pass: left open, it would be submitted later with timestamp
      // writes into the query set the caller destroys, failing some unrelated read.
      this.discard();
      throw e;
    }
    const intact = this.pass === timedPass;
    const encoder = this.endPass();
    encoder.resolveQuerySet(querySet, 0, 2, resolve, 0);
    encoder.copyBufferToBuffer(resolve, 0, staging, 0, 16);
    this.flush();
    return intact;
  }

  /** Drops recorded, unsubmitted work (after an error while recording) and closes its error scopes. */
  private discard(): void {
    if (!this.encoder) return;
    this.pass?.end();
    this.pass = null;
    this.encoder = null;
    this.resetArena();
    this.errorScopes.push(this.device.popErrorScope(), this.device.popErrorScope());
  }

  /** Forgets unsubmitted work and frees the arenas (the device is going away). */
  destroy(): void {
    this.pass = null;
    this.encoder = null;
    this.bindGroups.clear();
    for (const a of this.arenas) a.destroy();
  }
}
