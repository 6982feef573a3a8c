/**
 * Running a model over pieces, so no binding exceeds the device's limit and no intermediate outlives
 * its use — kept out of the modules' math.
 */
import type { TensorOps } from './ops.js';

/**
 * Applies the row-wise `f(aRows, bRows) → rows as wide as a` to a and b ([N, ·], same N) in chunks
 * of at most `rowsPerChunk` rows. One chunk: returns f(a, b). Several: each chunk's result
 * overwrites its rows of `a` (so nothing image-sized is allocated) and `a` is returned; everything a
 * chunk allocates is freed before the next one.
 */
export function forEachRowChunk<T>(ops: TensorOps<T>, a: T, b: T, rowsPerChunk: number, f: (a: T, b: T) => T): T {
  const rows = ops.shape(a)[0];
  const per = Math.max(1, Math.floor(rowsPerChunk));
  if (rows <= per) return f(a, b);
  for (let r0 = 0; r0 < rows; r0 += per) {
    const n = Math.min(per, rows - r0);
    ops.tidy(() => ops.writeRows(f(ops.sliceRows(a, r0, n), ops.sliceRows(b, r0, n)), a, r0));
  }
  return a;
}

/**
 * x → steps[0] → steps[1] → …, freeing each intermediate output as soon as the next step has used it
 * (never x itself, nor an output `keep(i)` claims for the caller). Peak memory: two steps' outputs.
 */
export function sequential<T>(ops: TensorOps<T>, x: T, steps: readonly ((x: T) => T)[], keep: (step: number) => boolean = () => false): T {
  return runToEnd(sequentialSteps(ops, x, steps, keep));
}

/**
 * The same chain, pausing after every step but the last (yielding its index): where a caller may
 * submit the work recorded so far, wait for it and check an abort signal (llm/backend.ts). Broken
 * off with `return()`, or failing, it frees what it made (the kept outputs too), never x.
 */
export function* sequentialSteps<T>(ops: TensorOps<T>, x: T, steps: readonly ((x: T) => T)[], keep: (step: number) => boolean = () => false): Generator<number, T> {
  const kept: T[] = [];
  let h = x;
  let finished = false;
  try {
    for (const [i, step] of steps.entries()) {
      const next = step(h);
      if (i > 0) (keep(i - 1) ? kept.push(h) : ops.dispose(h));
      h = next;
      if (i + 1 < steps.length) yield i;
    }
    finished = true;
    return h;
  } finally {
    if (!finished) for (const t of h === x ? kept : [...kept, h]) ops.dispose(t);
  }
}

/** Runs a stepwise computation through without pausing. */
export function runToEnd<R>(steps: Generator<unknown, R>): R {
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}
