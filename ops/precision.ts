/**
 * Activation precision: f32, or f16 where the adapter has `shader-f16`.
 *
 * An activation tensor's dtype is its precision: `'f32'`, or `'f16'` (two bytes per element — the
 * same packed layout as f16 weights, runtime/tensor.ts, which WGSL sees as `array<f16>`). An op's
 * output takes its input's precision, so a model runs in f16 by casting its inputs (pixel values,
 * the embedding rows) to f16 and allocating its KV cache in f16: every op downstream follows.
 *
 * Kernels are written once. Each declares the WGSL types of its activation storage as aliases —
 *
 *     alias act = f32;     // activations (f16 in the +f16 variant)
 *
 * — reads them as `f32(x[i])` / `vec4<f32>(x4[i])`, computes in f32 and stores `act(v)`. The f16
 * variant is the same file with `enable f16;` prepended and the named aliases set to f16
 * (`precisionKernel`), registered once per device as `<kernel>+f16(<aliases>)`. In the f32 variant
 * the conversions are identities, so the f32 path compiles to exactly what it was.
 *
 * Where the f16 variant rounds: only at the stores. Products of two f16 values are exact in f32 (22
 * significant bits ≤ 24), so a dot product of f16 operands accumulated in f32 is what tensor cores
 * compute (f16×f16→f32); norms' statistics, softmax and attention sums stay f32. A single `+` or `*`
 * of two f16 values done in f16 equals the f32 operation rounded once to f16 (24 ≥ 2·11 + 2 bits), so
 * kernels may do those in f16 and the references below still hold.
 *
 * References: the CPU reference of an f16 kernel is the f32 reference applied to the f16 inputs with
 * its outputs rounded to f16 (round to nearest even, runtime/half.ts) — `f16Ref` — i.e. it rounds at
 * the same points as the kernel.
 */
import ndarray, { type NdArray } from 'ndarray';
import type { Gpu } from '../runtime/gpu.js';
import { f16BitsToF32, f32ToF16Bits } from '../runtime/half.js';
import type { Tensor } from '../runtime/tensor.js';

/** Storage precision of activations (weights have their own dtype, --dtype). */
export type Precision = 'f32' | 'f16';

/** The precision of an activation tensor (throws for any other dtype). */
export function precisionOf(op: string, t: Tensor, name = 'x'): Precision {
  if (t.dtype === 'f32' || t.dtype === 'f16') return t.dtype;
  throw new Error(`${op}: ${name} must be an f32 or f16 activation tensor, got ${t.dtype}`);
}

/** Throws unless every tensor has precision `p` (an op's activations share one precision). */
export function assertPrecision(op: string, p: Precision, tensors: Record<string, Tensor | undefined>): void {
  for (const [name, t] of Object.entries(tensors)) {
    if (t && t.dtype !== p) throw new Error(`${op}: ${name} is ${t.dtype} but the op runs at ${p} (activations must share one precision; cast first)`);
  }
}

/** Throws a clear error when f16 activations are asked of a device without `shader-f16`. */
export function assertF16Capable(gpu: Gpu, what: string): void {
  if (!gpu.hasF16) {
    throw new Error(`${what}: f16 activations need the adapter feature 'shader-f16', which this device lacks (${gpu.summary.description || gpu.summary.device}); use precision 'f32'`);
  }
}

/** The default precision on a device: f16 where the adapter has `shader-f16`, else f32. */
export function defaultPrecision(gpu: Gpu): Precision {
  return gpu.hasF16 ? 'f16' : 'f32';
}

/** The WGSL of a kernel's variant where `alias <name> = f32;` becomes f16 for each name given. */
export function f16Source(kernel: string, source: string, aliases: readonly string[]): string {
  let out = source;
  for (const name of aliases) {
    const decl = new RegExp(`^alias ${name} = f32;`, 'm');
    if (!decl.test(out)) throw new Error(`kernel '${kernel}' declares no \`alias ${name} = f32;\` line to switch to f16`);
    out = out.replace(decl, `alias ${name} = f16;`);
  }
  return `enable f16;\n${out}`;
}

const registered = new WeakMap<Gpu, Set<string>>();

/**
 * The kernel to dispatch for `kernel` with the given aliases in f16: `kernel` itself when none is,
 * else `<kernel>+f16(<names>)`, registered on first use. Compose with subgroupKernel by passing its
 * result there (the subgroup variant of the f16 variant).
 */
export function precisionKernel(gpu: Gpu, kernel: string, f16Aliases: readonly string[]): string {
  if (f16Aliases.length === 0) return kernel;
  assertF16Capable(gpu, kernel);
  const name = `${kernel}+f16(${f16Aliases.join(',')})`;
  let names = registered.get(gpu);
  if (!names) registered.set(gpu, (names = new Set()));
  if (!names.has(name)) {
    gpu.defineKernel(name, f16Source(kernel, gpu.kernelSource(kernel), f16Aliases));
    names.add(name);
  }
  return name;
}

/** Convenience: the variant for one alias `act` at precision p. */
export function actKernel(gpu: Gpu, kernel: string, p: Precision): string {
  return precisionKernel(gpu, kernel, p === 'f16' ? ['act'] : []);
}

// ---- CPU side ----------------------------------------------------------------------------------

/** x rounded to the nearest f16 (ties to even), as a number. */
export function roundF16(x: number): number {
  return f16BitsToF32(f32ToF16Bits(x));
}

/** Values rounded to f16, in place; returns the array. */
export function roundF16Array<A extends Float32Array>(values: A): A {
  for (let i = 0; i < values.length; i++) values[i] = roundF16(values[i]);
  return values;
}

/** A copy of x with every element rounded to f16. */
export function toF16Nd(x: NdArray<Float32Array>): NdArray<Float32Array> {
  return ndarray(roundF16Array(Float32Array.from(x.data)), x.shape.slice());
}

/**
 * The f16 reference of an op from its f32 reference: the f32 computation on the f16 tensors' values
 * (pass the inputs as uploaded: `toF16Nd` of the random data), its output rounded to f16 — the
 * rounding points of a kernel that reads f16, computes in f32 and stores f16 once.
 */
export function f16Ref<A extends unknown[]>(ref: (...args: A) => NdArray<Float32Array>): (...args: A) => NdArray<Float32Array> {
  return (...args: A) => toF16Nd(ref(...args));
}
