/**
 * Shared spec helpers: one GPU device for the whole run, seeded random inputs, and the tolerance
 * check every kernel spec uses: |a − b| ≤ atol + rtol·|ref|, failing with the first mismatches.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ndarray, { type NdArray } from 'ndarray';
import { Gpu, type Binding } from '../runtime/gpu.js';
import { Tensor } from '../runtime/tensor.js';
import { uniformStream } from '../llm/generate.js';
import { toF16Nd } from '../ops/precision.js';

let shared: Promise<Gpu> | null = null;

/** The spec run's GPU context (created on first use, destroyed after all specs). */
export function testGpu(): Promise<Gpu> {
  shared ??= Gpu.create();
  return shared;
}

export const mochaHooks = {
  async afterAll() {
    if (shared) (await shared).destroy();
  },
};

/** Deterministic PRNG (mulberry32): the sampler's own seeded stream (llm/generate.ts), one copy. */
export const rng: (seed: number) => () => number = uniformStream;

/** Uniform random values in [lo, hi). */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

/** A random f32 ndarray of `shape` with values in [-1, 1). */
export function randomNd(shape: number[], seed: number, lo = -1, hi = 1): NdArray<Float32Array> {
  return ndarray(randomArray(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape);
}

export interface Tolerance {
  atol: number;
  rtol: number;
}

/** Asserts |actual − expected| ≤ atol + rtol·|expected| everywhere; the error lists the first mismatches. */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { atol, rtol }: Tolerance,
  label = 'result',
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${label}: length ${actual.length} != expected ${expected.length}`);
  }
  const bad: string[] = [];
  let count = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const err = Math.abs(a - e);
    const tol = atol + rtol * Math.abs(e);
    if (!(err <= tol)) {
      count++;
      worst = Math.max(worst, Number.isNaN(err) ? Infinity : err / tol);
      if (bad.length < 8) bad.push(`  [${i}] got ${a}, expected ${e} (|diff| ${err.toExponential(2)} > tol ${tol.toExponential(2)})`);
    }
  }
  if (count) {
    throw new Error(
      `${label}: ${count} of ${expected.length} elements outside atol=${atol} rtol=${rtol} (worst ${worst.toFixed(1)}× tol); first mismatches:\n${bad.join('\n')}`,
    );
  }
}

/** Fails unless the relative L2 error of `actual` against `expected` is at most `tol`. */
export function expectRelL2(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string, tol = 1e-4): void {
  expect(actual.length, `${label} length`).to.equal(expected.length);
  const err = relL2(actual, expected);
  expect(err, `${label}: relative L2 error ${err.toExponential(2)} > ${tol}`).to.be.at.most(tol);
}

/** Relative L2 error ‖a − b‖ / ‖b‖ (the fixture comparisons use this). */
export function relL2(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < expected.length; i++) {
    num += (actual[i] - expected[i]) ** 2;
    den += expected[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

/** The tiny fixture model folder (random weights, the official layout). */
export const TINY_FIXTURE_MODEL = fileURLToPath(new URL('./fixtures/convllava-tiny/model', import.meta.url));

/**
 * A scratch folder for one spec file, made before its specs and removed after them: `fresh(stem, ext)`
 * is a new path in it, `file(name)` a fixed one, `copyFixture()` a fresh copy of the tiny fixture model.
 */
export function scratchFolder(prefix: string) {
  let dir = '';
  let n = 0;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const fresh = (stem: string, ext = '') => join(dir, `${stem}-${n++}${ext}`);
  return {
    fresh,
    file: (name: string) => join(dir, name),
    async copyFixture(): Promise<string> {
      const copy = fresh('m');
      await cp(TINY_FIXTURE_MODEL, copy, { recursive: true });
      return copy;
    },
  };
}

/** What a CLI child process did. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `convllava ARGS` as a child process from the repository root, `stdin` piped in. With
 * `closeStdoutAfterFirstByte`, its stdout is closed after the first chunk (as `| head -c1` does).
 */
export function runCli(args: string[], options: { stdin?: string; closeStdoutAfterFirstByte?: boolean } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      if (options.closeStdoutAfterFirstByte) child.stdout.destroy();
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.stdin ?? '');
  });
}

// ---- f16 activations (ops/precision.ts) --------------------------------------------------------

/**
 * An f16 kernel against its f16-rounding reference: both compute in f32 and round once to f16, so
 * they agree exactly except where summation order moves a value across a rounding boundary — one
 * f16 ulp, ≤ 2⁻¹⁰ relative (the atol covers f16 subnormals near zero).
 */
export const F16_TOL: Tolerance = { atol: 1e-6, rtol: 1e-3 };

/**
 * Uploads x as an activation at precision p; returns the tensor and the values it holds (x rounded
 * to f16 at f16), which is what the reference must be given.
 */
export function uploadAt(gpu: Gpu, x: NdArray<Float32Array>, p: 'f32' | 'f16'): { t: import('../runtime/tensor.js').Tensor; nd: NdArray<Float32Array> } {
  const nd = p === 'f16' ? toF16Nd(x) : x;
  return { t: gpu.upload(x.shape, nd.data, p), nd };
}

/** The activation precisions this device runs: f32, and f16 when it has shader-f16. */
export function precisionsOf(gpu: Gpu): ('f32' | 'f16')[] {
  return gpu.hasF16 ? ['f32', 'f16'] : ['f32'];
}

/**
 * An f16 kernel that rounds once, at its store, leaves its outputs bit-equal to the f16-rounding
 * reference except where the f32 sum lands within its summation error of a rounding boundary: rare.
 * An extra rounding (of a product, a tap, a partial sum) moves a large share of them by one ulp,
 * which a one-ulp tolerance allows and this check does not.
 */
export function expectMostlyExact(got: ArrayLike<number>, ref: ArrayLike<number>, share = 0.01): void {
  let differ = 0;
  for (let i = 0; i < ref.length; i++) if (got[i] !== ref[i]) differ++;
  expect(differ, `${differ} of ${ref.length} f16 outputs differ from the reference`).to.be.at.most(Math.max(1, share * ref.length));
}

/** Runs fn, returning the byte size of every binding of every dispatch it records. */
export function bindingSizes(gpu: Gpu, fn: () => void): number[][] {
  const seen: number[][] = [];
  const dispatch = gpu.dispatch.bind(gpu);
  gpu.dispatch = (d) => {
    seen.push(d.bindings.map((b: Binding) => (b instanceof Tensor ? b.byteLength : b.size)));
    dispatch(d);
  };
  try {
    fn();
  } finally {
    gpu.dispatch = dispatch;
  }
  return seen;
}
