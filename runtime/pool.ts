/**
 * A GPUBuffer pool. Sizes are rounded up to a bucket (1/8-octave steps: at most 12.5 % slack) so a
 * steady-state forward pass, which asks for the same sizes every time, reuses buffers and allocates
 * nothing. Of a bucket's free buffers the oldest (lowest id) is handed out, whatever order they were
 * released in: a decode step that asks for the same sizes in the same order then gets the same
 * buffers every step, so the recorder's cached bind groups (runtime/bind-groups.ts) are reused
 * instead of missing on a rotated free list. Releasing a buffer that recorded-but-unsubmitted commands still use is safe: WebGPU
 * orders dispatches, so a later writer waits for the earlier reader. (Queue writes are not ordered
 * that way; Gpu.write submits the recorded work before writing.)
 */
export class BufferPool {
  /** Free buffers per bucket size, highest id first (so pop() gives the oldest). */
  private free = new Map<number, GPUBuffer[]>();
  private ids = new WeakMap<GPUBuffer, number>();
  private nextId = 0;
  private exact = new Set<GPUBuffer>();
  /** Pooled buffers currently handed out: releasing one twice would hand it to two tensors. */
  private live = new Set<GPUBuffer>();
  /** Bytes currently handed out, and the high-water mark (for "peak GPU memory" reports). */
  liveBytes = 0;
  peakBytes = 0;
  /** Bytes held by the pool (handed out + free). */
  heldBytes = 0;
  /** Called just before the pool destroys a buffer (the recorder drops bind groups that use it). */
  onDestroy: (buffer: GPUBuffer) => void = () => {};

  constructor(
    private readonly device: GPUDevice,
    private readonly maxBufferSize: number,
  ) {}

  static bucket(bytes: number): number {
    const b = Math.max(16, Math.ceil(bytes / 4) * 4);
    if (b <= 4096) return Math.ceil(b / 256) * 256;
    const octave = 2 ** Math.floor(Math.log2(b));
    const step = octave / 8;
    return Math.ceil(b / step) * step;
  }

  acquire(bytes: number, label?: string): GPUBuffer {
    const size = BufferPool.bucket(bytes);
    if (size > this.maxBufferSize) {
      throw new Error(
        `buffer of ${bytes} bytes exceeds this adapter's maxBufferSize (${this.maxBufferSize}); split the tensor`,
      );
    }
    const list = this.free.get(size);
    let buffer = list?.pop();
    if (!buffer) {
      buffer = this.device.createBuffer({
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
        label,
      });
      this.ids.set(buffer, this.nextId++);
      this.heldBytes += size;
    }
    this.live.add(buffer);
    this.liveBytes += size;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes);
    return buffer;
  }

  /**
   * An exact-size buffer outside the pool, for tensors that live as long as the model (weights): the
   * pool's bucket rounding would waste up to 12.5 % of a 14 GB checkpoint. Counted in liveBytes.
   */
  acquireExact(bytes: number, label?: string): GPUBuffer {
    const size = Math.max(16, Math.ceil(bytes / 4) * 4);
    if (size > this.maxBufferSize) {
      throw new Error(`buffer of ${bytes} bytes exceeds this adapter's maxBufferSize (${this.maxBufferSize}); split the tensor`);
    }
    const buffer = this.device.createBuffer({
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      label,
    });
    this.exact.add(buffer);
    this.heldBytes += size;
    this.liveBytes += size;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes);
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    if (this.exact.delete(buffer)) {
      this.liveBytes -= buffer.size;
      this.heldBytes -= buffer.size;
      this.onDestroy(buffer);
      buffer.destroy();
      return;
    }
    if (!this.live.delete(buffer)) {
      throw new Error(
        `BufferPool: buffer '${buffer.label}' (${buffer.size} bytes) released twice — two tensors (e.g. a reshape view and its source) were both disposed`,
      );
    }
    const size = buffer.size;
    this.liveBytes -= size;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    // Keep the list in descending id order (lists are short: the buffers of one size a pass holds).
    const id = this.ids.get(buffer)!;
    let at = list.length;
    while (at > 0 && this.ids.get(list[at - 1])! < id) at--;
    list.splice(at, 0, buffer);
  }

  /** Destroys every free buffer (handed-out ones stay valid). */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        this.heldBytes -= b.size;
        this.onDestroy(b);
        b.destroy();
      }
    }
    this.free.clear();
  }
}
