/**
 * Subgroup variants of the matrix-vector kernels (linear_matvec, qkv_rope, gate_up_swiglu).
 *
 * A column of those kernels is summed by LANES invocations. Without subgroups they add their partial
 * sums up in workgroup memory, log2(LANES) barriers; with them, when a column's lanes sit in one
 * subgroup, a butterfly of `subgroupShuffleXor` does it in registers with no barrier. WGSL has no
 * conditional compilation and `enable subgroups;` must not reach a device without the feature, so a
 * kernel keeps its subgroup-only lines commented with a `//subgroups:` marker; the variant is the
 * same file with the marker stripped, registered once per device as `<kernel>+subgroups` and run with
 * the override SUBGROUPS = true.
 *
 * Assumes what Vulkan and Metal do for 1-D workgroups: subgroup i holds local invocations
 * i·size … i·size + size − 1, so LANES consecutive invocations (LANES dividing the size) share one.
 * The kernel specs check the variant against the references wherever the adapter has subgroups.
 */
import type { Gpu } from '../runtime/gpu.js';

/** The WGSL of a kernel's subgroup variant: its `//subgroups:` lines made live. */
export function subgroupSource(source: string): string {
  return source.replace(/^\/\/subgroups: ?/gm, '');
}

const registered = new WeakMap<Gpu, Set<string>>();

/**
 * The kernel name, SUBGROUPS flag and lanes per column to dispatch `kernel` with, for columns that
 * want `lanes` invocations (ops/linear.ts matvecLanes): on a device with subgroups the lanes are
 * capped at the subgroup size (lavapipe 8; NVIDIA's 32 caps nothing), so every column sums in one
 * subgroup with the shuffle butterfly — each lane then covers more of the row, and a workgroup more
 * columns — instead of a barrier tree across subgroups.
 */
export function subgroupKernel(gpu: Gpu, kernel: string, lanes: number): { kernel: string; SUBGROUPS: 0 | 1; lanes: number } {
  const size = gpu.subgroupMinSize;
  if (!size || (size & (size - 1)) !== 0) return { kernel, SUBGROUPS: 0, lanes };
  const name = `${kernel}+subgroups`;
  let names = registered.get(gpu);
  if (!names) registered.set(gpu, (names = new Set()));
  if (!names.has(name)) {
    gpu.defineKernel(name, subgroupSource(gpu.kernelSource(kernel)));
    names.add(name);
  }
  return { kernel: name, SUBGROUPS: 1, lanes: Math.min(lanes, size) };
}
