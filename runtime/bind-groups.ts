/**
 * The bind-group cache. Creating a bind group costs more JS time than everything else in recording a
 * dispatch (≈ 11 µs on Dawn), and a decode step binds the same buffers every time: the weights, the
 * KV cache, and pooled activations that the buffer pool hands out in the same order each step. So a
 * group is made once per (layout, every bound buffer + offset + size) and reused across dispatches
 * and steps. The params uniform (binding 0) is bound at offset 0 of its arena with a dynamic offset,
 * so it does not make groups differ.
 *
 * A group that references a destroyed buffer would fail the next submit, so the buffer pool reports
 * every buffer it destroys (`forgetBuffer`), and the cache is bounded (least recently used groups go
 * first), so a long generation or many image sizes cannot grow it without end.
 */
import type { LayoutRecord } from './pipelines.js';

interface CachedGroup {
  hash: number;
  layout: LayoutRecord;
  buffers: GPUBuffer[];
  offsets: number[];
  sizes: number[];
  group: GPUBindGroup;
}

/** Default bound on cached groups: a Vicuna-7B decode step binds ~520 distinct groups, a 1536² encode ~330. */
export const BIND_GROUP_CACHE_SIZE = 4096;

export class BindGroupCache {
  private byHash = new Map<number, CachedGroup[]>();
  /** Insertion order is recency: the first entry is the least recently used. */
  private recency = new Map<CachedGroup, true>();
  private byBuffer = new Map<GPUBuffer, CachedGroup[]>();
  private ids = new WeakMap<GPUBuffer, number>();
  private nextId = 1;
  /** Lookups answered from the cache, and groups created. */
  hits = 0;
  misses = 0;

  constructor(
    private readonly device: GPUDevice,
    readonly capacity = BIND_GROUP_CACHE_SIZE,
  ) {}

  get size(): number {
    return this.recency.size;
  }

  private id(buffer: GPUBuffer): number {
    let id = this.ids.get(buffer);
    if (id === undefined) this.ids.set(buffer, (id = this.nextId++));
    return id;
  }

  /**
   * The group binding buffers[i] (bytes offsets[i] … + sizes[i]) at binding firstBinding + i, for
   * i < count. The arrays are the caller's scratch space: they are copied if a group is created.
   */
  get(layout: LayoutRecord, firstBinding: number, count: number, buffers: GPUBuffer[], offsets: number[], sizes: number[]): GPUBindGroup {
    let hash = layout.id;
    for (let i = 0; i < count; i++) {
      hash = Math.imul(hash ^ this.id(buffers[i]), 0x01000193);
      hash = Math.imul(hash ^ offsets[i], 0x01000193);
      hash = Math.imul(hash ^ sizes[i], 0x01000193);
    }
    const bucket = this.byHash.get(hash);
    if (bucket) {
      for (const g of bucket) {
        if (g.layout !== layout || g.buffers.length !== count) continue;
        let same = true;
        for (let i = 0; i < count && same; i++) same = g.buffers[i] === buffers[i] && g.offsets[i] === offsets[i] && g.sizes[i] === sizes[i];
        if (same) {
          this.recency.delete(g);
          this.recency.set(g, true);
          this.hits++;
          return g.group;
        }
      }
    }
    this.misses++;
    const entries: GPUBindGroupEntry[] = [];
    for (let i = 0; i < count; i++) entries.push({ binding: firstBinding + i, resource: { buffer: buffers[i], offset: offsets[i], size: sizes[i] } });
    const g: CachedGroup = {
      hash,
      layout,
      buffers: buffers.slice(0, count),
      offsets: offsets.slice(0, count),
      sizes: sizes.slice(0, count),
      group: this.device.createBindGroup({ layout: layout.bindGroupLayout, entries }),
    };
    if (bucket) bucket.push(g);
    else this.byHash.set(hash, [g]);
    this.recency.set(g, true);
    g.buffers.forEach((b, i) => {
      if (g.buffers.indexOf(b) < i) return; // bound twice in this group: listed once
      const list = this.byBuffer.get(b);
      if (list) list.push(g);
      else this.byBuffer.set(b, [g]);
    });
    if (this.recency.size > this.capacity) this.evict(this.recency.keys().next().value!);
    return g.group;
  }

  /** Drops every group that binds `buffer` (it is being destroyed). */
  forgetBuffer(buffer: GPUBuffer): void {
    const list = this.byBuffer.get(buffer);
    if (!list) return;
    for (const g of [...list]) this.evict(g);
    this.byBuffer.delete(buffer);
  }

  clear(): void {
    this.byHash.clear();
    this.recency.clear();
    this.byBuffer.clear();
  }

  private evict(g: CachedGroup): void {
    if (!this.recency.delete(g)) return;
    const bucket = this.byHash.get(g.hash)!;
    bucket.splice(bucket.indexOf(g), 1);
    if (bucket.length === 0) this.byHash.delete(g.hash);
    for (const b of g.buffers) {
      const list = this.byBuffer.get(b);
      if (!list) continue;
      const at = list.indexOf(g);
      if (at >= 0) list.splice(at, 1);
      if (list.length === 0) this.byBuffer.delete(b);
    }
  }
}
