/**
 * Recording: how one dispatch gets into the command stream.
 *
 *   dispatch({ kernel, constants, params, bindings, workgroups })
 *     → check the grid and every binding (inside its tensor, aligned, under the binding limit)
 *     → the cached pipeline (runtime/pipelines.ts)
 *     → the params block into the params arena (staged on the CPU, one queue write per batch)
 *     → a bind group: @binding(0) params, @binding(1…) the storage buffers in order
 *     → setPipeline / setBindGroup / dispatchWorkgroups into the one open compute pass
 *
 * All work goes into one command encoder with one open compute pass (a copy ends the pass; the next
 * dispatch opens another). `flush` writes the params, submits the encoder and keeps the error scopes
 * it opened, for the Gpu facade (runtime/gpu.ts) to check at the next read or sync.
 */
import { Tensor } from './tensor.js';
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

const ARENA_BYTES = 1 << 16;

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

  /** Number of dispatches recorded since creation (tests use it to check "no work was done"). */
  dispatchCount = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly kernels: KernelLibrary,
  ) {
    this.uniformAlign = device.limits.minUniformBufferOffsetAlignment;
  }

  private get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  /** True while recorded work waits to be submitted. */
  get pending(): boolean {
    return this.encoder !== null;
  }

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
    const pipeline = this.kernels.pipeline(d.kernel, d.entry, d.constants);
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

  /** Records a raw buffer-to-buffer copy (ends the open pass; the caller has checked the ranges). */
  copy(src: GPUBuffer, srcByteOffset: number, dst: GPUBuffer, dstByteOffset: number, bytes: number): void {
    this.endPass().copyBufferToBuffer(src, srcByteOffset, dst, dstByteOffset, bytes);
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
    for (const a of this.arenas) a.destroy();
  }
}
