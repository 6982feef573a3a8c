/**
 * The kernel manifest: every `kernels/<name>.wgsl` file. The runtime loads these sources once when a
 * device is created (fs in Node, fetch in a browser), so dispatch is synchronous afterwards.
 * A spec checks that this list and the folder agree.
 */
export const KERNELS = [
  'add',
  'cast',
  'linear_matvec',
  'linear_tiled',
  'qkv_rope',
  'gate_up_swiglu',
  'rope',
  'argmax',
  'embedding',
  'attention_prefill',
  'attention_decode',
  'attention_combine',
  'sample_scan',
  'sample_histogram',
  'sample_gather',
  'sample_draw',
  'append_id',
  'gelu',
  'swiglu',
  'layer_norm',
  'rms_norm',
  'transpose',
  'dwconv7',
  'patch_conv',
  'random_fill',
] as const;

export type KernelName = (typeof KERNELS)[number];

/** URL of a kernel's source, next to this module (works for Node file URLs and bundlers alike). */
export function kernelUrl(name: string): URL {
  return new URL(`./${name}.wgsl`, import.meta.url);
}
