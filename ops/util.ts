/** Small helpers shared by the ops' dispatch code. */
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';

/**
 * Workgroups per row of a folded 1-D grid. Kernels read it as the `override GRID_X` constant and
 * recover the flat index as `gid.x + gid.y * GRID_X * WG`. (The `num_workgroups` builtin would be
 * the obvious way, but Dawn on Mesa lavapipe crashes on it, so the row width is a constant.)
 */
export const GRID_X = 32768;

/** Workgroup grid for `n` independent items in workgroups of `wg`: [x, y], x ≤ GRID_X when folded. */
export function grid1d(gpu: Gpu, n: number, wg: number): [number, number] {
  const groups = Math.ceil(n / wg);
  if (groups <= gpu.limits.maxComputeWorkgroupsPerDimension) return [groups, 1];
  return [GRID_X, Math.ceil(groups / GRID_X)];
}

/** Throws an error naming both shapes when they differ. */
export function assertSameShape(op: string, a: Tensor | { shape: readonly number[] }, b: Tensor | { shape: readonly number[] }, names = ['a', 'b']): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`${op}: shape mismatch: ${names[0]} is [${a.shape}] but ${names[1]} is [${b.shape}]`);
  }
}

/** Throws unless the tensor has the given dtype(s). */
export function assertDType(op: string, t: Tensor, name: string, ...dtypes: string[]): void {
  if (!dtypes.includes(t.dtype)) throw new Error(`${op}: ${name} must be ${dtypes.join(' or ')}, got ${t.dtype}`);
}

/** Greatest common divisor / least common multiple (aligning chunk sizes to binding offsets). */
export function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

export function lcm(a: number, b: number): number {
  return (a / gcd(a, b)) * b;
}

/** Throws unless `cond`, with a message naming the op. */
export function check(op: string, cond: boolean, message: string): asserts cond {
  if (!cond) throw new Error(`${op}: ${message}`);
}
